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

test('LoRA toy DiT + GRPO clipped surrogate on a Gaussian SDE log-prob: LoRA gradients match finite differences', async () => {
  const { injectLora } = await import('../../src/onnx/lora.js');
  const { GraphBuilder } = await import('../../src/onnx/builder.js');
  const base = buildToyDit({ ...dims, layers: 1, seed: 8 });
  const { model, adapters } = injectLora(base, {
    rank: 2,
    alpha: 4,
    targets: ['blocks.0.self_attn.q.weight', 'blocks.0.ffn.*.weight'],
  });
  // loss = −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A), ρ = exp(logp − logp_old), logp = −Σ (x' − x − v·dt)² / 2σ²
  const g = GraphBuilder.extend(model);
  const shape = [1, 3, 2, 4, 4];
  const next = g.input('next_latents', 'float32', shape);
  const oldLp = g.input('old_log_prob', 'float32', [1]);
  const adv = g.input('advantage', 'float32', [1]);
  const mean = g.op('Add', ['latents', g.op('Mul', ['velocity', g.const([-0.1])])]);
  const diff = g.op('Sub', [next, mean]);
  const lp = g.op('Mul', [
    g.op('ReduceSum', [g.op('Mul', [diff, diff]), g.const([1, 2, 3, 4], 'int64')], { keepdims: 0 }),
    g.const([-0.5 / 0.3 ** 2]),
  ]);
  const ratio = g.op('Exp', [g.op('Sub', [lp, oldLp])]);
  const clipped = g.op('Clip', [ratio, g.const([0.8]), g.const([1.2])]);
  const loss = g.op('Neg', [g.op('Min', [g.op('Mul', [ratio, adv]), g.op('Mul', [clipped, adv])])]);
  model.graph!.output = [];
  g.output(loss, 'loss');
  const r = rng(21);
  const f = feeds(22);
  const extra: Record<string, { data: Float32Array | Float64Array; dims: number[] }> = {
    next_latents: randArr(r, shape),
    old_log_prob: { data: Float32Array.of(0), dims: [1] },
    advantage: { data: Float32Array.of(0.7), dims: [1] },
  };
  for (const a of adapters) {
    extra[a.loraA] = randArr(r, [a.inDim, a.rank], false, 0.3);
    extra[a.loraB] = randArr(r, [a.rank, a.outDim], false, 0.3);
  }
  // old_log_prob = current logp, so ρ = 1 inside the clip range (the first GRPO inner step)
  const { run } = await import('./ort-helper.js');
  const lpNow = await run({ ...model, graph: { ...model.graph, output: [{ name: lp }] } }, {
    ...f,
    ...extra,
  } as never);
  extra.old_log_prob = { data: Float32Array.from(lpNow[lp]!.data as Float32Array), dims: [1] };
  await gradCheck(model, { wrt: ['lora:*'], feeds: { ...f, ...extra }, h: 3e-3, rtol: 5e-3 });
});
