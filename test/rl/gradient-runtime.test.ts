/**
 * The set-up gradient sessions open with (gradientRuntime, src/runtime/session.ts: the arena
 * without memory pattern or prepacked weights) changes memory, not values: every output of the
 * LoRA-injected toy denoiser's gradient graph is bitwise the one onnxruntime's defaults give, at
 * one and two threads — so training runs reproduce across the change.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { encodeModel } from '../../src/onnx/model.js';
import { gradientRuntime, ModelSession, type RuntimeOptions } from '../../src/runtime/session.js';
import { loraDenoiserCase } from './lora-denoiser.js';

test('gradientRuntime: on CPU it turns the memory pattern and prepacking off, elsewhere it changes nothing', () => {
  assert.deepEqual(gradientRuntime({ threads: 2 }), { memoryPattern: false, prepack: false, threads: 2 });
  assert.deepEqual(gradientRuntime({ device: 'cuda' }), { device: 'cuda' });
  // An explicit choice stands.
  assert.equal(gradientRuntime({ prepack: true }).prepack, true);
});

test('a gradient session opened with gradientRuntime gives bitwise the default set-up’s gradients', async () => {
  const { model, feeds, shapes } = loraDenoiserCase(5, {
    layers: 2,
    targets: ['*attn.*.weight', '*ffn.*.weight'],
    modelSeed: 3,
  });
  const grad = encodeModel(buildGradientGraph(model, { wrt: ['*.weight', 'lora:*'], shapes }).model);
  const run = async (o: Partial<RuntimeOptions>) => {
    const s = await ModelSession.open(grad, o);
    try {
      return await s.run(feeds);
    } finally {
      await s.release();
    }
  };
  for (const threads of [1, 2]) {
    const plain = await run({ threads });
    const lean = await run(gradientRuntime({ threads }));
    const names = Object.keys(plain);
    assert.ok(names.filter((n) => n.startsWith('grad:')).length > 20, names.join(', '));
    for (const n of names) {
      const a = plain[n]!.data as Float32Array;
      const b = lean[n]!.data as Float32Array;
      assert.ok(a.some((v) => v !== 0) || n === 'velocity', `${n}: all zero`);
      assert.deepEqual(
        Buffer.from(b.buffer, b.byteOffset, b.byteLength),
        Buffer.from(a.buffer, a.byteOffset, a.byteLength),
        `${n} at ${threads} thread(s)`,
      );
    }
  }
});
