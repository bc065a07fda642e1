/**
 * Shape-like values fed at run time (Reshape's shape, Expand's shape, Slice's starts/ends/axes/
 * steps, Squeeze/Unsqueeze axes, Split sizes, reduction axes, Tile repeats, Pad pads, Gather
 * indices, Range bounds): one gradient model, built once, is checked against central finite
 * differences (float64) for several fed values, so nothing about those values was baked into it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { gradCheck } from './gradcheck.js';
import { type Arr, randArr, rng } from './ort-helper.js';

type Values = Record<string, number[]>;
type Build = (g: GraphBuilder, x: string, fed: Record<string, string>) => string | string[];

/**
 * A float64 graph of `x` (shape `xs`) and int64 inputs named in `fed` (their lengths), built
 * once into a gradient model and checked for each set of fed values.
 */
async function runtimeCheck(
  name: string,
  xs: number[],
  fed: Record<string, number>,
  build: Build,
  valueSets: Values[],
  opset = 18,
) {
  const g = new GraphBuilder(name, opset);
  const x = g.input('x', 'float64', xs);
  const names = Object.fromEntries(Object.entries(fed).map(([k, n]) => [k, g.input(k, 'int64', [n])]));
  const ys = build(g, x, names);
  (Array.isArray(ys) ? ys : [ys]).forEach((y, i) => {
    g.output(y, `y${i}`);
  });
  const model = g.toModel();
  const built = buildGradientGraph(model, { wrt: ['x'] });
  // nothing fed at run time is a constant of the gradient model
  const inputs = (built.model.graph?.input ?? []).map((v) => v.name);
  for (const k of Object.keys(fed)) assert.ok(inputs.includes(k), `${name}: '${k}' stays an input`);
  const r = rng(11);
  for (const values of valueSets) {
    const feeds: Record<string, Arr> = { x: randArr(r, xs, true) };
    for (const [k, v] of Object.entries(values)) {
      feeds[k] = { data: BigInt64Array.from(v, (d) => BigInt(d)), dims: [v.length] };
    }
    await gradCheck(model, { wrt: ['x'], feeds, built, seed: 3 });
  }
}

test('Reshape, Squeeze and Unsqueeze with the shape or axes fed at run time', async () => {
  await runtimeCheck('reshape', [2, 3, 4], { s: 2 }, (g, x, { s }) => g.op('Reshape', [x, s!]), [
    { s: [6, 4] },
    { s: [4, -1] },
    { s: [0, 12] },
  ]);
  // the result feeds a static-shaped op again: Reshape back to x's shape, then Mul
  await runtimeCheck(
    'reshape-mul',
    [2, 6],
    { s: 3 },
    (g, x, { s }) => g.op('Mul', [g.op('Reshape', [g.op('Reshape', [x, s!]), g.ints([2, 6])]), x]),
    [{ s: [3, 2, 2] }, { s: [1, 12, 1] }],
  );
  await runtimeCheck('squeeze', [3, 1, 4, 1], { a: 1 }, (g, x, { a }) => g.op('Squeeze', [x, a!]), [
    { a: [1] },
    { a: [-1] },
  ]);
  await runtimeCheck('unsqueeze', [3, 4], { a: 2 }, (g, x, { a }) => g.op('Unsqueeze', [x, a!]), [
    { a: [0, 3] },
    { a: [1, -1] },
  ]);
});

test('a broadcasting product of two values of run-time shape sums each side back at run time', async () => {
  // [2,12]·[1,12], then [24,1]·[1,12]: which axis each side sums over is known only from the feeds
  await runtimeCheck(
    'mul-runtime',
    [2, 3, 4],
    { s: 2, t: 2 },
    (g, x, { s, t }) =>
      g.op('Mul', [
        g.op('Reshape', [x, s!]),
        g.op('Reshape', [g.op('ReduceSum', [x, g.ints([0])], { keepdims: 0 }), t!]),
      ]),
    [
      { s: [2, 12], t: [1, 12] },
      { s: [24, 1], t: [1, 12] },
      { s: [1, 24], t: [12, 1] },
    ],
  );
});

test('Expand and Tile with the shape or repeats fed at run time', async () => {
  await runtimeCheck('expand', [3, 1], { s: 3 }, (g, x, { s }) => g.op('Expand', [x, s!]), [
    { s: [2, 3, 4] },
    { s: [1, 1, 1] },
    { s: [2, 1, 6] },
  ]);
  await runtimeCheck('tile', [2, 3], { r: 2 }, (g, x, { r }) => g.op('Tile', [x, r!]), [
    { r: [1, 1] },
    { r: [3, 2] },
  ]);
});

test('Slice with starts, ends, axes and steps fed at run time, negative steps too', async () => {
  await runtimeCheck(
    'slice',
    [5, 6],
    { st: 2, en: 2, ax: 2, sp: 2 },
    (g, x, f) => g.op('Slice', [x, f.st!, f.en!, f.ax!, f.sp!]),
    [
      { st: [1, 0], en: [4, 6], ax: [0, 1], sp: [1, 2] },
      { st: [-1, 5], en: [-100, 0], ax: [1, 0], sp: [-2, -1] },
      { st: [0, 0], en: [9, 9], ax: [0, -1], sp: [3, 1] },
    ],
  );
  // a constant Slice of a value whose shape is known only at run time
  await runtimeCheck(
    'slice-of-runtime',
    [4, 6],
    { s: 2 },
    (g, x, { s }) => g.op('Slice', [g.op('Reshape', [x, s!]), g.ints([1]), g.ints([3]), g.ints([1])]),
    [{ s: [6, 4] }, { s: [2, 12] }],
  );
  await runtimeCheck(
    'slice-default-axes',
    [4, 3],
    { st: 1, en: 1 },
    (g, x, f) => g.op('Slice', [x, f.st!, f.en!]),
    [
      { st: [1], en: [3] },
      { st: [0], en: [-1] },
    ],
  );
});

test('Split with sizes fed at run time; an unused part contributes zeros of its run-time shape', async () => {
  await runtimeCheck(
    'split',
    [7, 2],
    { s: 3 },
    (g, x, { s }) => {
      const [a, , c] = g.opN('Split', [x, s!], { axis: 0 }, { outputs: 3 });
      return [g.op('Exp', [a!]), c!];
    },
    [{ s: [2, 4, 1] }, { s: [0, 3, 4] }],
  );
});

test('reductions with axes fed at run time (opset 18 input form), keepdims 0 and 1', async () => {
  for (const op of ['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceL2', 'ReduceLogSumExp']) {
    for (const keepdims of [0, 1]) {
      await runtimeCheck(
        `${op}-${keepdims}`,
        [3, 4, 2],
        { a: 1 },
        (g, x, { a }) => g.op(op, [x, a!], { keepdims }),
        [{ a: [1] }, { a: [-1] }, { a: [0] }],
      );
      await runtimeCheck(
        `${op}-two-${keepdims}`,
        [3, 4, 2],
        { a: 2 },
        (g, x, { a }) => g.op(op, [x, a!], { keepdims }),
        [{ a: [0, 2] }, { a: [-1, 1] }],
      );
    }
  }
});

test('Pad with pads fed at run time (cropping too), and in edge and reflect modes', async () => {
  for (const mode of ['constant', 'edge', 'reflect']) {
    await runtimeCheck(`pad-${mode}`, [3, 4], { p: 4 }, (g, x, { p }) => g.op('Pad', [x, p!], { mode }), [
      { p: [1, 0, 2, 2] },
      { p: [0, -1, 1, 2] },
    ]);
  }
  // at opset 13 (no ScatterElements 'add'): edge padding repeats elements, a one-hot product sums them
  await runtimeCheck(
    'pad-edge-13',
    [3, 4],
    { p: 4 },
    (g, x, { p }) => [g.op('Pad', [x, p!], { mode: 'edge' }), pinTo13(g, x)],
    [{ p: [2, 1, 0, 3] }],
    13,
  );
});

test('Pad with constant pads in edge and reflect modes (static pads, the same index rule)', async () => {
  for (const mode of ['edge', 'reflect']) {
    await runtimeCheck(
      `pad-static-${mode}`,
      [3, 4],
      {},
      (g, x) => g.op('Pad', [x, g.ints([1, 2, 2, 1])], { mode }),
      [{}],
    );
  }
});

/**
 * An opset-13 ReduceL2 (axes as an attribute) keeps a graph at opset 13 rather than reading it as
 * 16, so the rules must do without ScatterElements' reduction 'add' (a one-hot product instead).
 */
const pinTo13 = (g: GraphBuilder, x: string) => g.op('ReduceL2', [x], { axes: [0], keepdims: 0 });

test('Gather with indices fed at run time, repeated and negative ones accumulate', async () => {
  for (const opset of [18, 13]) {
    await runtimeCheck(
      `gather-${opset}`,
      [4, 3],
      { i: 5 },
      (g, x, { i }) => [g.op('Gather', [x, i!], { axis: 0 }), ...(opset === 13 ? [pinTo13(g, x)] : [])],
      [{ i: [0, 1, 2, 3, 0] }, { i: [2, 2, -2, 1, 2] }],
      opset,
    );
  }
});

test('Range with bounds fed at run time: no gradient to them, but its shape flows on', async () => {
  // y = x[Range(s, l, 1)] · Range(...) as float: the length follows the fed bounds
  const g = new GraphBuilder('range', 18);
  const x = g.input('x', 'float64', [6]);
  const s = g.input('s', 'int64', []);
  const l = g.input('l', 'int64', []);
  const idx = g.op('Range', [s, l, g.const([1], 'int64', [])]);
  g.output(g.op('Mul', [g.op('Gather', [x, idx]), g.op('Cast', [idx], { to: 11 })]), 'y');
  const model = g.toModel();
  const built = buildGradientGraph(model, { wrt: ['x'] });
  const r = rng(5);
  for (const [a, b] of [
    [0, 6],
    [2, 5],
    [1, 2],
  ]) {
    const feeds: Record<string, Arr> = {
      x: randArr(r, [6], true),
      s: { data: BigInt64Array.of(BigInt(a!)), dims: [] },
      l: { data: BigInt64Array.of(BigInt(b!)), dims: [] },
    };
    await gradCheck(model, { wrt: ['x'], feeds, built, seed: 2 });
  }
});

test('a static rule on a value whose shape is known only at run time is exit 2 naming the node', () => {
  const g = new GraphBuilder('refuse', 18);
  const x = g.input('x', 'float64', [2, 6]);
  const s = g.input('s', 'int64', [2]);
  const w = g.input('w', 'float64', [6, 3]);
  g.output(g.op('MatMul', [g.op('Reshape', [x, s], {}, { name: 'r' }), w], {}, { name: 'mm' }), 'y');
  assert.throws(
    () => buildGradientGraph(g.toModel(), { wrt: ['x', 'w'] }),
    (e: Error & { exitCode?: number }) =>
      e.exitCode === 2 && /'mm'/.test(e.message) && /run time/.test(e.message),
  );
  // Concat's size along the axis would be a sum of unknowns: its dims are all run-time, and its rule refuses
  const h = new GraphBuilder('refuse-concat', 18);
  const u = h.input('u', 'float64', [2, 6]);
  const t = h.input('t', 'int64', [2]);
  const cat = h.op(
    'Concat',
    [h.op('Reshape', [u, t]), h.input('v', 'float64', [3, 4])],
    { axis: 0 },
    { name: 'cat' },
  );
  h.output(cat, 'y');
  assert.throws(
    () => buildGradientGraph(h.toModel(), { wrt: ['u'] }),
    (e: Error & { exitCode?: number }) => e.exitCode === 2 && /'cat' \(Concat\)/.test(e.message),
  );
});
