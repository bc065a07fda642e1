/**
 * Tied initializers (PyTorch's exporter writes equal initializers once and re-creates each name
 * as Identity of the shared one): each name is a parameter of its own. The gradient per name is
 * checked by central finite differences on an independently built model where every name is a
 * separate input; LoRA targets and merges address the tied names.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph, defaultParams } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { injectLora, mergeLora } from '../../src/onnx/lora.js';
import { tensorToArray } from '../../src/onnx/model.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { type Arr, randArr, rng, run } from './ort-helper.js';

const D = 3;
const shared = Float64Array.from({ length: D * D }, (_, i) => Math.sin(i + 1));

/**
 * y = Tanh(x·W1)·W2 (+ x·S when S is also used directly), W1 = Identity(S), W2 = Identity(Identity(S)).
 * `separate`: the same function with W1, W2 (and S) as inputs of their own (the reference).
 */
function model(direct: boolean, separate: boolean): ModelProto {
  const g = new GraphBuilder('tied', 18);
  const x = g.input('x', 'float64', [2, D]);
  let w1: string;
  let w2: string;
  let s = '';
  if (separate) {
    w1 = g.input('blk1.weight', 'float64', [D, D]);
    w2 = g.input('blk2.weight', 'float64', [D, D]);
    if (direct) s = g.input('shared', 'float64', [D, D]);
  } else {
    s = g.init('shared', shared, [D, D]);
    w1 = g.op('Identity', [s], {}, { outputs: ['blk1.weight'] });
    w2 = g.op('Identity', [g.op('Identity', [s])], {}, { outputs: ['blk2.weight'] });
  }
  let y = g.op('MatMul', [g.op('Tanh', [g.op('MatMul', [x, w1])]), w2]);
  if (direct) y = g.op('Add', [y, g.op('MatMul', [x, s])]);
  g.output(y, 'y');
  return g.toModel();
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let t = 0;
  for (let i = 0; i < a.length; i++) t += (a[i] ?? 0) * (b[i] ?? 0);
  return t;
};

/** ⟨u, y⟩ of the reference model with `name` moved by h·v. */
async function loss(
  ref: ModelProto,
  feeds: Record<string, Arr>,
  u: Arr,
  name: string,
  v: Float64Array,
  h: number,
) {
  const p = feeds[name]?.data as Float64Array;
  const moved = { ...feeds, [name]: { data: p.map((x, i) => x + h * (v[i] ?? 0)), dims: [D, D] } };
  return dot((await run(ref, moved)).y?.data as Float64Array, u.data as Float64Array);
}

for (const direct of [false, true]) {
  test(`tied names get gradients of their own${direct ? ', the shared one too when used directly' : ''}`, async () => {
    const tiedModel = model(direct, false);
    const names = defaultParams(tiedModel);
    assert.deepEqual(
      names.sort(),
      direct ? ['blk1.weight', 'blk2.weight', 'shared'] : ['blk1.weight', 'blk2.weight'],
    );
    const { model: gm, params } = buildGradientGraph(tiedModel, { wrt: ['*'] });
    assert.deepEqual(params.sort(), [...names.sort(), 'x'].sort());
    const r = rng(3);
    const x = randArr(r, [2, D], true);
    const u = randArr(r, [2, D], true);
    const out = await run(gm, { x, 'grad:y': u });
    const ref = model(direct, true);
    const feeds: Record<string, Arr> = { x };
    for (const n of names) feeds[n] = { data: Float64Array.from(shared), dims: [D, D] };
    for (const n of names) {
      const v = randArr(r, [D, D], true).data as Float64Array;
      const h = 1e-5;
      const fd = ((await loss(ref, feeds, u, n, v, h)) - (await loss(ref, feeds, u, n, v, -h))) / (2 * h);
      const an = dot(out[`grad:${n}`]?.data as Float64Array, v);
      assert.ok(
        Math.abs(fd - an) <= 1e-6 * Math.max(1, Math.abs(fd)),
        `${n}: finite difference ${fd} vs ${an}`,
      );
    }
  });
}

test('a shared initializer read only through tied names is no parameter of its own', () => {
  assert.throws(
    () => buildGradientGraph(model(false, false), { wrt: ['shared'] }),
    /read only through its tied copies/,
  );
});

test('LoRA targets a tied name; merging updates that name alone', async () => {
  const m = model(false, false);
  const { model: lm, adapters } = injectLora(m, { rank: 2, alpha: 2, targets: ['blk1.weight'] });
  assert.deepEqual(
    adapters.map((a) => a.weight),
    ['blk1.weight'],
  );
  // a gradient for the adapter exists and the base output is unchanged with B = 0
  const { model: gm } = buildGradientGraph(lm, { wrt: ['lora:*'] });
  const r = rng(5);
  const x = randArr(r, [2, D], true);
  const A = randArr(r, [D, 2], true);
  const B = randArr(r, [2, D], true);
  const base = (await run(m, { x })).y?.data as Float64Array;
  const zeroB = { data: new Float64Array(2 * D), dims: [2, D] };
  const y0 = (await run(lm, { x, 'lora:blk1.weight:A': A, 'lora:blk1.weight:B': zeroB })).y
    ?.data as Float64Array;
  assert.ok(y0.every((v, i) => Math.abs(v - (base[i] ?? 0)) < 1e-12));
  const g = await run(gm, {
    x,
    'lora:blk1.weight:A': A,
    'lora:blk1.weight:B': B,
    'grad:y': randArr(r, [2, D], true),
  });
  assert.ok(g['grad:lora:blk1.weight:B']);
  // merge: blk1.weight moves by (α/r)·A·B, blk2.weight stays the shared values
  const merged = mergeLora(m, adapters, {
    'lora:blk1.weight:A': A.data as Float64Array,
    'lora:blk1.weight:B': B.data as Float64Array,
  });
  const init = new Map((merged.graph?.initializer ?? []).map((t) => [t.name ?? '', tensorToArray(t)]));
  const w1 = init.get('blk1.weight') as Float64Array;
  const a = A.data as Float64Array;
  const b = B.data as Float64Array;
  const want = (i: number, j: number) =>
    (shared[i * D + j] ?? 0) + (a[i * 2] ?? 0) * (b[j] ?? 0) + (a[i * 2 + 1] ?? 0) * (b[D + j] ?? 0);
  for (let i = 0; i < D; i++)
    for (let j = 0; j < D; j++) assert.ok(Math.abs((w1[i * D + j] ?? 0) - want(i, j)) < 1e-12);
  const y1 = (await run(merged, { x })).y?.data as Float64Array;
  const yl = (await run(lm, { x, 'lora:blk1.weight:A': A, 'lora:blk1.weight:B': B })).y?.data as Float64Array;
  assert.ok(
    y1.every((v, i) => Math.abs(v - (yl[i] ?? 0)) < 1e-10),
    'merged model equals the LoRA model',
  );
});
