/**
 * Static shapes and constant folding, checked against onnxruntime: every intermediate value of
 * the test graphs is made an output, and its runtime shape, element type and (for folded
 * constants) values must equal what inferShapes resolved without running anything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { buildToyDit } from '../../src/onnx/toy-dit.js';
import { type Arr, randArr, rng, run } from './ort-helper.js';

const ORT_TYPE: Record<string, number> = {
  Float32Array: 1,
  Float64Array: 11,
  BigInt64Array: 7,
  Uint8Array: 9,
  Int32Array: 6,
};

async function crossCheck(model: ModelProto, feeds: Record<string, Arr>, shapes?: Record<string, number[]>) {
  const info = inferShapes(model, { shapes });
  const names = model.graph!.node!.flatMap((n) => n.output ?? []).filter((o) => o);
  const declared = new Set(model.graph!.output!.map((o) => o.name));
  const all: ModelProto = {
    ...model,
    graph: {
      ...model.graph,
      output: [...model.graph!.output!, ...names.filter((n) => !declared.has(n)).map((name) => ({ name }))],
    },
  };
  const out = await run(all, feeds);
  let folded = 0;
  for (const n of names) {
    const t = info.types.get(n);
    assert.ok(t, `no type for ${n}`);
    assert.deepEqual(t.shape, out[n]!.dims, `shape of ${n}`);
    assert.equal(t.elemType, ORT_TYPE[out[n]!.data.constructor.name], `type of ${n}`);
    const c = info.consts.get(n);
    if (c) {
      folded++;
      const got = Array.from(out[n]!.data as ArrayLike<number | bigint>, Number);
      c.data.forEach((v, i) => {
        assert.ok(
          Math.abs(v - got[i]!) <= 1e-6 * (1 + Math.abs(v)),
          `value of ${n}[${i}]: ${v} vs ${got[i]}`,
        );
      });
    }
  }
  return { info, folded };
}

test('toy DiT: every intermediate shape and type equals onnxruntime', async () => {
  const r = rng(2);
  const model = buildToyDit({
    batch: 2,
    channels: 3,
    frames: 2,
    height: 4,
    width: 6,
    dim: 16,
    heads: 2,
    layers: 1,
    dynamicBatch: true,
  });
  const feeds = {
    latents: randArr(r, [2, 3, 2, 4, 6]),
    timestep: { data: Float32Array.of(0.1, 0.9), dims: [2] },
    context: randArr(r, [2, 4, 16]),
  };
  const { folded } = await crossCheck(model, feeds, { batch: [2] });
  assert.ok(folded > 5, 'the Shape-driven head reshapes were folded');
});

test('Shape-driven subgraphs fold: Gather, Unsqueeze, Concat, Range, ConstantOfShape, Cast, Equal, Where, Slice, arithmetic', async () => {
  const g = new GraphBuilder('fold', 17);
  const x = g.input('x', 'float32', ['n', 6, 4]);
  const shp = g.op('Shape', [x]);
  const d1 = g.op('Gather', [shp, g.const([1], 'int64', [])], { axis: 0 });
  const d2 = g.op('Gather', [shp, g.const([2], 'int64', [])], { axis: 0 });
  const half = g.op('Div', [d1, g.const([2], 'int64', [])]);
  const newShape = g.op(
    'Concat',
    [g.op('Unsqueeze', [half, g.const([0], 'int64', [1])]), g.const([-1], 'int64', [1])],
    { axis: 0 },
  );
  const scale = g.op('Sqrt', [g.op('Cast', [d2], { to: 1 })]);
  const y = g.op('Div', [g.op('Reshape', [x, newShape]), scale]);
  const rng1 = g.op('Range', [g.const([0], 'int64', []), d2, g.const([1], 'int64', [])]);
  const eq = g.op('Equal', [rng1, g.const([2], 'int64', [])]);
  const sel = g.op('Where', [eq, g.const([-1], 'int64', []), rng1]);
  const zeros = g.op('ConstantOfShape', [
    g.op('Slice', [shp, g.const([1], 'int64', [1]), g.const([3], 'int64', [1])]),
  ]);
  const sh15 = g.op('Shape', [x], { start: -2 });
  const mul = g.op('Mul', [sh15, g.const([2], 'int64', [1])]);
  const prod = g.op('ReduceProd', [mul], { keepdims: 0 });
  for (const [v, n] of [
    [y, 'y'],
    [sel, 'sel'],
    [zeros, 'zeros'],
    [prod, 'prod'],
  ] as const)
    g.output(v, n);
  const r = rng(1);
  const { info } = await crossCheck(g.toModel(), { x: randArr(r, [3, 6, 4]) }, { x: [3, 6, 4] });
  assert.deepEqual(info.consts.get('sel')!.data, [0, 1, -1, 3]);
  assert.deepEqual(info.consts.get('prod')!.data, [96]);
  assert.deepEqual(info.types.get('y')!.shape, [3, 24]);
});

test('attribute forms (opset 11) and input forms (opsets 13 and 18) of axes and split sizes', async () => {
  const r = rng(4);
  const build = (opset: number) => {
    const g = new GraphBuilder(`forms${opset}`, opset);
    const x = g.input('x', 'float32', [2, 1, 7]);
    const ax = (v: number[]) => g.const(v, 'int64', [v.length]);
    const outs: string[] = [];
    if (opset < 13) {
      outs.push(g.op('ReduceSum', [x], { axes: [2], keepdims: 0 }));
      outs.push(g.op('ReduceMean', [x], { axes: [0, -1] }));
      outs.push(g.op('Squeeze', [x], { axes: [1] }));
      outs.push(g.op('Unsqueeze', [x], { axes: [0, 4] }));
      outs.push(...g.opN('Split', [x], { axis: 2, split: [2, 5] }, { outputs: 2 }));
    } else {
      outs.push(g.op('ReduceSum', [x, ax([2])], { keepdims: 0 }));
      outs.push(
        opset >= 18 ? g.op('ReduceMean', [x, ax([0, -1])]) : g.op('ReduceMean', [x], { axes: [0, -1] }),
      );
      outs.push(
        g.op(
          'ReduceMax',
          opset >= 18 ? [x, ax([1])] : [x],
          opset >= 18 ? { keepdims: 0 } : { axes: [1], keepdims: 0 },
        ),
      );
      outs.push(g.op('Squeeze', [x, ax([1])]));
      outs.push(g.op('Squeeze', [x]));
      outs.push(g.op('Unsqueeze', [x, ax([0, 4])]));
      outs.push(...g.opN('Split', [x, ax([2, 5])], { axis: 2 }, { outputs: 2 }));
      if (opset >= 18) outs.push(...g.opN('Split', [x], { axis: 2, num_outputs: 4 }, { outputs: 4 }));
    }
    outs.forEach((o, i) => {
      g.output(o, `o${i}`);
    });
    return g.toModel();
  };
  for (const opset of [11, 13, 18]) await crossCheck(build(opset), { x: randArr(r, [2, 1, 7]) });
});

test('a dynamic dim without an override is an input error naming the input', () => {
  const g = new GraphBuilder('dyn', 18);
  g.output(g.op('Relu', [g.input('tokens', 'float32', [1, 'seq', 8])]), 'y');
  assert.throws(() => inferShapes(g.toModel()), /input 'tokens' has dynamic dim 1 \('seq'\)/);
  assert.deepEqual(
    inferShapes(g.toModel(), { shapes: { tokens: [1, 5, 8] } }).types.get('y')!.shape,
    [1, 5, 8],
  );
  assert.throws(
    () => inferShapes(g.toModel(), { shapes: { tokens: [1, 5, 9] } }),
    /dim 2 is 9 but the model fixes it to 8/,
  );
});
