/**
 * onnx/wan-builder.ts at a tiny width: the Wan2.1 architecture under the denoiser contract,
 * its parameter count by Wan's formula, a user's PyTorch-layout weights loaded back to the same
 * model, and per-block checkpointing on it (interleaved RoPE, affine norm3, cross-attention
 * q/k norms) equal to the unsplit gradient graph through onnxruntime.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WAN_1_3B, type WanShape, writeWanDenoiser } from '../../onnx/wan-builder.js';
import { buildGradientGraph, gradName } from '../../src/onnx/autodiff.js';
import { injectLora } from '../../src/onnx/lora.js';
import { loadModel, tensorToArray } from '../../src/onnx/model.js';
import { cutSegments } from '../../src/onnx/segments.js';
import { CheckpointedGradient } from '../../src/rl/checkpointed-gradient.js';
import { openModel } from '../../src/runtime/model-cache.js';
import { writeSafetensors } from '../../src/shards/safetensors.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { tempDir } from '../helpers.js';
import { randArr, rng } from './ort-helper.js';

const dir = tempDir('vggrpo-wan-');
process.env.VGGRPO_CACHE = join(dir, 'cache');
const TINY: WanShape = {
  ...WAN_1_3B,
  blocks: 3,
  dim: 48,
  heads: 4,
  ffnDim: 64,
  freqDim: 16,
  channels: 4,
  textLength: 6,
  textDim: 16,
};
const LATENT: [number, number, number] = [2, 4, 6];
const runtime = { device: 'cpu' as const, threads: 1, graphOptimization: 'all' as const };

/** Wan's parameter count for a shape (1 418 996 800 for Wan2.1-T2V-1.3B). */
function wanParams(s: WanShape): number {
  const { dim: d, ffnDim: f } = s;
  const patch = s.channels * s.patch[0] * s.patch[1] * s.patch[2];
  const lin = (i: number, o: number) => i * o + o;
  const attn = 4 * lin(d, d) + 2 * d;
  const block = 2 * attn + 2 * d + lin(d, f) + lin(f, d) + 6 * d;
  const stem = d * patch + d + lin(s.textDim, d) + lin(d, d) + lin(s.freqDim, d) + lin(d, d) + lin(d, 6 * d);
  return stem + s.blocks * block + lin(d, patch) + 2 * d;
}

test('the Wan2.1 shape: contract names, Wan’s parameter count, 1.3B at full size', () => {
  assert.equal(wanParams(WAN_1_3B), 1_418_996_800);
  const built = writeWanDenoiser({ out: join(dir, 'a', 'denoiser.onnx'), latent: LATENT, shape: TINY });
  assert.equal(built.params, wanParams(TINY));
  const m = loadModel(built.path);
  assert.deepEqual(
    m.graph!.input!.map((i) => i.name),
    ['latents', 'timestep', 'context'],
  );
  assert.deepEqual(
    m.graph!.output!.map((o) => o.name),
    ['velocity'],
  );
  const names = new Set(m.graph!.initializer!.map((t) => t.name));
  for (const n of [
    'blocks.2.self_attn.norm_q.weight',
    'blocks.0.cross_attn.k.weight',
    'blocks.1.norm3.bias',
    'blocks.0.ffn.2.weight',
    'text_embedding.2.weight',
    'time_projection.1.weight',
    'head.modulation',
  ])
    assert.ok(names.has(n), n);
});

test('a user’s weights in PyTorch layout ([out, in] Linear weights) rebuild the same model', () => {
  const a = writeWanDenoiser({ out: join(dir, 'r', 'denoiser.onnx'), latent: LATENT, shape: TINY, seed: 7 });
  const tensors: Record<string, Tensor> = {};
  for (const t of loadModel(a.path).graph!.initializer!) {
    if (t.name!.startsWith('const')) continue;
    const v = tensorToArray(t) as Float32Array;
    const dims = t.dims!.map(Number);
    const linear = dims.length === 2 && t.name!.endsWith('.weight');
    if (!linear) {
      tensors[t.name!] = f32(dims, v);
      continue;
    }
    const [i, o] = dims as [number, number];
    const pt = new Float32Array(v.length);
    for (let r = 0; r < i; r++) for (let c = 0; c < o; c++) pt[c * i + r] = v[r * o + c]!;
    tensors[t.name!] = f32([o, i], pt);
  }
  const file = join(dir, 'weights.safetensors');
  writeSafetensors(file, tensors);
  const b = writeWanDenoiser({
    out: join(dir, 'w', 'denoiser.onnx'),
    latent: LATENT,
    shape: TINY,
    weights: file,
  });
  assert.ok(readFileSync(`${a.path}.data`).equals(readFileSync(`${b.path}.data`)));
  const c = writeWanDenoiser({ out: join(dir, 'c', 'denoiser.onnx'), latent: LATENT, shape: TINY, seed: 8 });
  assert.ok(!readFileSync(`${a.path}.data`).equals(readFileSync(`${c.path}.data`)), 'the seed matters');
});

test('per-block checkpointing on the Wan shape equals the unsplit LoRA gradient to 1e-5 relative', async () => {
  const built = writeWanDenoiser({ out: join(dir, 'g', 'denoiser.onnx'), latent: LATENT, shape: TINY });
  const { model, adapters } = injectLora(loadModel(built.path), {
    rank: 3,
    alpha: 6,
    targets: ['*attn.?.weight', '*ffn.0.weight', '*ffn.2.weight'],
  });
  const B = 2;
  const r = rng(11);
  const t = (shape: number[]): Tensor => f32(shape, randArr(r, shape).data as Float32Array);
  const lat = [B, TINY.channels, ...LATENT];
  const shapes: Record<string, number[]> = {
    latents: lat,
    timestep: [B],
    context: [B, TINY.textLength, TINY.textDim],
  };
  const feeds: Record<string, Tensor> = {
    latents: t(lat),
    timestep: f32([B], Float32Array.of(900, 300)),
    context: t(shapes.context!),
    'grad:velocity': t(lat),
  };
  for (const a of adapters) {
    shapes[`lora:${a.weight}:A`] = [a.inDim, 3];
    shapes[`lora:${a.weight}:B`] = [3, a.outDim];
    feeds[`lora:${a.weight}:A`] = t([a.inDim, 3]);
    feeds[`lora:${a.weight}:B`] = t([3, a.outDim]);
  }
  assert.equal(cutSegments(model, { shapes }).boundaries.length, TINY.blocks);
  const full = buildGradientGraph(model, { wrt: ['lora:*'], shapes });
  const ref = await openModel(full.model, runtime, 'unsplit');
  const want = await ref.run(feeds);
  const cp = await CheckpointedGradient.open(model, { wrt: ['lora:*'], shapes }, runtime, 'wan');
  const got = await cp.run(feeds);
  assert.equal(full.params.length, TINY.blocks * 10 * 2);
  for (const p of full.params) {
    const b = want[gradName(p)]!.data as Float32Array;
    const a = got[gradName(p)]!.data as Float32Array;
    let d = 0;
    let m = 0;
    for (let j = 0; j < b.length; j++) {
      d = Math.max(d, Math.abs(a[j]! - b[j]!));
      m = Math.max(m, Math.abs(b[j]!));
    }
    assert.ok(m > 0, `${p}: a real gradient`);
    assert.ok(d <= 1e-5 * m, `${p}: ${d / m}`);
  }
  await ref.release();
  await cp.release();
});
