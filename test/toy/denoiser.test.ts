import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { globMatch } from '../../src/onnx/graph.js';
import { encodeModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32 } from '../../src/shards/tensor.js';
import { buildDenoiser, DENOISER_SHAPE, ropeTables } from '../../src/toy/denoiser.js';
import { LATENT_SIZE, TOY } from '../../src/toy/latent.js';
import { buildLgm } from '../../src/toy/lgm.js';

/** The operators the project's autodiff differentiates (docs/AUTODIFF.md). */
const AUTODIFF_OPS = new Set(
  'MatMul Gemm Conv Add Sub Mul Div Neg Pow Sqrt Reciprocal Exp Log Tanh Sigmoid Softmax LayerNormalization ReduceMean ReduceSum Transpose Reshape Squeeze Unsqueeze Concat Split Slice Gather Expand Where Cast Identity Sin Cos'.split(
    ' ',
  ),
);
const { channels: C, frames: F, height: H, width: W, contextLength: L, contextDim: D } = TOY;
const built = buildDenoiser();
let session: ModelSession;

before(async () => {
  session = await ModelSession.open(encodeModel(built.model), { threads: 1 });
});

const wave = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + k));
async function velocity(lat: Float32Array, t: number[], ctx: Float32Array): Promise<Float32Array> {
  const B = t.length;
  const res = await session.run({
    latents: f32([B, C, F, H, W], lat),
    timestep: f32([B], t),
    context: f32([B, L, D], ctx),
  });
  return res.velocity!.data as Float32Array;
}

test('denoiser and lgm use only operators the autodiff covers', () => {
  for (const model of [built.model, buildLgm()]) {
    const ops = new Set(model.graph!.node!.map((n) => n.opType!));
    assert.deepEqual(
      [...ops].filter((o) => !AUTODIFF_OPS.has(o)),
      [],
      model.graph!.name!,
    );
  }
});

test('parameters carry Wan module names; attention weights are [in, out] MatMul operands', () => {
  const names = built.params.map((p) => p.name);
  const total = built.params.reduce((a, p) => a + p.value.length, 0);
  assert.ok(total > 10_000 && total < 200_000, `${total} parameters`);
  const attn = names.filter((n) => ['q', 'k', 'v', 'o'].some((m) => globMatch(`*attn.${m}.weight`, n)));
  assert.equal(attn.length, DENOISER_SHAPE.layers * 2 * 4);
  assert.ok(names.includes('blocks.0.self_attn.q.weight') && names.includes('blocks.1.cross_attn.o.weight'));
  for (const n of attn) {
    const node = built.model.graph!.node!.find((x) => x.input!.includes(n))!;
    assert.equal(node.opType, 'MatMul');
    assert.equal(node.input![1], n);
  }
  assert.ok(
    names.every((n) => /^[a-z_]+(\.\d+)?(\.[a-z_0-9]+)*\.(weight|bias|modulation)$|modulation$/.test(n)),
    names.join(),
  );
});

test('rotary tables: unit rotations whose q·k depends only on the relative position', () => {
  const hd = DENOISER_SHAPE.dim / DENOISER_SHAPE.heads;
  const grid: [number, number, number] = [F, H / 2, W / 2];
  const { cos, sin } = ropeTables(grid, hd);
  for (let i = 0; i < cos.length; i++) assert.ok(Math.abs(cos[i]! ** 2 + sin[i]! ** 2 - 1) < 1e-6);
  const pos = (f: number, i: number, j: number) => (f * grid[1] + i) * grid[2] + j;
  const rope = (v: number[], n: number) =>
    v.map(
      (x, d) => x * cos[n * hd + d]! + (d < hd / 2 ? -v[d + hd / 2]! : v[d - hd / 2]!) * sin[n * hd + d]!,
    );
  const a = Array.from({ length: hd }, (_, d) => Math.cos(d * 1.3));
  const b = Array.from({ length: hd }, (_, d) => Math.sin(d * 0.7 + 1));
  const dot = (m: number, n: number) => rope(a, m).reduce((s, x, d) => s + x * rope(b, n)[d]!, 0);
  // Same offset (1, 2, −1) from two different origins: same score; another offset: different.
  assert.ok(Math.abs(dot(pos(2, 3, 4), pos(3, 5, 3)) - dot(pos(0, 0, 6), pos(1, 2, 5))) < 1e-5);
  assert.ok(Math.abs(dot(pos(2, 3, 4), pos(3, 5, 3)) - dot(pos(2, 3, 4), pos(2, 5, 3))) > 1e-3);
});

test('velocity depends on latents, timestep and context; a sample gives the same output alone or batched', async () => {
  const lat = wave(2 * LATENT_SIZE, 0);
  const ctx = wave(2 * L * D, 1);
  const both = await velocity(lat, [700, 200], ctx);
  const second = await velocity(lat.slice(LATENT_SIZE), [200], ctx.slice(L * D));
  let batchErr = 0;
  for (let i = 0; i < LATENT_SIZE; i++)
    batchErr = Math.max(batchErr, Math.abs(both[LATENT_SIZE + i]! - second[i]!));
  assert.ok(batchErr < 1e-4, `batch dependence ${batchErr}`);
  const meanAbsDiff = (x: Float32Array, y: Float32Array) =>
    x.reduce((s, v, i) => s + Math.abs(v - y[i]!), 0) / x.length;
  const base = both.slice(0, LATENT_SIZE);
  const otherT = await velocity(lat.slice(0, LATENT_SIZE), [100], ctx.slice(0, L * D));
  const otherCtx = await velocity(lat.slice(0, LATENT_SIZE), [700], wave(L * D, 5));
  const otherLat = await velocity(wave(LATENT_SIZE, 3), [700], ctx.slice(0, L * D));
  for (const v of [otherT, otherCtx, otherLat]) assert.ok(meanAbsDiff(base, v) > 1e-4);
  assert.ok(base.every(Number.isFinite));
});

test('the autodiff differentiates the denoiser w.r.t. every parameter without warnings', () => {
  const { model, params } = buildDenoiser({ paramsAsInputs: true, batch: 2 });
  const res = buildGradientGraph(model, { wrt: params.map((p) => p.name) });
  assert.deepEqual(res.warnings, []);
  assert.equal(res.params.length, params.length);
});
