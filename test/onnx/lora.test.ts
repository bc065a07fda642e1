/**
 * LoRA injection: forward equals the base model when B = 0, equals an explicit
 * xW + (α/r)·(x·A)·B otherwise (MatMul, Gemm with transB, MatMul through a Transpose), and
 * merging the adapter into the weights reproduces the injected model's output.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { injectLora, mergeLora } from '../../src/onnx/lora.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { randArr, rng, run } from './ort-helper.js';

const r = rng(11);
const D = 6;
const O = 5;
const wq = Float32Array.from({ length: D * O }, () => r());
const wk = Float32Array.from({ length: O * D }, () => r()); // stored [out, in]
const wv = Float32Array.from({ length: O * D }, () => r()); // stored [out, in], used via Transpose

function base(): ModelProto {
  const g = new GraphBuilder('lora', 18);
  const x = g.input('x', 'float32', [2, D]);
  const q = g.op('MatMul', [x, g.init('blk.q.weight', wq, [D, O])]);
  const k = g.op(
    'Gemm',
    [x, g.init('blk.k.weight', wk, [O, D]), g.init('blk.k.bias', Float32Array, [O], () => 0.5)],
    {
      transB: 1,
    },
  );
  const v = g.op('MatMul', [x, g.op('Transpose', [g.init('blk.v.weight', wv, [O, D])], { perm: [1, 0] })]);
  g.output(q, 'q');
  g.output(k, 'k');
  g.output(v, 'v');
  g.output(g.op('MatMul', [x, g.init('other', Float32Array, [D, 2], () => 1)]), 'o');
  return g.toModel();
}

/** x [n, in] · W (W given row-major as [in,out], or [out,in] when transposed). */
function matmul(
  x: Float32Array,
  n: number,
  w: ArrayLike<number>,
  inD: number,
  outD: number,
  transposed: boolean,
) {
  const y = new Float64Array(n * outD);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < outD; j++) {
      let s = 0;
      for (let k = 0; k < inD; k++) s += x[i * inD + k]! * w[transposed ? j * inD + k : k * outD + j]!;
      y[i * outD + j] = s;
    }
  }
  return y;
}

test('injected LoRA: B = 0 gives the base output; otherwise xW + (α/r)·xAB; merge matches', async () => {
  const m = base();
  const rank = 3;
  const alpha = 6;
  const { model: lm, adapters } = injectLora(m, { rank, alpha, targets: ['blk.*.weight'] });
  assert.deepEqual(adapters.map((a) => [a.weight, a.module, a.inDim, a.outDim, a.transposed]).sort(), [
    ['blk.k.weight', 'blk.k', D, O, true],
    ['blk.q.weight', 'blk.q', D, O, false],
    ['blk.v.weight', 'blk.v', D, O, true],
  ]);
  const x = randArr(r, [2, D]);
  const ref = await run(m, { x });
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
    x: x as { data: Float32Array; dims: number[] },
  };
  for (const a of adapters) {
    feeds[a.loraA] = randArr(r, [D, rank]) as { data: Float32Array; dims: number[] };
    feeds[a.loraB] = { data: new Float32Array(rank * O), dims: [rank, O] };
  }
  const zero = await run(lm, feeds);
  for (const k of ['q', 'k', 'v', 'o']) assert.deepEqual(zero[k]!.data, ref[k]!.data, k);

  const weights: Record<string, Float32Array> = {};
  for (const a of adapters) {
    feeds[a.loraB] = randArr(r, [rank, O]) as { data: Float32Array; dims: number[] };
    weights[a.loraA] = feeds[a.loraA]!.data;
    weights[a.loraB] = feeds[a.loraB]!.data;
  }
  const got = await run(lm, feeds);
  const s = alpha / rank;
  for (const [out, w, tr, bias] of [
    ['q', wq, false, 0],
    ['k', wk, true, 0.5],
    ['v', wv, true, 0],
  ] as const) {
    const a = adapters.find((ad) => ad.module === `blk.${out}`)!;
    const xw = matmul(x.data as Float32Array, 2, w, D, O, tr);
    const xa = matmul(x.data as Float32Array, 2, weights[a.loraA]!, D, rank, false);
    const xab = matmul(Float32Array.from(xa), 2, weights[a.loraB]!, rank, O, false);
    const y = got[out]!.data as Float32Array;
    for (let i = 0; i < y.length; i++) {
      const expect = xw[i]! + bias + s * xab[i]!;
      assert.ok(
        Math.abs(y[i]! - expect) < 1e-4 * (1 + Math.abs(expect)),
        `${out}[${i}] ${y[i]} vs ${expect}`,
      );
    }
  }
  assert.deepEqual(got.o!.data, ref.o!.data);

  const merged = mergeLora(m, adapters, weights);
  const mo = await run(merged, { x });
  for (const k of ['q', 'k', 'v']) {
    const a = mo[k]!.data as Float32Array;
    const b = got[k]!.data as Float32Array;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-4 * (1 + Math.abs(b[i]!)), k);
  }
});

test('LoRA inputs are differentiable: gradient graph over lora:*', async () => {
  const { model: lm } = injectLora(base(), { rank: 2, alpha: 2, targets: ['blk.q.weight'] });
  const { model: gm, params } = buildGradientGraph(lm, { wrt: ['lora:*'] });
  assert.deepEqual(params.sort(), ['lora:blk.q.weight:A', 'lora:blk.q.weight:B']);
  assert.ok(gm.graph!.output!.some((o) => o.name === 'grad:lora:blk.q.weight:A'));
});

test('targets that match nothing are an input error', () => {
  assert.throws(
    () => injectLora(base(), { rank: 2, alpha: 2, targets: ['nope.*'] }),
    /match no MatMul\/Gemm/,
  );
});
