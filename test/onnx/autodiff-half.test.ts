/**
 * Half-precision forward graphs: a float16 attention + MLP block built with the GraphBuilder gets
 * a gradient graph that onnxruntime runs in float16 (constants emitted in float16, grad:P summed
 * and returned in float32). Its gradients match the same block's in float32 to float16 accuracy,
 * and the float32 block's match central finite differences.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { type DTypeName, GraphBuilder } from '../../src/onnx/builder.js';
import {
  BF16_WIDENED,
  bf16ToFloat,
  floatTensor,
  floatToBf16,
  floatToHalf,
  halfToFloat,
} from '../../src/onnx/half.js';
import { tensorToArray } from '../../src/onnx/model.js';
import { DataType, type ModelProto, type TensorProto, type ValueInfoProto } from '../../src/onnx/proto.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { buildToyDit } from '../../src/onnx/toy-dit.js';
import { gradCheck } from './gradcheck.js';
import { type Arr, randArr, rng, run } from './ort-helper.js';

const T = 6;
const D = 8;
const H = 16;
/** The attention scale, ≈ 1/√D and exact in float16 and bfloat16, so every precision multiplies by the same number. */
const SCALE = 0.375;
const PARAMS: Record<string, number[]> = {
  ln_s: [D],
  ln_b: [D],
  wq: [D, D],
  wk: [D, D],
  wv: [D, D],
  w1: [D, H],
  b1: [H],
  w2: [H, D],
};

/** Values representable in float16, so both precisions start from the same numbers. */
const halfExact = (a: ArrayLike<number>): number[] => Array.from(a, (v) => halfToFloat(floatToHalf(v)));
const bf16Exact = (a: ArrayLike<number>): number[] => Array.from(a, (v) => bf16ToFloat(floatToBf16(v)));

const ET: Partial<Record<DTypeName, number>> = {
  float16: DataType.FLOAT16,
  bfloat16: DataType.BFLOAT16,
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
};

/**
 * LayerNorm → single-head attention → residual → tanh MLP → residual, in `dtype`; a bfloat16
 * block reads a float32 x through a Cast, as mixed-precision exports do.
 */
function block(dtype: DTypeName, values: Record<string, number[]>): ModelProto {
  const g = new GraphBuilder(`block-${dtype}`, 18);
  const et = ET[dtype]!;
  const x =
    dtype === 'bfloat16'
      ? g.op('Cast', [g.input('x', 'float32', [T, D])], { to: et })
      : g.input('x', dtype, [T, D]);
  const p = Object.fromEntries(
    Object.entries(PARAMS).map(([n, s]) => [n, g.initTensor(n, floatTensor(n, s, values[n]!, et))]),
  );
  const h = g.op('LayerNormalization', [x, p.ln_s!, p.ln_b!], { axis: -1, epsilon: 1e-3 });
  const [q, k, v] = [p.wq!, p.wk!, p.wv!].map((w) => g.op('MatMul', [h, w]));
  const s = g.op('Mul', [
    g.op('MatMul', [q!, g.op('Transpose', [k!], { perm: [1, 0] })]),
    g.const([SCALE], dtype),
  ]);
  const r = g.op('Add', [x, g.op('MatMul', [g.op('Softmax', [s], { axis: -1 }), v!])]);
  const f = g.op('MatMul', [g.op('Tanh', [g.op('Add', [g.op('MatMul', [r, p.w1!]), p.b1!])]), p.w2!]);
  g.output(g.op('Add', [r, f]), 'y');
  return g.toModel();
}

function randomValues(seed: number): { values: Record<string, number[]>; x: number[]; dy: number[] } {
  const r = rng(seed);
  const values = Object.fromEntries(
    Object.entries(PARAMS).map(([n, s]) => [
      n,
      halfExact(randArr(r, s, false, n === 'ln_s' ? 0.3 : 0.5, n === 'ln_s' ? 1 : 0).data),
    ]),
  );
  return {
    values,
    x: halfExact(randArr(r, [T, D], false).data),
    dy: halfExact(randArr(r, [T, D], false).data),
  };
}

const f16 = (a: number[], dims: number[]): Arr => ({ data: Uint16Array.from(a, floatToHalf), dims });
const f32 = (a: number[], dims: number[]): Arr => ({ data: Float32Array.from(a), dims });

test('float16 block: gradients in float16 match float32 within float16 accuracy; grad:P is float32', async (t) => {
  const { values, x, dy } = randomValues(4);
  const wrt = Object.keys(PARAMS);
  const half = buildGradientGraph(block('float16', values), { wrt });
  const full = buildGradientGraph(block('float32', values), { wrt });
  const gh = half.model.graph!;
  // the interface: grad:y in the forward's dtype, every grad:P in float32
  const elem = (vs: typeof gh.input, n: string) => vs?.find((v) => v.name === n)?.type?.tensorType?.elemType;
  assert.equal(elem(gh.input, 'grad:y'), DataType.FLOAT16);
  for (const n of wrt) assert.equal(elem(gh.output, `grad:${n}`), DataType.FLOAT, `grad:${n} is float32`);
  // the backward computes in float16: every matrix product reads float16 operands
  const info = inferShapes(half.model);
  const products = (gh.node ?? []).filter((n) => n.opType === 'MatMul' || n.opType === 'Gemm');
  assert.ok(products.length > 10);
  for (const n of products)
    for (const i of n.input ?? []) assert.equal(info.types.get(i)?.elemType, DataType.FLOAT16);
  // no float32 constants were emitted into the float16 backward
  for (const t of gh.initializer ?? []) assert.notEqual(t.dataType, DataType.FLOAT, `initializer ${t.name}`);

  const oh = await run(half.model, { x: f16(x, [T, D]), 'grad:y': f16(dy, [T, D]) });
  const of = await run(full.model, { x: f32(x, [T, D]), 'grad:y': f32(dy, [T, D]) });
  let worst = 0;
  for (const n of wrt) {
    const a = Array.from(oh[`grad:${n}`]!.data as Float32Array);
    const b = Array.from(of[`grad:${n}`]!.data as Float32Array);
    assert.ok(oh[`grad:${n}`]!.data instanceof Float32Array, `grad:${n} comes back as float32`);
    const scale = Math.max(...b.map(Math.abs));
    const err = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    // float16 keeps ~3 significant digits (half an ulp is 4.9e-4): a dozen rounded ops stay within 0.5%
    assert.ok(err <= 5e-3 * scale, `grad:${n}: float16 off by ${err} (largest entry ${scale})`);
    assert.ok(scale > 1e-3, `grad:${n} is not trivially zero`);
    worst = Math.max(worst, err / scale);
  }
  t.diagnostic(`float16 vs float32: worst error ${worst.toExponential(2)} of a parameter's largest entry`);
});

test("the float32 reference: equal to the float64 block's gradients, which match central finite differences", async () => {
  const { values, x, dy } = randomValues(4);
  const wrt = Object.keys(PARAMS);
  await gradCheck(block('float64', values), {
    wrt,
    feeds: { x: { data: Float64Array.from(x), dims: [T, D] } },
    seed: 9,
  });
  const wide = buildGradientGraph(block('float64', values), { wrt });
  const full = buildGradientGraph(block('float32', values), { wrt });
  const ow = await run(wide.model, {
    x: { data: Float64Array.from(x), dims: [T, D] },
    'grad:y': { data: Float64Array.from(dy), dims: [T, D] },
  });
  const of = await run(full.model, { x: f32(x, [T, D]), 'grad:y': f32(dy, [T, D]) });
  for (const n of wrt) {
    const a = Array.from(of[`grad:${n}`]!.data as Float32Array);
    const b = Array.from(ow[`grad:${n}`]!.data as Float64Array);
    const scale = Math.max(...b.map(Math.abs));
    const err = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    assert.ok(err <= 1e-4 * scale, `grad:${n}: float32 off by ${err} (largest entry ${scale})`);
  }
});

test('bfloat16 block: differentiated as its float32 widening, Cast rounding kept, said in a warning', async () => {
  const { values: v16, x, dy } = randomValues(6);
  const values = Object.fromEntries(Object.entries(v16).map(([k, a]) => [k, bf16Exact(a)]));
  const wrt = Object.keys(PARAMS);
  const built = buildGradientGraph(block('bfloat16', values), { wrt });
  assert.ok(built.warnings.includes(BF16_WIDENED));
  const gm = built.model.graph!;
  for (const t of gm.initializer ?? [])
    assert.notEqual(t.dataType, DataType.BFLOAT16, `initializer ${t.name}`);
  const elem = (vs: typeof gm.input, n: string) => vs?.find((v) => v.name === n)?.type?.tensorType?.elemType;
  assert.equal(elem(gm.input, 'grad:y'), DataType.FLOAT);
  for (const n of wrt) assert.equal(elem(gm.output, `grad:${n}`), DataType.FLOAT);
  const out = await run(built.model, { x: f32(x, [T, D]), 'grad:y': f32(dy, [T, D]) });
  // the entry Cast still rounds x to bfloat16: x and its rounding give the same forward
  const rounded = await run(built.model, { x: f32(bf16Exact(x), [T, D]), 'grad:y': f32(dy, [T, D]) });
  assert.deepEqual(Array.from(out.y!.data as Float32Array), Array.from(rounded.y!.data as Float32Array));
  assert.notDeepEqual(bf16Exact(x), Array.from(Float32Array.from(x)), 'x is not already bfloat16-exact');
  // and every gradient is the float32 block's at the rounded x
  const ref = await run(buildGradientGraph(block('float32', values), { wrt }).model, {
    x: f32(bf16Exact(x), [T, D]),
    'grad:y': f32(dy, [T, D]),
  });
  for (const n of wrt) {
    const a = Array.from(out[`grad:${n}`]!.data as Float32Array);
    const b = Array.from(ref[`grad:${n}`]!.data as Float32Array);
    const scale = Math.max(...b.map(Math.abs));
    const err = Math.max(...a.map((u, i) => Math.abs(u - b[i]!)));
    assert.ok(scale > 1e-3 && err <= 1e-5 * scale, `grad:${n}: ${err} off (largest entry ${scale})`);
  }
});

/** The model with float32 tensors, values and Cast targets in element type `et` (values rounded to float16 first). */
function retype(m: ModelProto, et: number): ModelProto {
  const t = (x: TensorProto): TensorProto =>
    x.dataType === DataType.FLOAT
      ? floatTensor(x.name ?? '', [...(x.dims ?? [])], halfExact(tensorToArray(x) as Float32Array), et)
      : x;
  const v = (x: ValueInfoProto): ValueInfoProto =>
    x.type?.tensorType?.elemType === DataType.FLOAT
      ? { ...x, type: { tensorType: { ...x.type.tensorType, elemType: et } } }
      : x;
  const g = m.graph!;
  const node = (g.node ?? []).map((n) => ({
    ...n,
    attribute: (n.attribute ?? []).map((a) =>
      a.t
        ? { ...a, t: t(a.t) }
        : n.opType === 'Cast' && a.name === 'to' && a.i === DataType.FLOAT
          ? { ...a, i: et }
          : a,
    ),
  }));
  return {
    ...m,
    graph: {
      ...g,
      node,
      initializer: (g.initializer ?? []).map(t),
      input: (g.input ?? []).map(v),
      output: (g.output ?? []).map(v),
    },
  };
}

test("the toy DiT in float16: every weight gradient close to the float32 DiT's", async (t) => {
  const dit = buildToyDit({
    channels: 4,
    frames: 2,
    height: 8,
    width: 8,
    dim: 32,
    heads: 2,
    layers: 2,
    contextLength: 8,
    contextDim: 32,
  });
  const wrt = ['*.weight', '*.bias'];
  const half = buildGradientGraph(retype(dit, DataType.FLOAT16), { wrt });
  const full = buildGradientGraph(retype(dit, DataType.FLOAT), { wrt });
  const r = rng(8);
  const feedsHalf: Record<string, Arr> = {};
  const feedsFull: Record<string, Arr> = {};
  for (const i of full.model.graph?.input ?? []) {
    const dims = (i.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? 1);
    const vals = halfExact(randArr(r, dims, false, 0.5).data);
    const isHalf =
      half.model.graph?.input?.find((h) => h.name === i.name)?.type?.tensorType?.elemType ===
      DataType.FLOAT16;
    feedsFull[i.name ?? ''] = f32(vals, dims);
    feedsHalf[i.name ?? ''] = isHalf ? f16(vals, dims) : f32(vals, dims);
  }
  const oh = await run(half.model, feedsHalf);
  const of = await run(full.model, feedsFull);
  const grads = (o: typeof of, p: string) => Array.from(o[`grad:${p}`]!.data as Float32Array);
  const largest = (a: number[]) => Math.max(...a.map(Math.abs));
  // a gradient that is zero in exact arithmetic (the keys' bias, by softmax's shift invariance)
  // holds only rounding noise: such ones are held to a share of the largest gradient overall
  const overall = Math.max(...full.params.map((p) => largest(grads(of, p))));
  let worst = 0;
  for (const p of full.params) {
    const a = grads(oh, p);
    const b = grads(of, p);
    const scale = Math.max(largest(b), 1e-3 * overall);
    const err = Math.max(...a.map((u, i) => Math.abs(u - b[i]!)));
    worst = Math.max(worst, err / scale);
    assert.ok(err <= 2e-2 * scale, `grad:${p}: float16 off by ${err} (largest entry ${largest(b)})`);
  }
  t.diagnostic(
    `toy DiT float16 vs float32: ${full.params.length} parameters, worst ${worst.toExponential(2)} of the largest entry`,
  );
});
