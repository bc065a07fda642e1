/**
 * Every gradient rule against central finite differences through onnxruntime (float64 where
 * onnxruntime has float64 kernels, float32 otherwise), including broadcasting and edge shapes.
 */
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { gradCheck } from './gradcheck.js';
import { c64, check } from './opcheck.js';
import { randArr, rng } from './ort-helper.js';

test('Add, Sub, Mul, Div with broadcasting both ways', async () => {
  await check('arith', [[2, 3, 4], [3, 1], [4]], (g, [a, b, c]) => [
    g.op('Add', [a!, b!]),
    g.op('Sub', [b!, a!]),
    g.op('Mul', [a!, c!]),
    g.op('Div', [a!, g.op('Add', [g.op('Mul', [b!, b!]), c64(g, 1)])]),
    g.op('Div', [c!, g.op('Add', [g.op('Mul', [a!, a!]), c64(g, 2)])]),
  ]);
  // a value used twice in one op, and a scalar operand
  await check('square', [[3], []], (g, [a, s]) => g.op('Mul', [g.op('Mul', [a!, a!]), s!]));
});

test('elementwise unary rules', async () => {
  await check('unary', [[2, 5]], (g, [x]) => [
    g.op('Neg', [x!]),
    g.op('Exp', [x!]),
    g.op('Tanh', [x!]),
    g.op('Sigmoid', [x!]),
    g.op('Sin', [x!]),
    g.op('Cos', [x!]),
    g.op('Abs', [x!]),
    g.op('Relu', [x!]),
    g.op('Identity', [x!]),
  ]);
  await check(
    'positive',
    [[2, 5]],
    (g, [x]) => [
      g.op('Log', [x!]),
      g.op('Sqrt', [x!]),
      g.op('Reciprocal', [x!]),
      g.op('Pow', [x!, c64(g, 3)]),
      g.op('Pow', [x!, c64(g, 2)]),
      g.op('Pow', [x!, c64(g, -0.5)]),
    ],
    { positive: true },
  );
  // variable exponent (broadcast) with a positive base
  await check('pow', [[2, 3], [3]], (g, [x, e]) => g.op('Pow', [x!, e!]), { positive: true });
  await check('erf', [[3, 4]], (g, [x]) => g.op('Erf', [x!]), { dtype: 'float32' });
});

test('Gelu exact and tanh (opset 20)', async () => {
  await check(
    'gelu',
    [[4, 6]],
    (g, [x]) => [g.op('Gelu', [x!]), g.op('Gelu', [x!], { approximate: 'tanh' })],
    {
      dtype: 'float32',
      opset: 20,
    },
  );
});

test('MatMul: batched, broadcast batch, 1-D operands', async () => {
  await check(
    'mm-weight',
    [
      [2, 3, 4],
      [4, 5],
    ],
    (g, [a, b]) => g.op('MatMul', [a!, b!]),
  );
  await check(
    'mm-batch',
    [
      [2, 1, 3, 4],
      [3, 4, 2],
    ],
    (g, [a, b]) => g.op('MatMul', [a!, b!]),
  );
  await check(
    'mm-2d',
    [
      [3, 4],
      [4, 2],
    ],
    (g, [a, b]) => g.op('MatMul', [a!, b!]),
  );
  await check('mm-vec-left', [[4], [2, 4, 5]], (g, [a, b]) => g.op('MatMul', [a!, b!]));
  await check('mm-vec-right', [[2, 3, 4], [4]], (g, [a, b]) => g.op('MatMul', [a!, b!]));
  await check('mm-dot', [[4], [4]], (g, [a, b]) => g.op('MatMul', [a!, b!]));
});

test('Gemm: every transpose combination, alpha, beta, broadcast C', async () => {
  for (const [tA, tB] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ]) {
    const a = tA ? [4, 3] : [3, 4];
    const b = tB ? [5, 4] : [4, 5];
    await check(`gemm${tA}${tB}`, [a, b, [5]], (g, [x, w, c]) =>
      g.op('Gemm', [x!, w!, c!], { transA: tA!, transB: tB!, alpha: 0.7, beta: 1.3 }),
    );
  }
  await check(
    'gemm-noc',
    [
      [3, 4],
      [4, 2],
    ],
    (g, [x, w]) => g.op('Gemm', [x!, w!]),
  );
});

test('Conv 1-D/2-D/3-D with strides, pads, dilations, groups, bias', async () => {
  const o = { dtype: 'float32' as const };
  await check(
    'conv1',
    [[2, 3, 9], [4, 3, 3], [4]],
    (g, [x, w, b]) => g.op('Conv', [x!, w!, b!], { pads: [1, 2], strides: [2] }),
    o,
  );
  await check(
    'conv2',
    [
      [1, 4, 7, 6],
      [6, 2, 3, 2],
    ],
    (g, [x, w]) =>
      g.op('Conv', [x!, w!], { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 0, 1] }),
    o,
  );
  await check(
    'conv2-same',
    [
      [2, 2, 5, 5],
      [3, 2, 3, 3],
    ],
    (g, [x, w]) => g.op('Conv', [x!, w!], { auto_pad: 'SAME_UPPER', strides: [2, 2] }),
    o,
  );
  await check(
    'conv3-patchify',
    [[1, 3, 3, 4, 6], [5, 3, 1, 2, 2], [5]],
    (g, [x, w, b]) => g.op('Conv', [x!, w!, b!], { kernel_shape: [1, 2, 2], strides: [1, 2, 2] }),
    o,
  );
  await check(
    'conv2-depthwise',
    [
      [1, 3, 5, 5],
      [3, 1, 3, 3],
    ],
    (g, [x, w]) => g.op('Conv', [x!, w!], { group: 3, pads: [1, 1, 1, 1] }),
    o,
  );
});

test('Softmax, LayerNormalization, ReduceMean/ReduceSum', async () => {
  await check('softmax', [[2, 3, 5]], (g, [x]) => [
    g.op('Softmax', [x!]),
    g.op('Softmax', [x!], { axis: 1 }),
  ]);
  await check('layernorm', [[2, 3, 4], [4], [4]], (g, [x, s, b]) =>
    g.op('LayerNormalization', [x!, s!, b!], { axis: -1, epsilon: 1e-5 }),
  );
  await check(
    'layernorm-axis1',
    [
      [2, 3, 4],
      [3, 4],
    ],
    (g, [x, s]) => g.op('LayerNormalization', [x!, s!], { axis: 1 }),
    {
      dtype: 'float32',
    },
  );
  await check('reduce18', [[2, 3, 4]], (g, [x]) => [
    g.op('ReduceMean', [x!, g.const([1], 'int64', [1])], { keepdims: 1 }),
    g.op('ReduceSum', [x!, g.const([0, 2], 'int64')], { keepdims: 0 }),
    g.op('ReduceSum', [x!], { keepdims: 0 }),
    g.op('ReduceMean', [x!], { keepdims: 1 }),
  ]);
  await check(
    'reduce13',
    [[2, 3, 4]],
    (g, [x]) => [
      g.op('ReduceMean', [x!], { axes: [-1], keepdims: 0 }),
      g.op('ReduceSum', [x!, g.const([1], 'int64', [1])], { keepdims: 1 }),
    ],
    { opset: 13 },
  );
});

test('shape ops: Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Identity, Cast', async () => {
  await check(
    'shape13',
    [[2, 1, 3, 4]],
    (g, [x]) => [
      g.op('Transpose', [x!], { perm: [3, 0, 2, 1] }),
      g.op('Reshape', [x!, g.const([0, -1], 'int64')]),
      g.op('Flatten', [x!], { axis: 2 }),
      g.op('Squeeze', [x!, g.const([1], 'int64', [1])]),
      g.op('Unsqueeze', [x!, g.const([0, 5], 'int64')]),
      g.op('Expand', [x!, g.const([3, 2, 5, 3, 4], 'int64')]),
    ],
    { opset: 13 },
  );
  // through float32 and back: the float32 rounding bounds the agreement
  await check(
    'cast',
    [[3, 2]],
    (g, [x]) => g.op('Cast', [g.op('Tanh', [g.op('Cast', [x!], { to: 1 })])], { to: 11 }),
    {
      rtol: 1e-3,
      h: 1e-2,
    },
  );
});

test('Concat, Split (sizes input and num_outputs, an unused output), Slice, Gather', async () => {
  await check(
    'concat',
    [
      [2, 3],
      [2, 1],
      [2, 4],
    ],
    (g, [a, b, c]) => g.op('Concat', [a!, b!, c!], { axis: -1 }),
  );
  await check('split', [[2, 6]], (g, [x]) => {
    const [p, q] = g.opN('Split', [x!, g.const([2, 4], 'int64')], { axis: 1 }, { outputs: 2 });
    const [s] = g.opN('Split', [x!], { axis: 1, num_outputs: 3 }, { outputs: 3 });
    return [g.op('Mul', [p!, p!]), q!, s!];
  });
  await check('slice', [[4, 6, 3]], (g, [x]) => [
    g.op('Slice', [x!, g.const([1, -4], 'int64'), g.const([3, 100], 'int64'), g.const([0, 1], 'int64')]),
    g.op('Slice', [
      x!,
      g.const([0, 5], 'int64'),
      g.const([9, 0], 'int64'),
      g.const([0, 1], 'int64'),
      g.const([2, -2], 'int64'),
    ]),
  ]);
  await check('gather', [[4, 5, 2]], (g, [x]) => [
    g.op('Gather', [x!, g.const([3, 0, 3, 1, 3, 2], 'int64', [2, 3])], { axis: 1 }),
    g.op('Gather', [x!, g.const([-1], 'int64', [])], { axis: 0 }),
  ]);
});

test('Where, Max, Min, Clip', async () => {
  await check('where', [[3, 4], [4]], (g, [a, b]) => {
    const cond = g.op('Greater', [a!, g.const([0], 'float64')]);
    return g.op('Where', [cond, a!, b!]);
  });
  await check('minmax', [[3, 4], [4], [3, 1]], (g, [a, b, c]) => [
    g.op('Max', [a!, b!]),
    g.op('Min', [a!, c!]),
    g.op('Max', [a!, b!, c!]),
    g.op('Clip', [a!, g.const([-0.3], 'float64'), g.const([0.4], 'float64')]),
  ]);
});

test('parameters as initializers; a node reached only through shapes gets no gradient', async () => {
  const g = new GraphBuilder('init', 18);
  const r = rng(3);
  const x = g.input('x', 'float32', [2, 3]);
  const w = g.init('w', Float32Array, [3, 4], () => r());
  const bias = g.init('b', Float32Array, [4], () => r());
  const h = g.op('Add', [g.op('MatMul', [x, w]), bias]);
  // reshape driven by Shape(h): int values, not differentiable
  const shp = g.op('Shape', [h]);
  const flat = g.op('Reshape', [
    g.op('Tanh', [h]),
    g.op(
      'Concat',
      [
        g.op('Slice', [shp, g.const([0], 'int64', [1]), g.const([1], 'int64', [1])]),
        g.const([-1], 'int64', [1]),
      ],
      { axis: 0 },
    ),
  ]);
  g.output(flat, 'y');
  await gradCheck(g.toModel(), { wrt: ['w', 'b'], feeds: { x: randArr(r, [2, 3]) } });
});

test('Sum, Mean, Tile, Pad, LogSoftmax, LeakyRelu, Softplus, CastLike, Dropout', async () => {
  await check('sum', [[2, 3], [3], [2, 1]], (g, [a, b, c]) => g.op('Sum', [a!, b!, c!]));
  // onnxruntime has no float64 Mean kernel
  await check('mean', [[2, 3], [3]], (g, [a, b]) => g.op('Mean', [a!, b!]), { dtype: 'float32' });
  await check('tile-pad', [[2, 3]], (g, [x]) => [
    g.op('Tile', [x!, g.const([2, 3], 'int64')]),
    g.op('Pad', [x!, g.const([1, 0, 0, 2], 'int64')]),
  ]);
  await check('misc', [[3, 4]], (g, [x]) => [
    g.op('LogSoftmax', [x!], { axis: 1 }),
    g.op('LeakyRelu', [x!], { alpha: 0.2 }),
    g.op('Softplus', [x!]),
    g.op('CastLike', [x!, g.const([0], 'float64')]),
    g.op('Dropout', [x!]),
  ]);
});

test('Gather and GatherElements at opset 13: distinct indices scatter, repeated ones go through a one-hot product', async () => {
  await check('gather13', [[4, 3]], (g, [x]) => g.op('Gather', [x!, g.const([2, 0], 'int64')], { axis: 0 }), {
    opset: 13,
  });
  await check(
    'gather13r',
    [[2, 4, 3]],
    (g, [x]) => g.op('Gather', [x!, g.const([1, -3, 3, 1], 'int64', [2, 2])], { axis: 1 }),
    { opset: 13 },
  );
  await check(
    'gatherel13',
    [[3, 4]],
    (g, [x]) => g.op('GatherElements', [x!, g.const([0, 0, 3, 1, -1, 1], 'int64', [2, 3])], { axis: 1 }),
    { opset: 13 },
  );
});

test('strided Slice (positive steps through interleaving, negative through scatter) and Einsum', async () => {
  await check('slice-strided', [[5, 7, 2]], (g, [x]) => [
    // x[:, ::2] and x[1:, 1::3] as RoPE exports write them
    g.op('Slice', [
      x!,
      g.const([0], 'int64', [1]),
      g.const([100], 'int64', [1]),
      g.const([1], 'int64', [1]),
      g.const([2], 'int64', [1]),
    ]),
    g.op('Slice', [
      x!,
      g.const([1, 1], 'int64'),
      g.const([5, 6], 'int64'),
      g.const([0, 1], 'int64'),
      g.const([1, 3], 'int64'),
    ]),
    g.op('Slice', [
      x!,
      g.const([4], 'int64', [1]),
      g.const([-100], 'int64', [1]),
      g.const([0], 'int64', [1]),
      g.const([-2], 'int64', [1]),
    ]),
  ]);
  await check('einsum', [[2, 3, 4], [4, 5], [3]], (g, [a, b, v]) => [
    g.op('Einsum', [a!, b!], { equation: 'bij,jk->bik' }),
    g.op('Einsum', [a!], { equation: 'bij->jib' }),
    g.op('Einsum', [a!, v!], { equation: 'bij,i->bj' }),
    g.op('Einsum', [a!, b!], { equation: 'bij,jk' }),
    // i is summed inside a alone: its gradient is constant along i
    g.op('Einsum', [a!, b!], { equation: 'bij,jk->bk' }),
  ]);
});

test('ReduceMax, ReduceMin, ReduceSumSquare, ReduceL2 (opset 18 axes input and opset 13 attribute)', async () => {
  await check('reduce-ext18', [[3, 4, 2]], (g, [x]) => [
    g.op('ReduceMax', [x!, g.const([1], 'int64', [1])], { keepdims: 0 }),
    g.op('ReduceMin', [x!, g.const([0, 2], 'int64')], { keepdims: 1 }),
    g.op('ReduceSumSquare', [x!, g.const([2], 'int64', [1])], { keepdims: 0 }),
    g.op('ReduceL2', [x!, g.const([-1], 'int64', [1])]),
  ]);
  await check(
    'reduce-ext13',
    [[3, 4]],
    (g, [x]) => [g.op('ReduceMax', [x!], { axes: [1] }), g.op('ReduceL2', [x!], { keepdims: 0 })],
    {
      opset: 13,
    },
  );
});
