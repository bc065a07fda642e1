/**
 * The shortcuts that keep gradient graphs lean, each against central finite differences through
 * onnxruntime, including the cases where a shortcut must not apply: reduction cotangents left
 * broadcastable, attention's row-sum identity, the patch-embedding Conv as one product, bias
 * sums as a ones product, merged Transposes. Plus node-count checks that the shortcuts fire.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { type DTypeName, GraphBuilder } from '../../src/onnx/builder.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { gradCheck } from './gradcheck.js';
import { type Arr, randArr, rng } from './ort-helper.js';

type Build = (g: GraphBuilder, x: string[]) => string | string[];

function graph(name: string, shapes: number[][], build: Build, dtype: DTypeName, seed: number) {
  const g = new GraphBuilder(name, 18);
  const r = rng(seed);
  const feeds: Record<string, Arr> = {};
  const xs = shapes.map((s, i) => {
    const n = g.input(`x${i}`, dtype, s);
    feeds[n] = randArr(r, s, dtype === 'float64');
    return n;
  });
  const ys = build(g, xs);
  (Array.isArray(ys) ? ys : [ys]).forEach((y, i) => {
    g.output(y, `y${i}`);
  });
  return { model: g.toModel(), xs, feeds };
}

async function check(name: string, shapes: number[][], build: Build, dtype: DTypeName = 'float64') {
  const { model, xs, feeds } = graph(name, shapes, build, dtype, 11);
  await gradCheck(model, { wrt: xs, feeds, seed: 12 });
}

const ops = (m: ModelProto, type: string) => m.graph!.node!.filter((n) => n.opType === type).length;

test('reduction cotangents: broadcast by elementwise rules, expanded for the others', async () => {
  await check(
    'reduce',
    [
      [2, 3, 4],
      [4, 5],
    ],
    (g, [x, w]) => [
      g.op('ReduceMean', [g.op('Transpose', [x!], { perm: [1, 0, 2] }), g.ints([2])], { keepdims: 0 }),
      g.op('ReduceSum', [g.op('MatMul', [x!, w!]), g.ints([1])], { keepdims: 1 }),
      g.op('Mul', [g.op('ReduceSum', [g.op('Softmax', [x!], { axis: 1 }), g.ints([1])]), x!]),
      g.op('ReduceSum', [
        g.op('ReduceMean', [g.op('Pow', [x!, g.const([2], 'float64')]), g.ints([2])], { keepdims: 1 }),
        g.ints([0]),
      ]),
      g.op('Sqrt', [g.op('ReduceSumSquare', [x!, g.ints([0, 2])], { keepdims: 1 })]),
    ],
  );
  // RMS-style normalisation: the mean's cotangent reaches x without an Expand
  const rms = graph(
    'rms',
    [[2, 3, 8]],
    (g, [x]) => {
      const ms = g.op('ReduceMean', [g.op('Pow', [x!, g.const([2], 'float64')]), g.ints([-1])]);
      return g.op('Div', [x!, g.op('Sqrt', [g.op('Add', [ms, g.const([1e-6], 'float64')])])]);
    },
    'float64',
    3,
  );
  assert.equal(ops(buildGradientGraph(rms.model, { wrt: ['x0'] }).model, 'Expand'), 0);
  await gradCheck(rms.model, { wrt: rms.xs, feeds: rms.feeds, seed: 4 });
});

test('attention: Σ dO·O replaces Σ dP·P, and the bracket is one product, only where P feeds just the MatMul', async () => {
  const attn = (g: GraphBuilder, q: string, k: string, v: string, axis = -1) =>
    g.op('MatMul', [
      g.op(
        'Softmax',
        [
          g.op('Mul', [
            g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]),
            g.const([0.5], 'float64'),
          ]),
        ],
        { axis },
      ),
      v,
    ]);
  const shapes = [
    [2, 3, 5, 4],
    [2, 3, 6, 4],
    [2, 3, 6, 4],
  ];
  await check('attn', shapes, (g, [q, k, v]) => attn(g, q!, k!, v!));
  // the weights are an output too: the identity does not hold for their cotangent
  await check('attn-p-out', shapes, (g, [q, k, v]) => {
    const o = attn(g, q!, k!, v!);
    const p = g.graph.node!.find((n) => n.opType === 'Softmax')!.output![0]!;
    return [o, p];
  });
  // values broadcast over batch and heads, and Softmax over another axis
  await check(
    'attn-bcast',
    [
      [2, 3, 5, 4],
      [2, 3, 6, 4],
      [6, 4],
    ],
    (g, [q, k, v]) => attn(g, q!, k!, v!),
  );
  await check(
    'attn-axis',
    [
      [2, 3, 6, 4],
      [2, 3, 6, 4],
      [2, 3, 6, 4],
    ],
    (g, [q, k, v]) => attn(g, q!, k!, v!, -2),
  );
  // the large P⊙dP product is gone: its only Mul reading the Softmax output is the final one
  const { model } = graph('attn', shapes, (g, [q, k, v]) => attn(g, q!, k!, v!), 'float64', 1);
  const grad = buildGradientGraph(model, { wrt: ['x0', 'x1', 'x2'] }).model;
  const p = grad.graph!.node!.find((n) => n.opType === 'Softmax')!.output![0]!;
  assert.equal(grad.graph!.node!.filter((n) => n.opType === 'Mul' && n.input!.includes(p)).length, 1);
  // and dP − Σ dO·O is one product [dO, r]·[V, −1]ᵀ: no subtraction pass over the weights
  assert.equal(ops(grad, 'Sub'), 0);
  assert.equal(ops(grad, 'Concat'), 2);
});

test('patch-embedding Conv (kernel = stride, no padding): weight gradient as one product', async () => {
  const conv =
    (kernel: number[]) =>
    (g: GraphBuilder, [x, w, b]: string[]) =>
      g.op('Conv', [x!, w!, b!], { kernel_shape: kernel, strides: kernel });
  await check('patch2d', [[2, 3, 4, 6], [5, 3, 2, 3], [5]], conv([2, 3]), 'float32');
  await check('patch3d', [[1, 2, 2, 4, 4], [3, 2, 1, 2, 2], [3]], conv([1, 2, 2]), 'float32');
  const { model } = graph('p', [[2, 3, 4, 6], [5, 3, 2, 3], [5]], conv([2, 3]), 'float32', 1);
  const grad = buildGradientGraph(model, { wrt: ['x1'] }).model;
  assert.equal(ops(grad, 'Conv'), 1); // the forward's only
});

test('broadcast sums: leading axes as a ones product, other axes by ReduceSum', async () => {
  await check('bias', [[2, 5, 4], [4], [3, 2, 5], [1, 2, 1], [2, 3, 4, 5], [4, 5], [1, 3, 1, 5]], (g, x) => [
    g.op('Add', [x[0]!, x[1]!]),
    g.op('Mul', [x[2]!, x[3]!]),
    g.op('Sub', [x[4]!, x[5]!]),
    g.op('Div', [x[4]!, g.op('Add', [g.op('Mul', [x[6]!, x[6]!]), g.const([1], 'float64')])]),
  ]);
});

test('Transposes: chains composed, size-1 axes dropped, adjacent axes merged', async () => {
  await check(
    'transpose',
    [
      [1, 3, 1, 4, 2],
      [1, 4, 2, 2, 3, 2, 2],
    ],
    (g, [x, y]) => [
      g.op('Transpose', [g.op('Transpose', [x!], { perm: [4, 2, 0, 3, 1] })], { perm: [1, 0, 4, 3, 2] }),
      g.op('Transpose', [y!], { perm: [0, 4, 1, 2, 5, 3, 6] }),
    ],
  );
  const { model } = graph(
    't',
    [[1, 4, 2, 2, 3, 2, 2]],
    (g, [y]) => g.op('Transpose', [y!], { perm: [0, 4, 1, 2, 5, 3, 6] }),
    'float64',
    1,
  );
  const grad = buildGradientGraph(model, { wrt: ['x0'] }).model;
  const t = grad.graph!.node!.filter((n) => n.opType === 'Transpose');
  // the forward's 7-D Transpose and one 5-D one for the cotangent ([4·2... merged], size 1 dropped)
  assert.equal(t.length, 2);
  assert.equal(t[1]!.attribute!.find((a) => a.name === 'perm')!.ints!.length, 5);
});

test('contributions from linear layers accumulate in the Gemm that computes dX', async () => {
  const build: Build = (g, [x, w1, w2, w3]) => [
    g.op('MatMul', [x!, w1!]),
    g.op('Tanh', [g.op('MatMul', [x!, w2!])]),
    g.op('Sin', [x!]),
    g.op('MatMul', [x!, w3!]),
  ];
  const shapes = [
    [2, 5, 4],
    [4, 3],
    [4, 6],
    [4, 2],
  ];
  await check('linears', shapes, build);
  const { model } = graph('linears', shapes, build, 'float64', 1);
  const grad = buildGradientGraph(model, { wrt: ['x0'] }).model;
  // dX = Σ of three products and an elementwise term: no separate Add or Sum pass
  assert.equal(ops(grad, 'Add') + ops(grad, 'Sum'), 0);
  assert.ok(grad.graph!.node!.some((n) => n.opType === 'Gemm' && n.input!.length === 3));
});

/** `v` rounded to bfloat16 (round to nearest on the upper 16 bits of its float32). */
function bf16(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0]! + 0x8000) & 0xffff0000;
  return f[0]!;
}

/** GELU spelt in primitives, as exporters below opset 20 write it (the input is a linear layer's). */
const GELU_SPELLINGS: Record<string, (g: GraphBuilder, x: string, dt: DTypeName) => string> = {
  // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715·x³))), the cube as (x·x)·x
  tanhProducts: (g, x, dt) => {
    const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const u = g.op('Mul', [
      g.op('Add', [x, g.op('Mul', [x3, g.const([0.044715], dt)])]),
      g.const([Math.sqrt(2 / Math.PI)], dt),
    ]);
    return g.op('Mul', [
      g.op('Mul', [x, g.const([0.5], dt)]),
      g.op('Add', [g.const([1], dt), g.op('Tanh', [u])]),
    ]);
  },
  // the same with Pow, the half taken last and the operands the other way round
  tanhPow: (g, x, dt) => {
    const inner = g.op('Add', [
      g.op('Mul', [g.const([0.044715], dt), g.op('Pow', [x, g.const([3], dt)])]),
      x,
    ]);
    const t = g.op('Tanh', [g.op('Mul', [g.const([Math.sqrt(2 / Math.PI)], dt), inner])]);
    return g.op('Mul', [g.op('Mul', [g.op('Add', [t, g.const([1], dt)]), x]), g.const([0.5], dt)]);
  },
  // a bf16 export's constants (0.044715 → 0.04468, √(2/π) → 0.7969): the derivative must be the
  // one of the function these constants define, not GELU's (a float64 check would see 1e-3)
  tanhBf16Constants: (g, x, dt) => {
    const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const u = g.op('Mul', [
      g.op('Add', [x, g.op('Mul', [x3, g.const([bf16(0.044715)], dt)])]),
      g.const([bf16(Math.sqrt(2 / Math.PI))], dt),
    ]);
    return g.op('Mul', [
      g.op('Mul', [x, g.const([0.5], dt)]),
      g.op('Add', [g.const([1], dt), g.op('Tanh', [u])]),
    ]);
  },
  // the exact form: 0.5·x·(1 + erf(x/√2))
  erf: (g, x, dt) => {
    const e = g.op('Erf', [g.op('Div', [x, g.const([Math.SQRT2], dt)])]);
    return g.op('Mul', [g.op('Mul', [x, g.op('Add', [e, g.const([1], dt)])]), g.const([0.5], dt)]);
  },
};

function geluNet(spelling: string, dt: DTypeName, extra?: 'tanhOut') {
  return graph(
    `gelu-${spelling}`,
    [[2, 5, 4], [4, 6], [6]],
    (g, [x, w, b]) => {
      const y = GELU_SPELLINGS[spelling]!(g, g.op('Add', [g.op('MatMul', [x!, w!]), b!]), dt);
      const outs = [
        g.op('MatMul', [
          y,
          g.const(
            Array.from({ length: 12 }, (_, i) => i / 6 - 1),
            dt,
            [6, 2],
          ),
        ]),
      ];
      if (extra) outs.push(g.graph.node!.find((n) => n.opType === 'Tanh' || n.opType === 'Erf')!.output![0]!);
      return outs;
    },
    dt,
    3,
  );
}

test("GELU written in primitives gets GELU's own derivative, in any spelling", async () => {
  for (const spelling of Object.keys(GELU_SPELLINGS)) {
    // onnxruntime has no float64 Erf: the exact form is checked in float32
    const dt = spelling === 'erf' ? 'float32' : 'float64';
    const { model, xs, feeds } = geluNet(spelling, dt);
    await gradCheck(model, { wrt: xs, feeds, seed: 4, ...(dt === 'float32' ? { h: 1e-2, rtol: 1e-2 } : {}) });
    for (const dt of ['float64', 'float32'] as const) {
      const grad = buildGradientGraph(geluNet(spelling, dt).model, { wrt: ['x0', 'x1', 'x2'] }).model;
      // recognised: the backward reads x alone (σ for the tanh form, erf and exp for the exact
      // one) and never differentiates the chain's Tanh/Pow
      if (spelling === 'erf')
        assert.deepEqual([ops(grad, 'Erf'), ops(grad, 'Exp')], [2, 1], `${spelling} ${dt}`);
      else assert.deepEqual([ops(grad, 'Sigmoid'), ops(grad, 'Tanh')], [1, 1], `${spelling} ${dt}`);
    }
  }
});

test('chains that are not GELU, or share an intermediate, keep the chain rule', async () => {
  // 0.5·x·(1 + tanh(0.6·x)) is not GELU
  const other = graph(
    'not-gelu',
    [[3, 4]],
    (g, [x]) => {
      const t = g.op('Tanh', [g.op('Mul', [x!, g.const([0.6], 'float64')])]);
      return g.op('Mul', [
        g.op('Mul', [x!, g.const([0.5], 'float64')]),
        g.op('Add', [t, g.const([1], 'float64')]),
      ]);
    },
    'float64',
    5,
  );
  await gradCheck(other.model, { wrt: other.xs, feeds: other.feeds, seed: 6 });
  assert.equal(ops(buildGradientGraph(other.model, { wrt: ['x0'] }).model, 'Sigmoid'), 0);
  // the Tanh's output is also a graph output: its cotangent must reach x through the chain
  for (const spelling of ['tanhProducts', 'erf']) {
    const dt = spelling === 'erf' ? 'float32' : 'float64';
    const shared = geluNet(spelling, dt, 'tanhOut');
    await gradCheck(shared.model, {
      wrt: shared.xs,
      feeds: shared.feeds,
      seed: 7,
      ...(dt === 'float32' ? { h: 1e-2, rtol: 1e-2 } : {}),
    });
    const grad = buildGradientGraph(shared.model, { wrt: ['x0'] }).model;
    // not recognised: no σ of the tanh form's derivative, no second Erf of the exact one's
    if (spelling === 'erf') assert.equal(ops(grad, 'Erf'), 1, spelling);
    else assert.equal(ops(grad, 'Sigmoid'), 0, spelling);
  }
});
