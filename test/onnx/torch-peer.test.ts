/**
 * Independent check against PyTorch's autograd (skipped where /usr/bin/python3 lacks torch): the
 * toy DiT defined in PyTorch (bench/autodiff_torch.py) is exported with torch.onnx.export; the
 * gradient graph of that exported model, run in onnxruntime on PyTorch's inputs and output
 * cotangent, reproduces PyTorch's output and every parameter's .grad.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { maxGradError, runTorchPeer, torchMissing } from '../../bench/autodiff.js';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { encodeModel } from '../../src/onnx/model.js';
import { skipOutsideCi } from '../helpers.js';

const missing = skipOutsideCi(torchMissing());

test('gradient graph of a torch.onnx.export model matches PyTorch autograd', { skip: missing }, async () => {
  const peer = runTorchPeer(
    { channels: 4, frames: 2, height: 8, width: 8, dim: 32, heads: 2, contextLength: 4, contextDim: 16 },
    0,
  );
  try {
    assert.equal(peer.model.producerName, 'pytorch');
    const wrt = [...peer.grads.keys()];
    assert.ok(wrt.includes('blocks.1.self_attn.norm_k.weight') && wrt.length > 50);
    const { model, warnings } = buildGradientGraph(peer.model, { wrt });
    assert.deepEqual(warnings, []);
    const s = await ort.InferenceSession.create(encodeModel(model), {
      intraOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(peer.inputs)) feeds[k] = new ort.Tensor('float32', v.data, v.shape);
    feeds['grad:velocity'] = new ort.Tensor('float32', peer.cotangent.data, peer.cotangent.shape);
    const out = await s.run(feeds);
    const v = out.velocity!.data as Float32Array;
    assert.equal(v.length, peer.output.data.length);
    for (let i = 0; i < v.length; i++) {
      assert.ok(Math.abs(v[i]! - peer.output.data[i]!) <= 1e-5 * (1 + Math.abs(peer.output.data[i]!)));
    }
    const err = maxGradError(peer, (name) => out[`grad:${name}`]!.data as Float32Array);
    assert.ok(err < 1e-4, `largest relative gradient difference from PyTorch: ${err}`);
  } finally {
    peer.dispose();
  }
});
