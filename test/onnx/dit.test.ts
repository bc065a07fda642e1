/**
 * A whole toy Wan-style DiT (Conv3d patchify, adaLN, LayerNorm, RMSNorm via
 * Pow/ReduceMean/Sqrt/Div, self- and cross-attention with Softmax, tanh-Gelu MLP) built with
 * the graph builder: its gradient graph agrees with finite differences through onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { buildToyDit } from '../../src/onnx/toy-dit.js';
import { gradCheck } from './gradcheck.js';
import { randArr, rng } from './ort-helper.js';

const dims = {
  batch: 1,
  channels: 3,
  frames: 2,
  height: 4,
  width: 4,
  dim: 16,
  heads: 2,
  contextLength: 3,
  contextDim: 8,
};

function feeds(seed: number) {
  const r = rng(seed);
  return {
    latents: randArr(r, [1, 3, 2, 4, 4]),
    timestep: { data: Float32Array.of(0.3), dims: [1] },
    context: randArr(r, [1, 3, 8]),
  };
}

for (const opset of [20, 18]) {
  test(`toy DiT (opset ${opset}): gradient w.r.t. every weight and the latents matches finite differences`, async () => {
    const model = buildToyDit({ ...dims, layers: 2, opset, seed: 3 });
    // float32 end to end; moving every weight at once curves the loss, so h is small (the
    // difference converges quadratically to the gradient as h shrinks: checked down to 3e-4)
    await gradCheck(model, {
      wrt: ['*.weight', '*.bias', 'latents', 'context'],
      feeds: feeds(4),
      h: 1e-3,
      rtol: 4e-3,
    });
    await gradCheck(model, {
      wrt: ['blocks.1.self_attn.q.weight'],
      feeds: feeds(5),
      h: 3e-3,
      rtol: 4e-3,
      seed: 9,
    });
  });
}

test('dynamic batch resolved from a --shape override; missing override names the input', () => {
  const model = buildToyDit({ ...dims, layers: 1, dynamicBatch: true });
  assert.throws(
    () => buildGradientGraph(model, { wrt: ['*.weight'] }),
    /input 'latents' has dynamic dim 0 \('batch'\)/,
  );
  const { model: gm, warnings } = buildGradientGraph(model, { wrt: ['*.weight'], shapes: { batch: [1] } });
  assert.deepEqual(warnings, []);
  const lat = gm.graph!.input!.find((i) => i.name === 'latents')!;
  assert.deepEqual(
    lat.type!.tensorType!.shape!.dim!.map((d) => d.dimValue),
    [1, 3, 2, 4, 4],
  );
});
