/**
 * The set-up gradient sessions open with (gradientRuntime, src/runtime/session.ts: the arena
 * without memory pattern or prepacked weights) changes memory, not values: every output of the
 * LoRA-injected toy denoiser's gradient graph is bitwise the one onnxruntime's defaults give, at
 * one and two threads — so training runs reproduce across the change.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { injectLora } from '../../src/onnx/lora.js';
import { encodeModel } from '../../src/onnx/model.js';
import { gradientRuntime, ModelSession, type RuntimeOptions } from '../../src/runtime/session.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { buildDenoiser, DENOISER_SHAPE } from '../../src/toy/denoiser.js';
import { TOY } from '../../src/toy/latent.js';
import { randArr, rng } from '../onnx/ort-helper.js';

const B = 2;
const { channels: C, frames: F, height: H, width: W, contextLength: L, contextDim: D } = TOY;

test('gradientRuntime: on CPU it turns the memory pattern and prepacking off, elsewhere it changes nothing', () => {
  assert.deepEqual(gradientRuntime({ threads: 2 }), { memoryPattern: false, prepack: false, threads: 2 });
  assert.deepEqual(gradientRuntime({ device: 'cuda' }), { device: 'cuda' });
  // An explicit choice stands.
  assert.equal(gradientRuntime({ prepack: true }).prepack, true);
});

test('a gradient session opened with gradientRuntime gives bitwise the default set-up’s gradients', async () => {
  const base = buildDenoiser({ seed: 3, shape: { ...DENOISER_SHAPE, layers: 2 } }).model;
  const { model, adapters } = injectLora(base, {
    rank: 2,
    alpha: 4,
    targets: ['*attn.*.weight', '*ffn.*.weight'],
  });
  const r = rng(5);
  const t = (shape: number[]): Tensor => f32(shape, randArr(r, shape).data as Float32Array);
  const feeds: Record<string, Tensor> = {
    latents: t([B, C, F, H, W]),
    timestep: f32([B], Float32Array.of(700, 250)),
    context: t([B, L, D]),
    'grad:velocity': t([B, C, F, H, W]),
  };
  const shapes: Record<string, number[]> = { latents: [B, C, F, H, W], timestep: [B], context: [B, L, D] };
  for (const a of adapters) {
    for (const [k, shape] of [
      ['A', [a.inDim, 2]],
      ['B', [2, a.outDim]],
    ] as const) {
      shapes[`lora:${a.weight}:${k}`] = [...shape];
      feeds[`lora:${a.weight}:${k}`] = t([...shape]);
    }
  }
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
