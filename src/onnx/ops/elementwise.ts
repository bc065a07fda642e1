/**
 * Elementwise operators: arithmetic with broadcasting, activations, comparisons, casts, and the
 * row-wise Softmax family.
 */

import { InputError } from '../../errors.js';
import type { GradContext } from '../emit.js';
import { attrFloat, attrInt, attrString, nodeLabel } from '../graph.js';
import { DataType, type NodeProto } from '../proto.js';
import { attentionSoftmaxBracket } from './linalg.js';
import { I, type Infer, O, type OpDef, type ValueType, type Vjp } from './types.js';
import { broadcastIndex, broadcastShapes, normAxis } from './util.js';

const X0 = (ins: (ValueType | undefined)[]): ValueType => {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  return x;
};
/** Output 0 has input 0's type (and a second output, for Dropout's mask, is bool). */
export const sameAsInput: Infer = (_n, ins) => [{ elemType: X0(ins).elemType, shape: [...X0(ins).shape] }];
const broadcastOut: Infer = (_n, ins) => [
  { elemType: X0(ins).elemType, shape: broadcastShapes(...ins.flatMap((t) => (t ? [t.shape] : []))) },
];
const boolOut: Infer = (_n, ins) => [
  { elemType: DataType.BOOL, shape: broadcastShapes(...ins.flatMap((t) => (t ? [t.shape] : []))) },
];

/** The shape rules above: exact where input dims are known only at run time (RUNTIME_DIM). */
export const EXACT_INFERS: ReadonlySet<Infer> = new Set([sameAsInput, broadcastOut, boolOut]);

/** Folding of an elementwise function of broadcast inputs. */
const foldWith =
  (f: (v: number[], isInt: boolean) => number) =>
  (
    _n: NodeProto,
    cs: ({ data: number[]; shape: number[]; elemType: number } | undefined)[],
    out: ValueType,
  ) => {
    const ins = cs.flatMap((c) => (c ? [c] : []));
    const idx = ins.map((c) => broadcastIndex(c.shape, out.shape));
    const isInt = !!ins[0] && ins[0].elemType !== DataType.FLOAT && ins[0].elemType !== DataType.DOUBLE;
    return (idx[0] ?? []).map((_, k) =>
      f(
        ins.map((c, j) => c.data[idx[j]?.[k] ?? 0] ?? 0),
        isInt,
      ),
    );
  };

/** y = f(x) with dX = dY · f'(x), f' emitted by `deriv` from the forward values. */
const unary = (
  deriv: (c: GradContext, x: string, y: string, et: number, n: NodeProto) => string,
  broadcast = false,
): OpDef => ({
  infer: sameAsInput,
  grad: {
    vjp: (c, n, [dY]) => [c.mul(dY!, deriv(c, I(n, 0), O(n), c.et(I(n, 0)), n))],
    inputs: [0],
    outputs: [0],
    broadcast,
  },
});

/** Binary broadcast rule: `pa`/`pb` give the unreduced cotangents (of the output's shape). */
const binary =
  (
    pa: (c: GradContext, dY: string, n: NodeProto) => string,
    pb: (c: GradContext, dY: string, n: NodeProto) => string,
  ): Vjp =>
  (c, n, [dY], w) => [
    w[0] ? c.sumTo(pa(c, dY!, n), O(n), I(n, 0)) : undefined,
    w[1] ? c.sumTo(pb(c, dY!, n), O(n), I(n, 1)) : undefined,
  ];

const arith = (f: (a: number, b: number, isInt: boolean) => number, vjp: Vjp): OpDef => ({
  infer: broadcastOut,
  fold: foldWith(([a, b], i) => f(a ?? 0, b ?? 0, i)),
  grad: { vjp, inputs: 'all', outputs: [0], broadcast: true },
});

const compare = (f: (a: number, b: number) => boolean): OpDef => ({
  infer: boolOut,
  fold: foldWith(([a, b]) => +f(a ?? 0, b ?? 0)),
  grad: 'zero',
});

/** Piecewise-constant (or integer-valued) unary functions: no gradient. */
const stepFn = (f?: (a: number) => number): OpDef => ({
  infer: sameAsInput,
  ...(f ? { fold: foldWith(([a]) => f(a ?? 0)) } : {}),
  grad: 'zero',
});

/** Where `x > 0` (or `mask`) pass dY·a, elsewhere dY·b. */
const where = (c: GradContext, mask: string, a: string, b: string) => c.op('Where', [mask, a, b]);
const positive = (c: GradContext, x: string) => c.op('Greater', [x, c.scalar(0, c.et(x))]);

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const SELU_ALPHA = Math.fround(1.6732632); // the float32 defaults of the ONNX spec
const SELU_GAMMA = Math.fround(1.050701);

/**
 * A GELU form: tanh, y = 0.5·x·(1 + tanh(a·x + b·x³)); none (exact), y = 0.5·x·(1 + erf(a·x)).
 * The Gelu operator has GELU's own coefficients (GELU_FORMS); a chain written in primitives
 * (src/onnx/composites.ts) has those its constants hold, at their precision.
 */
export interface GeluForm {
  approximate: 'tanh' | 'none';
  a: number;
  b: number;
}

export const GELU_FORMS: Readonly<Record<GeluForm['approximate'], GeluForm>> = {
  tanh: { approximate: 'tanh', a: SQRT_2_OVER_PI, b: SQRT_2_OVER_PI * 0.044715 },
  none: { approximate: 'none', a: Math.SQRT1_2, b: 0 },
};

/** The derivative of GELU form `f` at x, from x alone. */
export function geluDerivative(c: GradContext, x: string, f: GeluForm): string {
  const s = (v: number) => c.scalar(v, c.et(x));
  if (f.approximate === 'tanh') {
    // y = 0.5x(1 + tanh u) = x·σ(v), v = 2u = x(k0 + k1x²), u = ax + bx³, so
    // y' = σ(v)·(1 + x(1 − σ(v))·v'), v' = k0 + 3k1x²: fewer passes than the tanh form
    const [k0, k1] = [2 * f.a, 2 * f.b];
    const x2 = c.mul(x, x);
    const sv = c.op('Sigmoid', [c.mul(x, c.op('Add', [c.mul(x2, s(k1)), s(k0)]))]);
    const xv = c.mul(x, c.op('Add', [c.mul(x2, s(3 * k1)), s(k0)]));
    return c.mul(sv, c.op('Add', [c.mul(xv, c.op('Sub', [s(1), sv])), s(1)]));
  }
  // 0.5(1 + erf(ax)) + x·(a/√π)·exp(−a²x²)  (a = 1/√2: Φ(x) + x·φ(x))
  const cdf = c.mul(c.op('Add', [s(1), c.op('Erf', [c.mul(x, s(f.a))])]), s(0.5));
  const pdf = c.mul(c.op('Exp', [c.mul(c.mul(x, x), s(-f.a * f.a))]), s(f.a / Math.sqrt(Math.PI)));
  return c.op('Add', [cdf, c.mul(x, pdf)]);
}

function minMax(cmp: 'GreaterOrEqual' | 'LessOrEqual'): Vjp {
  return (c, n, [dY], w) => {
    const ins = n.input ?? [];
    const zero = c.scalar(0, c.et(O(n)));
    if (ins.length === 1) return [dY];
    if (ins.length === 2) {
      const m = c.op(cmp, [I(n, 0), I(n, 1)]);
      return [
        w[0] ? c.sumTo(c.op('Where', [m, dY!, zero]), O(n), I(n, 0)) : undefined,
        w[1] ? c.sumTo(c.op('Where', [m, zero, dY!]), O(n), I(n, 1)) : undefined,
      ];
    }
    return ins.map((x, i) =>
      w[i] ? c.sumTo(c.op('Where', [c.op('Equal', [x, O(n)]), dY!, zero]), O(n), x) : undefined,
    );
  };
}

export const ELEMENTWISE: Record<string, OpDef> = {
  Identity: {
    infer: sameAsInput,
    fold: (_n, [c]) => c?.data,
    grad: { vjp: (_c, _n, [dY]) => [dY], inputs: [0], outputs: [0], broadcast: true },
  },
  Dropout: {
    infer: (n, ins) => [
      ...sameAsInput(n, ins, [], 0),
      { elemType: DataType.BOOL, shape: [...X0(ins).shape] },
    ],
    grad: {
      // the identity unless training mode (input 2) is on with a ratio above 0: that is random
      vjp: (c, n, [dY]) => {
        const training = n.input?.[2] ? c.constOf(I(n, 2))?.data[0] : 0;
        const ratio = n.input?.[1] ? c.constOf(I(n, 1))?.data[0] : 0.5;
        if (training !== 0 && ratio !== 0) {
          throw new InputError(
            'model',
            `node ${nodeLabel(n)} (Dropout): training mode is random and has no gradient rule`,
          );
        }
        return [dY];
      },
      inputs: [0],
      constant: [1, 2],
      valueNeeded: [1, 2],
      outputs: [0],
    },
  },
  Neg: {
    infer: sameAsInput,
    fold: foldWith(([a]) => -(a ?? 0)),
    grad: { vjp: (c, _n, [dY]) => [c.op('Neg', [dY!])], inputs: [0], outputs: [0], broadcast: true },
  },
  Add: arith(
    (a, b) => a + b,
    binary(
      (_c, d) => d,
      (_c, d) => d,
    ),
  ),
  Sub: arith(
    (a, b) => a - b,
    (c, n, [dY], w) => {
      // negate after any broadcast reduction, on the smaller tensor
      return [
        w[0] ? c.sumTo(dY!, O(n), I(n, 0)) : undefined,
        w[1] ? c.op('Neg', [c.sumTo(dY!, O(n), I(n, 1))]) : undefined,
      ];
    },
  ),
  Mul: arith(
    (a, b) => a * b,
    binary(
      (c, d, n) => c.mul(d, I(n, 1)),
      (c, d, n) => c.mul(d, I(n, 0)),
    ),
  ),
  Div: arith(
    (a, b, i) => (i ? Math.trunc(a / b) : a / b),
    (c, n, [dY], w) => {
      const y = c.shape(O(n));
      const dA = c.op('Div', [dY!, I(n, 1)]);
      return [
        w[0] ? c.unbroadcast(dA, y, c.shape(I(n, 0))) : undefined,
        w[1] ? c.op('Neg', [c.unbroadcast(c.mul(dA, O(n)), y, c.shape(I(n, 1)))]) : undefined,
      ];
    },
  ),
  Pow: arith(
    (a, b) => a ** b,
    (c, n, [dY], w) => {
      const x = I(n, 0);
      const e = I(n, 1);
      const et = c.et(x);
      const y = c.shape(O(n));
      let dX: string | undefined;
      if (w[0]) {
        const ec = c.constOf(e);
        let g: string;
        if (ec && ec.data.length === 1) {
          // e·dY first: dY may still be a small broadcastable tensor (a reduction's cotangent)
          const ev = ec.data[0] ?? 1;
          const xe = ev === 2 ? x : c.op('Pow', [x, c.scalar(ev - 1, et)]);
          g = ev === 1 ? dY! : c.mul(c.mul(dY!, c.scalar(ev, et)), xe);
        } else {
          const ef = c.et(e) === et ? e : c.op('Cast', [e], { to: et });
          g = c.mul(dY!, c.mul(c.op('Pow', [x, c.op('Sub', [ef, c.scalar(1, et)])]), ef));
        }
        dX = c.unbroadcast(g, y, c.shape(x));
      }
      const dE = w[1] ? c.unbroadcast(c.mul(c.mul(dY!, O(n)), c.op('Log', [x])), y, c.shape(e)) : undefined;
      return [dX, dE];
    },
  ),
  Mod: { infer: broadcastOut, fold: foldWith(([a = 0, b = 1]) => a - b * Math.floor(a / b)) },
  BitShift: { infer: broadcastOut, grad: 'zero' },
  Sum: {
    infer: broadcastOut,
    grad: {
      vjp: (c, n, [dY], w) =>
        (n.input ?? []).map((x, i) => (w[i] ? c.unbroadcast(dY!, c.shape(O(n)), c.shape(x)) : undefined)),
      inputs: 'all',
      outputs: [0],
      broadcast: true,
    },
  },
  Mean: {
    infer: broadcastOut,
    grad: {
      vjp: (c, n, [dY], w) => {
        const d = c.mul(dY!, c.scalar(1 / (n.input ?? []).length, c.et(O(n))));
        return (n.input ?? []).map((x, i) =>
          w[i] ? c.unbroadcast(d, c.shape(O(n)), c.shape(x)) : undefined,
        );
      },
      inputs: 'all',
      outputs: [0],
      broadcast: true,
    },
  },
  Max: {
    infer: broadcastOut,
    fold: foldWith((v) => Math.max(...v)),
    grad: { vjp: minMax('GreaterOrEqual'), inputs: 'all', outputs: [0] },
  },
  Min: {
    infer: broadcastOut,
    fold: foldWith((v) => Math.min(...v)),
    grad: { vjp: minMax('LessOrEqual'), inputs: 'all', outputs: [0] },
  },
  Equal: compare((a, b) => a === b),
  Less: compare((a, b) => a < b),
  Greater: compare((a, b) => a > b),
  LessOrEqual: compare((a, b) => a <= b),
  GreaterOrEqual: compare((a, b) => a >= b),
  And: compare((a, b) => !!a && !!b),
  Or: compare((a, b) => !!a || !!b),
  Xor: compare((a, b) => !!a !== !!b),
  Not: { infer: sameAsInput, fold: foldWith(([a]) => +!a), grad: 'zero' },
  IsNaN: { infer: boolOut, grad: 'zero' },
  // a one-hot of the row maximum: piecewise constant
  Hardmax: { infer: sameAsInput, grad: 'zero' },
  IsInf: { infer: boolOut, grad: 'zero' },
  Floor: stepFn(Math.floor),
  Ceil: stepFn(Math.ceil),
  Round: stepFn(),
  Sign: stepFn(Math.sign),
  Sqrt: {
    infer: sameAsInput,
    fold: foldWith(([a = 0]) => Math.sqrt(a)),
    grad: {
      vjp: (c, n, [dY]) => [c.op('Div', [c.mul(dY!, c.scalar(0.5, c.et(O(n)))), O(n)])],
      inputs: [0],
      outputs: [0],
      broadcast: true,
    },
  },
  Reciprocal: {
    infer: sameAsInput,
    fold: foldWith(([a = 0]) => 1 / a),
    grad: {
      vjp: (c, n, [dY]) => [c.op('Neg', [c.mul(dY!, c.mul(O(n), O(n)))])],
      inputs: [0],
      outputs: [0],
      broadcast: true,
    },
  },
  Exp: { ...unary((_c, _x, y) => y, true), fold: foldWith(([a = 0]) => Math.exp(a)) },
  Log: {
    infer: sameAsInput,
    fold: foldWith(([a = 0]) => Math.log(a)),
    grad: { vjp: (c, n, [dY]) => [c.op('Div', [dY!, I(n, 0)])], inputs: [0], outputs: [0], broadcast: true },
  },
  Abs: { ...unary((c, x) => c.op('Sign', [x])), fold: foldWith(([a = 0]) => Math.abs(a)) },
  Tanh: unary((c, _x, y, et) => c.op('Sub', [c.scalar(1, et), c.mul(y, y)]), true),
  Sigmoid: unary((c, _x, y, et) => c.mul(y, c.op('Sub', [c.scalar(1, et), y])), true),
  Softplus: unary((c, x) => c.op('Sigmoid', [x])),
  Softsign: unary((c, x, _y, et) => {
    const d = c.op('Add', [c.scalar(1, et), c.op('Abs', [x])]);
    return c.op('Reciprocal', [c.mul(d, d)]);
  }),
  Erf: unary((c, x, _y, et) =>
    c.mul(c.op('Exp', [c.op('Neg', [c.mul(x, x)])]), c.scalar(2 / Math.sqrt(Math.PI), et)),
  ),
  Sin: unary((c, x) => c.op('Cos', [x])),
  Cos: unary((c, x) => c.op('Neg', [c.op('Sin', [x])])),
  Tan: unary((c, _x, y, et) => c.op('Add', [c.scalar(1, et), c.mul(y, y)])),
  Atan: unary((c, x, _y, et) => c.op('Reciprocal', [c.op('Add', [c.scalar(1, et), c.mul(x, x)])])),
  Asin: unary((c, x, _y, et) =>
    c.op('Reciprocal', [c.op('Sqrt', [c.op('Sub', [c.scalar(1, et), c.mul(x, x)])])]),
  ),
  Acos: unary((c, x, _y, et) =>
    c.op('Neg', [c.op('Reciprocal', [c.op('Sqrt', [c.op('Sub', [c.scalar(1, et), c.mul(x, x)])])])]),
  ),
  Sinh: unary((c, x) => c.op('Cosh', [x])),
  Cosh: unary((c, x) => c.op('Sinh', [x])),
  Asinh: unary((c, x, _y, et) =>
    c.op('Reciprocal', [c.op('Sqrt', [c.op('Add', [c.mul(x, x), c.scalar(1, et)])])]),
  ),
  Acosh: unary((c, x, _y, et) =>
    c.op('Reciprocal', [c.op('Sqrt', [c.op('Sub', [c.mul(x, x), c.scalar(1, et)])])]),
  ),
  Atanh: unary((c, x, _y, et) => c.op('Reciprocal', [c.op('Sub', [c.scalar(1, et), c.mul(x, x)])])),
  // 1 where the input passes (above alpha; outside ±lambd), 0 where it is cut
  ThresholdedRelu: unary((c, x, _y, et, n) =>
    c.op('Cast', [c.op('Greater', [x, c.scalar(attrFloat(n, 'alpha', 1), et)])], { to: et }),
  ),
  Shrink: unary((c, x, _y, et, n) =>
    c.op('Cast', [c.op('Greater', [c.op('Abs', [x]), c.scalar(attrFloat(n, 'lambd', 0.5), et)])], { to: et }),
  ),
  Relu: {
    infer: sameAsInput,
    fold: foldWith(([a = 0]) => Math.max(a, 0)),
    grad: {
      vjp: (c, n, [dY]) => [where(c, positive(c, I(n, 0)), dY!, c.scalar(0, c.et(I(n, 0))))],
      inputs: [0],
      outputs: [0],
    },
  },
  LeakyRelu: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY]) => {
        const alpha = c.scalar(attrFloat(n, 'alpha', 0.01), c.et(I(n, 0)));
        return [where(c, positive(c, I(n, 0)), dY!, c.mul(dY!, alpha))];
      },
      inputs: [0],
      outputs: [0],
    },
  },
  PRelu: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY], w) => {
        const [x, slope] = [I(n, 0), I(n, 1)];
        const ys = c.shape(O(n));
        const pos = positive(c, x);
        const zero = c.scalar(0, c.et(x));
        return [
          w[0] ? where(c, pos, dY!, c.expandTo(c.mul(dY!, slope), ys)) : undefined,
          w[1] ? c.unbroadcast(where(c, pos, zero, c.mul(dY!, x)), ys, c.shape(slope)) : undefined,
        ];
      },
      inputs: 'all',
      outputs: [0],
    },
  },
  // x > 0: 1, else y + α (Elu), γ·(1 | y/γ + α) (Selu), y/α + 1 (Celu)
  Elu: unary((c, x, y, et, n) =>
    where(c, positive(c, x), c.scalar(1, et), c.op('Add', [y, c.scalar(attrFloat(n, 'alpha', 1), et)])),
  ),
  Selu: unary((c, x, y, et, n) => {
    const alpha = attrFloat(n, 'alpha', SELU_ALPHA);
    const gamma = attrFloat(n, 'gamma', SELU_GAMMA);
    return where(c, positive(c, x), c.scalar(gamma, et), c.op('Add', [y, c.scalar(gamma * alpha, et)]));
  }),
  Celu: unary((c, x, y, et, n) => {
    const alpha = attrFloat(n, 'alpha', 1);
    const neg = c.op('Add', [c.mul(y, c.scalar(1 / alpha, et)), c.scalar(1, et)]);
    return where(c, positive(c, x), c.scalar(1, et), neg);
  }),
  HardSigmoid: unary((c, x, _y, et, n) => {
    const alpha = attrFloat(n, 'alpha', 0.2);
    const beta = attrFloat(n, 'beta', 0.5);
    const z = c.op('Add', [c.mul(x, c.scalar(alpha, et)), c.scalar(beta, et)]);
    const inside = c.op('And', [positive(c, z), c.op('Less', [z, c.scalar(1, et)])]);
    return where(c, inside, c.scalar(alpha, et), c.scalar(0, et));
  }),
  // y = x·clip(x/6 + 1/2, 0, 1): 0 below −3, 1 above 3, x/3 + 1/2 between
  HardSwish: unary((c, x, _y, et) => {
    const mid = c.op('Add', [c.mul(x, c.scalar(1 / 3, et)), c.scalar(0.5, et)]);
    const lo = where(c, c.op('Less', [x, c.scalar(-3, et)]), c.scalar(0, et), mid);
    return where(c, c.op('Greater', [x, c.scalar(3, et)]), c.scalar(1, et), lo);
  }),
  // y = x·tanh(sp), sp = softplus(x): y' = tanh(sp) + x·σ(x)·(1 − tanh²(sp))
  Mish: unary((c, x, _y, et) => {
    const t = c.op('Tanh', [c.op('Softplus', [x])]);
    const sech2 = c.op('Sub', [c.scalar(1, et), c.mul(t, t)]);
    return c.op('Add', [t, c.mul(c.mul(x, c.op('Sigmoid', [x])), sech2)]);
  }),
  Gelu: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY]) => [
        c.mul(
          dY!,
          geluDerivative(
            c,
            I(n, 0),
            GELU_FORMS[attrString(n, 'approximate', 'none') === 'tanh' ? 'tanh' : 'none'],
          ),
        ),
      ],
      inputs: [0],
      outputs: [0],
    },
  },
  Softmax: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY]) => {
        const y = O(n);
        const ys = c.shape(y);
        const axis = normAxis(attrInt(n, 'axis', -1), ys.length);
        const bracket =
          attentionSoftmaxBracket(c, y, axis, dY!) ??
          c.op('Sub', [dY!, c.reduceSum(c.mul(dY!, y), [axis], true)]);
        return [c.mul(y, bracket)];
      },
      inputs: [0],
      outputs: [0],
    },
  },
  LogSoftmax: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY]) => {
        const y = O(n);
        const axis = normAxis(attrInt(n, 'axis', -1), c.shape(y).length);
        const s = c.reduceSum(dY!, [axis], true);
        return [c.op('Sub', [dY!, c.mul(c.op('Exp', [y]), s)])];
      },
      inputs: [0],
      outputs: [0],
    },
  },
  Clip: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY], w) => {
        const x = I(n, 0);
        const et = c.et(x);
        const zero = c.scalar(0, et);
        const lo = n.input?.[1];
        const hi = n.input?.[2];
        let inside: string | undefined;
        if (lo) inside = c.op('GreaterOrEqual', [x, lo]);
        if (hi) {
          const m = c.op('LessOrEqual', [x, hi]);
          inside = inside ? c.op('And', [inside, m]) : m;
        }
        const y = c.shape(O(n));
        return [
          inside ? c.op('Where', [inside, dY!, zero]) : dY,
          w[1] && lo
            ? c.unbroadcast(c.op('Where', [c.op('Less', [x, lo]), dY!, zero]), y, c.shape(lo))
            : undefined,
          w[2] && hi
            ? c.unbroadcast(c.op('Where', [c.op('Greater', [x, hi]), dY!, zero]), y, c.shape(hi))
            : undefined,
        ];
      },
      inputs: 'all',
      outputs: [0],
    },
  },
  Where: {
    infer: (_n, ins) => {
      const [cond, a, b] = ins;
      if (!cond || !a || !b) throw new Error('Where needs three inputs');
      return [{ elemType: a.elemType, shape: broadcastShapes(cond.shape, a.shape, b.shape) }];
    },
    fold: foldWith(([cond, a, b]) => (cond ? (a ?? 0) : (b ?? 0))),
    grad: {
      vjp: (c, n, [dY], w) => {
        const y = c.shape(O(n));
        const zero = c.scalar(0, c.et(O(n)));
        return [
          undefined,
          w[1] ? c.unbroadcast(c.op('Where', [I(n, 0), dY!, zero]), y, c.shape(I(n, 1))) : undefined,
          w[2] ? c.unbroadcast(c.op('Where', [I(n, 0), zero, dY!]), y, c.shape(I(n, 2))) : undefined,
        ];
      },
      inputs: [1, 2],
      constant: [0],
      outputs: [0],
    },
  },
  Cast: {
    infer: (n, ins) => [{ elemType: attrInt(n, 'to', 0), shape: [...X0(ins).shape] }],
    runtimeDims: true,
    fold: (_n, [c]) => c?.data,
    grad: {
      vjp: (c, n, [dY]) => {
        const et = c.et(I(n, 0));
        return [et === c.et(O(n)) ? dY : c.op('Cast', [dY!], { to: et })];
      },
      inputs: [0],
      outputs: [0],
      broadcast: true,
    },
  },
  CastLike: {
    infer: (_n, ins) => {
      const like = ins[1];
      if (!like) throw new Error('CastLike needs two inputs');
      return [{ elemType: like.elemType, shape: [...X0(ins).shape] }];
    },
    fold: (_n, [c]) => c?.data,
    grad: {
      vjp: (c, n, [dY]) => {
        const et = c.et(I(n, 0));
        return [et === c.et(O(n)) ? dY : c.op('Cast', [dY!], { to: et }), undefined];
      },
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const ELEMENTWISE_SAME_BEFORE_16: readonly string[] = [
  'Abs',
  'Acos',
  'Acosh',
  'Add',
  'And',
  'Asin',
  'Asinh',
  'Atan',
  'Atanh',
  'Cast',
  'CastLike',
  'Ceil',
  'Celu',
  'Clip',
  'Cos',
  'Cosh',
  'Div',
  'Dropout',
  'Elu',
  'Equal',
  'Erf',
  'Exp',
  'Floor',
  'Greater',
  'GreaterOrEqual',
  'HardSigmoid',
  'HardSwish',
  'Identity',
  'IsInf',
  'IsNaN',
  'LeakyRelu',
  'Less',
  'LessOrEqual',
  'Log',
  'LogSoftmax',
  'Max',
  'Mean',
  'Min',
  'Mod',
  'Mul',
  'Neg',
  'Not',
  'Or',
  'PRelu',
  'Pow',
  'Reciprocal',
  'Relu',
  'Round',
  'Selu',
  'Shrink',
  'Sigmoid',
  'Sign',
  'Sin',
  'Sinh',
  'Softmax',
  'Softplus',
  'Softsign',
  'Sqrt',
  'Sub',
  'Sum',
  'Tan',
  'Tanh',
  'ThresholdedRelu',
  'Where',
  'Xor',
];
