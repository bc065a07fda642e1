/**
 * Per-block gradient checkpointing (src/onnx/segments.ts, src/rl/checkpointed-gradient.ts) on
 * the toy denoiser with LoRA injected: the segment-by-segment gradient equals the unsplit
 * gradient graph's, both run through onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph, gradName } from '../../src/onnx/autodiff.js';
import { cutSegments } from '../../src/onnx/segments.js';
import { CheckpointedGradient } from '../../src/rl/checkpointed-gradient.js';
import { COTANGENT_OFFSET, COTANGENT_SCALE, withAffineCotangent } from '../../src/rl/policy-gradient.js';
import { openModel } from '../../src/runtime/model-cache.js';
import { f32 } from '../../src/shards/tensor.js';
import { TOY } from '../../src/toy/latent.js';
import { randArr, rng } from '../onnx/ort-helper.js';
import { B, loraDenoiserCase } from './lora-denoiser.js';

const { channels: C, frames: F, height: H, width: W } = TOY;
const LAYERS = 3;
const runtime = { device: 'cpu' as const, threads: 1, graphOptimization: 'all' as const };

/** The toy denoiser (3 blocks) with LoRA on attention and FFN, and random non-zero adapters. */
const setup = (seed: number) =>
  loraDenoiserCase(seed, { layers: LAYERS, targets: ['*attn.q.weight', '*attn.v.weight', '*ffn.*.weight'] });

/** max |a − b| / max |b| over one tensor. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let j = 0; j < b.length; j++) {
    d = Math.max(d, Math.abs(a[j]! - b[j]!));
    m = Math.max(m, Math.abs(b[j]!));
  }
  return d / m;
}

async function compare(
  wrt: string[],
  seed: number,
  pickBoundaries?: (auto: string[]) => string[],
  keepSessions?: boolean,
) {
  const { model, feeds, shapes } = setup(seed);
  const full = buildGradientGraph(model, { wrt, shapes });
  const ref = await openModel(full.model, runtime, 'unsplit');
  const want = await ref.run(feeds);
  const boundaries = pickBoundaries?.(cutSegments(model, { shapes }).boundaries);
  const cp = await CheckpointedGradient.open(
    model,
    { wrt, shapes, boundaries, keepSessions },
    runtime,
    'toy',
  );
  const got = await cp.run(feeds);
  assert.equal(cp.boundaries, boundaries?.length ?? LAYERS);
  assert.ok(full.params.length > 0);
  let worst = 0;
  for (const p of full.params) {
    const a = got[gradName(p)]!.data as Float32Array;
    const b = want[gradName(p)]!.data as Float32Array;
    assert.equal(a.length, b.length, p);
    if (b.every((v) => v === 0)) continue;
    worst = Math.max(worst, relErr(a, b));
    assert.ok(relErr(a, b) < 1e-5, `${p}: relative error ${relErr(a, b)}`);
  }
  assert.ok(
    relErr(got.velocity!.data as Float32Array, want.velocity!.data as Float32Array) < 1e-6,
    'velocity',
  );
  await ref.release();
  await cp.release();
  return { worst, params: full.params.length };
}

test('segments: one cut after each block, found from blocks.N. names; every segment reads only earlier values', () => {
  const { model, shapes } = setup(1);
  const plan = cutSegments(model, { shapes });
  assert.equal(plan.boundaries.length, LAYERS);
  assert.equal(plan.segments.length, LAYERS + 1);
  const available = new Set(['latents', 'timestep', 'context', ...Object.keys(shapes)]);
  for (const s of plan.segments) {
    for (const i of s.inputs) assert.ok(available.has(i), `segment ${s.index} reads ${i} before it exists`);
    for (const o of s.outputs) available.add(o);
  }
  // A block reads the previous boundary and the stem's side values (time modulation, text
  // embedding), and hands on exactly one value: its boundary.
  for (const [k, b] of plan.boundaries.entries()) assert.ok(plan.segments[k]!.outputs.includes(b));
  const middle = plan.segments[1]!;
  const stemOutputs = new Set(plan.segments[0]!.outputs);
  assert.ok(middle.inputs.includes(plan.boundaries[0]!));
  assert.deepEqual(
    middle.inputs.filter((i) => !stemOutputs.has(i) && !(i in shapes)),
    [],
  );
  assert.deepEqual(middle.outputs, [plan.boundaries[1]]);
  const total = plan.segments.reduce((a, s) => a + s.nodes, 0);
  assert.equal(total, model.graph!.node!.length);
});

test('checkpointed LoRA gradients equal the unsplit gradient graph to 1e-5 relative', async () => {
  const { worst, params } = await compare(['lora:*'], 2);
  assert.ok(params >= LAYERS * 8, `${params} LoRA params`);
  assert.ok(worst > 0, 'the gradients differ in rounding at least (not the same graph run twice)');
});

test('boundaries given by tensor name: one cut after the second block, streamed sessions', async () => {
  await compare(['lora:*'], 6, (auto) => [auto[1]!], false);
});

test('checkpointed gradients of every weight equal the unsplit graph to 1e-5 relative', async () => {
  await compare(['*.weight', '*.bias', '*.modulation'], 3);
});

test('the one-run cotangent (offset + scale·velocity) gives the fused graph’s gradient', async () => {
  const { model, feeds, shapes } = setup(4);
  const r = rng(5);
  const offset = f32([B, C, F, H, W], randArr(r, [B, C, F, H, W]).data as Float32Array);
  const scale = f32([B, 1, 1, 1, 1], Float32Array.of(0.3, -1.7));
  const { 'grad:velocity': _, ...rest } = feeds;
  const affine = { ...rest, [COTANGENT_OFFSET]: offset, [COTANGENT_SCALE]: scale };
  const fused = withAffineCotangent(
    buildGradientGraph(model, { wrt: ['lora:*'], shapes }).model,
    'velocity',
    [B, C, F, H, W],
  );
  const ref = await openModel(fused, runtime, 'fused');
  const want = await ref.run(affine);
  const cp = await CheckpointedGradient.open(model, { wrt: ['lora:*'], shapes }, runtime, 'toy');
  const got = await cp.run(affine);
  for (const k of Object.keys(want).filter((k) => k.startsWith('grad:'))) {
    const b = want[k]!.data as Float32Array;
    if (b.every((v) => v === 0)) continue;
    const e = relErr(got[k]!.data as Float32Array, b);
    assert.ok(e < 1e-5, `${k}: ${e}`);
  }
  await ref.release();
  await cp.release();
});
