/**
 * The registry's coverage declarations (a cotangent on an output or a parameter in an input that
 * a rule does not cover is exit 2, never a silent zero) and the rules added with it, each against
 * central finite differences through onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { gradCheck } from './gradcheck.js';
import { c64, check } from './opcheck.js';
import { randArr, rng } from './ort-helper.js';

const f32 = { dtype: 'float32' as const };

test('LayerNormalization: cotangents on Mean and InvStdDev reach X', async () => {
  for (const [axis, shape] of [
    [-1, [2, 3, 4]],
    [1, [2, 3, 4]],
  ] as const) {
    await check(
      `ln-stats${axis}`,
      [[...shape], shape.slice(axis < 0 ? axis + 3 : axis), shape.slice(axis < 0 ? axis + 3 : axis)],
      (g, [x, s, b]) => g.opN('LayerNormalization', [x!, s!, b!], { axis }, { outputs: 3 }),
      f32,
    );
  }
  // only the statistics are used
  await check(
    'ln-mean-only',
    [[3, 5], [5]],
    (g, [x, s]) => g.opN('LayerNormalization', [x!, s!], {}, { outputs: 3 }).slice(1),
    f32,
  );
});

test('Pad: the padding value is differentiable too', async () => {
  await check('pad-value', [[2, 3], []], (g, [x, v]) => g.op('Pad', [x!, g.ints([0, 1, 2, 0]), v!]));
});

test('activations: Elu, Selu, Celu, PRelu, HardSigmoid, HardSwish, Mish, Softsign, Tan, Atan', async () => {
  await check(
    'act',
    [[3, 7]],
    (g, [x]) => {
      // spread over [−4, 4] so every piece of HardSwish and HardSigmoid is hit, kinks avoided
      const xs = g.op('Mul', [x!, g.const([4], 'float32')]);
      return [
        g.op('Elu', [xs], { alpha: 0.7 }),
        g.op('Selu', [xs]),
        g.op('Celu', [xs], { alpha: 1.3 }),
        g.op('HardSigmoid', [xs], { alpha: 0.3, beta: 0.4 }),
        g.op('HardSwish', [xs]),
        g.op('Mish', [x!]),
        g.op('Softsign', [x!]),
        g.op('Tan', [x!]),
        g.op('Atan', [x!]),
      ];
    },
    { ...f32, seed: 3 },
  );
  await check(
    'prelu',
    [
      [2, 3, 4],
      [3, 1],
    ],
    (g, [x, s]) => g.op('PRelu', [x!, s!]),
    { ...f32, seed: 5 },
  );
});

test('TopK, CumSum (every direction), Trilu', async () => {
  await check(
    'topk',
    [[3, 6]],
    (g, [x]) => g.opN('TopK', [x!, g.ints([2])], { axis: 1 }, { outputs: 2 })[0]!,
  );
  await check('cumsum', [[3, 4]], (g, [x]) =>
    [0, 1].flatMap((exclusive) =>
      [0, 1].map((reverse) => g.op('CumSum', [x!, g.const([1], 'int64', [])], { exclusive, reverse })),
    ),
  );
  await check('trilu', [[2, 4, 4]], (g, [x]) => [
    g.op('Trilu', [x!]),
    g.op('Trilu', [x!, g.const([-1], 'int64', [])], { upper: 0 }),
  ]);
});

test('ScatterND and ScatterElements (none and add): data and updates', async () => {
  await check(
    'scatternd',
    [
      [4, 3],
      [2, 3],
    ],
    (g, [x, u]) => [
      g.op('ScatterND', [x!, g.const([2, 0], 'int64', [2, 1]), u!]),
      g.op('ScatterND', [x!, g.const([1, 1], 'int64', [2, 1]), u!], { reduction: 'add' }),
    ],
  );
  await check(
    'scatterel',
    [
      [3, 4],
      [3, 2],
    ],
    (g, [x, u]) => [
      g.op('ScatterElements', [x!, g.const([0, 3, 1, 2, 3, 0], 'int64', [3, 2]), u!], { axis: 1 }),
      g.op('ScatterElements', [x!, g.const([0, 0, 1, 1, 2, 2], 'int64', [3, 2]), u!], {
        axis: 1,
        reduction: 'add',
      }),
    ],
  );
});

test('ReduceL1, ReduceLogSum, ReduceLogSumExp, GatherElements', async () => {
  await check('reduce-more', [[2, 3, 4]], (g, [x]) => [
    g.op('ReduceL1', [x!, g.ints([1])], { keepdims: 0 }),
    g.op('ReduceLogSum', [g.op('Add', [g.op('Mul', [x!, x!]), c64(g, 1)]), g.ints([2])]),
    g.op('ReduceLogSumExp', [x!, g.ints([0, 2])], { keepdims: 0 }),
    g.op('GatherElements', [x!, g.const([0, 2, 2, 1, 0, 0, 1, 1], 'int64', [2, 1, 4])], { axis: 1 }),
  ]);
});

test('BatchNormalization (inference and training), InstanceNormalization', async () => {
  await check(
    'bn',
    [[2, 3, 4], [3], [3], [3], [3]],
    (g, [x, s, b, m, v]) =>
      g.op('BatchNormalization', [
        x!,
        s!,
        b!,
        m!,
        g.op('Add', [g.op('Mul', [v!, v!]), g.const([0.5], 'float32')]),
      ]),
    f32,
  );
  await check(
    'bn-train',
    [[3, 2, 2, 2], [2], [2], [2], [2]],
    (g, [x, s, b, m, v]) =>
      g.opN(
        'BatchNormalization',
        [x!, s!, b!, m!, g.op('Add', [g.op('Mul', [v!, v!]), g.const([0.5], 'float32')])],
        { training_mode: 1, momentum: 0.8 },
        { outputs: 3 },
      ),
    f32,
  );
  await check(
    'instnorm',
    [[2, 3, 5], [3], [3]],
    (g, [x, s, b]) => g.op('InstanceNormalization', [x!, s!, b!], { epsilon: 1e-3 }),
    f32,
  );
});

test('GroupNormalization, per-group scale (opset 18) and per-channel (opset 21)', async () => {
  await check(
    'gn18',
    [[2, 4, 3], [2], [2]],
    (g, [x, s, b]) => g.op('GroupNormalization', [x!, s!, b!], { num_groups: 2 }),
    {
      ...f32,
      opset: 18,
    },
  );
  await check(
    'gn21',
    [[2, 4, 3], [4], [4]],
    (g, [x, s, b]) => g.op('GroupNormalization', [x!, s!, b!], { num_groups: 2 }),
    {
      ...f32,
      opset: 21,
    },
  );
});

test('Range: start and delta are differentiable, limit sets the length', async () => {
  const g = new GraphBuilder('range', 18);
  const s = g.init('start', Float64Array, [], () => 0.25);
  const d = g.init('delta', Float64Array, [], () => 0.5);
  const x = g.input('x', 'float64', [5]);
  g.output(g.op('Mul', [g.op('Range', [s, g.const([2.6], 'float64', []), d]), x]), 'y');
  await gradCheck(g.toModel(), { wrt: ['start', 'delta', 'x'], feeds: { x: randArr(rng(2), [5], true) } });
});

test('ConvTranspose: strides, pads, output_padding, dilations, groups, auto_pad, output_shape, bias', async () => {
  const cases: [string, number[], number[], Record<string, number[] | number | string>][] = [
    ['plain', [1, 2, 4], [2, 3, 3], {}],
    ['strided', [2, 2, 3, 4], [2, 3, 3, 2], { strides: [2, 3], pads: [1, 0, 0, 1], output_padding: [1, 2] }],
    ['dilated-group', [1, 4, 5], [4, 1, 3], { dilations: [2], group: 2, strides: [2] }],
    ['same-upper', [1, 2, 5], [2, 2, 4], { strides: [2], auto_pad: 'SAME_UPPER' }],
    ['same-lower', [1, 2, 5], [2, 2, 4], { strides: [2], auto_pad: 'SAME_LOWER' }],
    ['output-shape', [1, 1, 3, 3], [1, 2, 3, 3], { strides: [3, 2], output_shape: [10, 8] }],
  ];
  for (const [name, xs, ws, attrs] of cases) {
    await check(`convT-${name}`, [xs, ws], (g, [x, w]) => g.op('ConvTranspose', [x!, w!], attrs), f32);
  }
  await check(
    'convT-bias',
    [[1, 2, 3], [2, 3, 2], [3]],
    (g, [x, w, b]) => g.op('ConvTranspose', [x!, w!, b!]),
    f32,
  );
});

test('AveragePool, MaxPool (pads, strides, overlap, ceil_mode, count_include_pad, dilations), global pools', async () => {
  const cases: [string, number[], Record<string, number[] | number | string>][] = [
    ['k2', [1, 2, 4, 4], { kernel_shape: [2, 2], strides: [2, 2] }],
    ['overlap-pads', [2, 1, 5, 4], { kernel_shape: [3, 2], pads: [1, 0, 1, 1] }],
    ['ceil', [1, 1, 6], { kernel_shape: [3], strides: [2], ceil_mode: 1 }],
    ['same', [1, 1, 5, 5], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }],
    ['dilated', [1, 2, 7], { kernel_shape: [2], dilations: [2], pads: [1, 1] }],
  ];
  for (const [name, xs, attrs] of cases) {
    await check(`avg-${name}`, [xs], (g, [x]) => g.op('AveragePool', [x!], attrs), { ...f32, opset: 19 });
    await check(
      `avgpad-${name}`,
      [xs],
      (g, [x]) => g.op('AveragePool', [x!], { ...attrs, count_include_pad: 1 }),
      {
        ...f32,
        opset: 19,
      },
    );
    await check(`max-${name}`, [xs], (g, [x]) => g.op('MaxPool', [x!], attrs), { ...f32, opset: 18 });
  }
  // non-overlapping windows below opset 16 scatter without reduction
  await check(
    'max13',
    [[1, 2, 4, 4]],
    (g, [x]) => g.op('MaxPool', [x!], { kernel_shape: [2, 2], strides: [2, 2] }),
    {
      ...f32,
      opset: 13,
    },
  );
  await check(
    'global',
    [[2, 3, 4, 2]],
    (g, [x]) => [g.op('GlobalAveragePool', [x!]), g.op('GlobalMaxPool', [x!])],
    f32,
  );
});

test('Resize: nearest (every rounding), linear, cubic; scales and sizes; every coordinate mode', async () => {
  const sc = (g: GraphBuilder, v: number[]) => g.const(v, 'float32');
  const sz = (g: GraphBuilder, v: number[]) => g.const(v, 'int64');
  const cases: [string, number[], (g: GraphBuilder, x: string) => string][] = [
    ['nearest-up2', [1, 2, 3, 4], (g, x) => g.op('Resize', [x, '', sc(g, [1, 1, 2, 2])])],
    ['nearest-down', [1, 1, 5, 6], (g, x) => g.op('Resize', [x, '', sc(g, [1, 1, 0.6, 0.5])])],
    [
      'nearest-sizes-ceil',
      [1, 1, 3, 4],
      (g, x) =>
        g.op('Resize', [x, '', '', sz(g, [1, 1, 7, 5])], {
          nearest_mode: 'ceil',
          coordinate_transformation_mode: 'asymmetric',
        }),
    ],
    [
      'nearest-align-prefer-ceil',
      [1, 1, 4],
      (g, x) =>
        g.op('Resize', [x, '', '', sz(g, [1, 1, 9])], {
          nearest_mode: 'round_prefer_ceil',
          coordinate_transformation_mode: 'align_corners',
        }),
    ],
    ['linear-up', [1, 2, 3, 4], (g, x) => g.op('Resize', [x, '', sc(g, [1, 1, 2, 1.5])], { mode: 'linear' })],
    [
      'linear-down-pytorch',
      [1, 1, 6, 5],
      (g, x) =>
        g.op('Resize', [x, '', '', sz(g, [1, 1, 3, 1])], {
          mode: 'linear',
          coordinate_transformation_mode: 'pytorch_half_pixel',
        }),
    ],
    [
      'linear-align',
      [2, 1, 3],
      (g, x) =>
        g.op('Resize', [x, '', sc(g, [1, 1, 2.5])], {
          mode: 'linear',
          coordinate_transformation_mode: 'align_corners',
        }),
    ],
    ['cubic', [1, 1, 4, 4], (g, x) => g.op('Resize', [x, '', sc(g, [1, 1, 1.5, 2])], { mode: 'cubic' })],
    [
      'cubic-exclude',
      [1, 1, 3, 5],
      (g, x) =>
        g.op('Resize', [x, '', sc(g, [1, 1, 1, 0.8])], {
          mode: 'cubic',
          exclude_outside: 1,
          cubic_coeff_a: -0.5,
        }),
    ],
    [
      'crop-extrapolate',
      [1, 1, 4, 5],
      (g, x) =>
        g.op('Resize', [x, sc(g, [0, 0, 0.2, -0.3, 1, 1, 1.3, 0.8]), '', sz(g, [1, 1, 3, 4])], {
          mode: 'linear',
          coordinate_transformation_mode: 'tf_crop_and_resize',
          extrapolation_value: 2,
        }),
    ],
  ];
  for (const [name, xs, build] of cases) await check(`resize-${name}`, [xs], (g, [x]) => build(g, x!), f32);
});

test('a parameter reaching an input no rule covers is exit 2 naming node and input', () => {
  const g = new GraphBuilder('resize', 18);
  const x = g.input('x', 'float32', [1, 1, 2, 2]);
  const s = g.init('up.scales', Float32Array, [4], (i) => (i < 2 ? 1 : 2));
  g.output(g.op('Resize', [x, '', s], { mode: 'linear' }, { name: 'up1' }), 'y');
  assert.throws(
    () => buildGradientGraph(g.toModel(), { wrt: ['up.scales'] }),
    (e: Error & { exitCode?: number }) =>
      e.exitCode === 2 && /node 'up1' \(Resize\).*input 2 \('up\.scales'\)/.test(e.message),
  );
  assert.ok(buildGradientGraph(g.toModel(), { wrt: ['x'] }).params.includes('x'));
});

test('graphs below opset 13 are read as opset 16 with the same meaning (attribute forms, old Softmax)', async () => {
  await check(
    'opset11',
    [[2, 3, 4]],
    (g, [x]) => {
      const [a, b] = g.opN('Split', [x!], { axis: 2, split: [1, 3] }, { outputs: 2 });
      return [
        g.op('Softmax', [x!], { axis: 1 }), // over the trailing 3·4 block before opset 13
        g.op('LogSoftmax', [x!]),
        g.op('ReduceSum', [g.op('Unsqueeze', [a!], { axes: [0] })], { axes: [3], keepdims: 0 }),
        g.op('Squeeze', [g.op('ReduceMean', [b!], { axes: [1] })], { axes: [1] }),
        g.op('Pad', [x!, g.ints([0, 1, 0, 0, 0, 2]), g.const([0.5], 'float64', [])]),
      ];
    },
    { opset: 11 },
  );
  await check(
    'opset9',
    [[2, 5]],
    (g, [x]) => [
      g.op('Slice', [x!], { starts: [1], ends: [4], axes: [1] }),
      g.op('Clip', [x!], { min: -0.3, max: 0.4 }),
      g.op('Pad', [x!], { pads: [1, 0, 0, 2], value: 1.5 }),
      g.opN('TopK', [x!], { k: 2 }, { outputs: 2 })[0]!,
    ],
    { opset: 9, dtype: 'float32' },
  );
});

test('RMSNormalization (opset 23), last axis and from axis 1', async () => {
  await check('rms', [[2, 3, 4], [4]], (g, [x, s]) => g.op('RMSNormalization', [x!, s!], { epsilon: 1e-3 }), {
    ...f32,
    opset: 23,
  });
  await check(
    'rms-axis1',
    [
      [2, 3, 4],
      [3, 4],
    ],
    (g, [x, s]) => g.op('RMSNormalization', [x!, s!], { axis: 1 }),
    {
      ...f32,
      opset: 23,
    },
  );
});

test('Attention (opset 23): 4-D with grouped heads, 3-D, additive and boolean masks, is_causal, scale', async () => {
  const o23 = { ...f32, opset: 23 };
  await check(
    'attn4d-gqa',
    [
      [2, 4, 3, 5],
      [2, 2, 6, 5],
      [2, 2, 6, 3],
    ],
    (g, [q, k, v]) => g.op('Attention', [q!, k!, v!]),
    o23,
  );
  await check(
    'attn3d-mask',
    [
      [1, 3, 8],
      [1, 4, 8],
      [1, 4, 6],
      [3, 4],
    ],
    (g, [q, k, v, m]) => g.op('Attention', [q!, k!, v!, m!], { q_num_heads: 2, kv_num_heads: 2, scale: 0.7 }),
    o23,
  );
  await check(
    'attn-bool-causal',
    [
      [1, 2, 4, 3],
      [1, 2, 4, 3],
      [1, 2, 4, 3],
    ],
    (g, [q, k, v]) => [
      g.op('Attention', [q!, k!, v!], { is_causal: 1 }),
      g.op('Attention', [
        q!,
        k!,
        v!,
        g.const([1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1], 'bool', [4, 4]),
      ]),
    ],
    o23,
  );
});

test('inverse trigonometric and hyperbolic functions, ThresholdedRelu, Shrink', async () => {
  await check(
    'trig',
    [[3, 4]],
    (g, [x]) => {
      const half = g.op('Mul', [x!, g.const([0.8], 'float32')]);
      return [
        g.op('Asin', [half]),
        g.op('Acos', [half]),
        g.op('Atanh', [half]),
        g.op('Sinh', [x!]),
        g.op('Cosh', [x!]),
        g.op('Asinh', [x!]),
        g.op('Acosh', [g.op('Add', [g.op('Mul', [x!, x!]), g.const([1.5], 'float32')])]),
      ];
    },
    f32,
  );
  await check(
    'cut',
    [[3, 5]],
    (g, [x]) => [
      g.op('ThresholdedRelu', [x!], { alpha: 0.3 }),
      g.op('Shrink', [x!], { lambd: 0.4, bias: 0.1 }),
    ],
    // a seed whose point is not within h of the jumps at α and ±λ (both functions jump there)
    { ...f32, seed: 11 },
  );
});

test('GatherND, DepthToSpace (DCR, CRD), SpaceToDepth, LpNormalization (p 1 and 2)', async () => {
  await check('gathernd', [[3, 4, 2]], (g, [x]) =>
    g.op('GatherND', [x!, g.const([0, 1, 2, 3, 0, 1], 'int64', [3, 2])]),
  );
  await check(
    'd2s',
    [[1, 8, 2, 3]],
    (g, [x]) => [
      g.op('DepthToSpace', [x!], { blocksize: 2 }),
      g.op('DepthToSpace', [x!], { blocksize: 2, mode: 'CRD' }),
      g.op('SpaceToDepth', [g.op('DepthToSpace', [x!], { blocksize: 2 })], { blocksize: 2 }),
    ],
    f32,
  );
  await check(
    'lpnorm',
    [[2, 3, 4]],
    (g, [x]) => [g.op('LpNormalization', [x!], { p: 2 }), g.op('LpNormalization', [x!], { p: 1, axis: 1 })],
    f32,
  );
});

test('Einsum with an ellipsis (explicit and implicit output, different ellipsis ranks)', async () => {
  await check(
    'einsum-ell',
    [
      [2, 3, 4, 5],
      [2, 3, 5, 2],
      [3, 4, 5],
      [5, 6],
    ],
    (g, [a, b, c, d]) => [
      g.op('Einsum', [a!, b!], { equation: '...ij,...jk->...ik' }),
      g.op('Einsum', [a!, d!], { equation: '...j,jk' }),
      g.op('Einsum', [a!, c!], { equation: 'b...j,...j->...b' }),
    ],
  );
});

test('an opset-13 graph that stays at 13 (an operator not read as 16): Gather/GatherElements through one-hot products', async () => {
  const g = new GraphBuilder('onehot13', 13);
  const x = g.input('x', 'float64', [4, 3]);
  const idx = g.input('idx', 'int64', [5]);
  const z = g.input('z', 'float32', [2, 3]);
  g.output(g.op('Gather', [x, idx], { axis: 0 }), 'y0');
  g.output(g.op('GatherElements', [x, g.const([0, 3, 3, -1, 1, 1], 'int64', [2, 3])], { axis: 0 }), 'y1');
  g.output(g.op('Hardmax', [z]), 'h'); // no opset-16 reading: the graph keeps opset 13
  const r = rng(4);
  const feeds = {
    x: randArr(r, [4, 3], true),
    idx: { data: BigInt64Array.from([1n, 3n, -1n, 1n, 0n]), dims: [5] },
    z: randArr(r, [2, 3]),
  };
  const { model } = buildGradientGraph(g.toModel(), { wrt: ['x'] });
  assert.equal(model.opsetImport?.[0]?.version, 13);
  assert.ok(!model.graph?.node?.some((n) => n.opType === 'ScatterElements'), 'one-hot, no ScatterElements');
  await gradCheck(g.toModel(), { wrt: ['x'], feeds });
});

test('ScatterND and ScatterElements with reduction mul (distinct constant indices)', async () => {
  await check(
    'scatter-mul',
    [
      [4, 3],
      [2, 3],
      [3, 4],
      [3, 2],
    ],
    (g, [x, u, y, v]) => [
      g.op('ScatterND', [x!, g.const([2, 0], 'int64', [2, 1]), u!], { reduction: 'mul' }),
      g.op('ScatterElements', [y!, g.const([0, 3, 1, 2, 3, 0], 'int64', [3, 2]), v!], {
        axis: 1,
        reduction: 'mul',
      }),
    ],
  );
  assert.throws(
    () =>
      buildGradientGraph(
        (() => {
          const g = new GraphBuilder('dup', 18);
          const x = g.input('x', 'float64', [4]);
          g.output(
            g.op('ScatterND', [x, g.const([1, 1], 'int64', [2, 1]), g.const([2, 3], 'float64')], {
              reduction: 'mul',
            }),
            'y',
          );
          return g.toModel();
        })(),
        { wrt: ['x'] },
      ),
    /only 'mul' with distinct constant indices/,
  );
});
