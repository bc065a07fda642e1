/** Reductions over axes, arg-extrema, TopK and CumSum. */
import type { GradContext } from '../emit.js';
import { attrInt } from '../graph.js';
import { DataType, type NodeProto } from '../proto.js';
import { I, type Infer, O, type OpDef, type Vjp } from './types.js';
import { need, normAxis, RUNTIME_DIM, reduceAxes, strides } from './util.js';

const reduceInfer: Infer = (node, ins, cs) => {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  if (node.input?.[1] && !cs[1]) {
    // k axes fed at run time (k > 0: an empty list is a constant): which dims go is known only then
    const k = ins[1]?.shape[0] ?? 0;
    const shape = attrInt(node, 'keepdims', 1)
      ? x.shape.map((d) => (d === 1 ? 1 : RUNTIME_DIM))
      : new Array<number>(x.shape.length - k).fill(RUNTIME_DIM);
    return [{ elemType: x.elemType, shape }];
  }
  const axes = reduceAxes(node, cs, x.shape.length) ?? x.shape.map((_, i) => i);
  const keep = attrInt(node, 'keepdims', 1);
  const shape = x.shape.flatMap((d, i) => (!axes.includes(i) ? [d] : keep ? [1] : []));
  return [{ elemType: x.elemType, shape }];
};

/** Folding of a reduction with initial value `init` and step `f`; `mean` divides by the count. */
const reduceFold =
  (init: number, f: (acc: number, v: number) => number, mean = false): OpDef['fold'] =>
  (node, cs) => {
    const c0 = need(cs[0], 'data');
    const axes = reduceAxes(node, cs, c0.shape.length) ?? c0.shape.map((_, i) => i);
    const keepShape = c0.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const ks = strides(keepShape);
    const st = strides(c0.shape);
    const acc = new Array<number>(keepShape.reduce((p, d) => p * d, 1)).fill(init);
    c0.data.forEach((v, i) => {
      let rem = i;
      let o = 0;
      st.forEach((s, a) => {
        const k = Math.floor(rem / s);
        rem -= k * s;
        if (!axes.includes(a)) o += k * (ks[a] ?? 0);
      });
      acc[o] = f(acc[o] ?? init, v);
    });
    const count = c0.data.length / Math.max(1, acc.length);
    return mean ? acc.map((v) => v / count) : acc;
  };

/** The reduction's axes (all when none are given) for input shape `xs`. */
function axesOf(c: GradContext, n: NodeProto, xs: number[]): number[] {
  const cs = (n.input ?? []).map((i) => (i ? c.constOf(i) : undefined));
  return reduceAxes(n, cs, xs.length) ?? xs.map((_, i) => i);
}

/** The axes input, where it is fed at run time (else the axes are known when the graph is written). */
const fedAxes = (c: GradContext, n: NodeProto): string | undefined =>
  n.input?.[1] && c.runtime(n.input[1]) ? n.input[1] : undefined;

/** `v` (shaped like the output) in keepdims form, with axes fed at run time: Unsqueeze at them. */
function keptAtRuntime(c: GradContext, n: NodeProto, v: string, axes: string): string {
  return attrInt(n, 'keepdims', 1) === 0 ? c.op('Unsqueeze', [v, axes]) : v;
}

/** The reduction's output reshaped to keepdims form, so it broadcasts against the input. */
function keptOutput(c: GradContext, n: NodeProto): string {
  const fed = fedAxes(c, n);
  if (fed) return keptAtRuntime(c, n, O(n), fed);
  const xs = c.shape(I(n, 0));
  const axes = axesOf(c, n, xs);
  const y = O(n);
  return attrInt(n, 'keepdims', 1) === 0
    ? c.reshape(
        y,
        xs.map((d, i) => (axes.includes(i) ? 1 : d)),
      )
    : y;
}

/** dY in keepdims form (scaled by 1/count for a mean): elementwise consumers broadcast it. */
function spread(c: GradContext, n: NodeProto, dY: string, mean: boolean): string {
  const x = I(n, 0);
  const fed = fedAxes(c, n);
  if (fed) {
    // the count is |x| / |y|, both sizes known at run time
    const et = c.et(x);
    const size = (v: string) => c.op('Cast', [c.op('Size', [v])], { to: et });
    const d = mean ? c.mul(dY, c.op('Div', [size(O(n)), size(x)])) : dY;
    return keptAtRuntime(c, n, d, fed);
  }
  const xs = c.shape(x);
  const axes = axesOf(c, n, xs);
  let d = dY;
  if (mean) d = c.mul(d, c.scalar(1 / axes.reduce((p, a) => p * (xs[a] ?? 1), 1), c.et(x)));
  if (attrInt(n, 'keepdims', 1) === 0)
    d = c.reshape(
      d,
      xs.map((v, i) => (axes.includes(i) ? 1 : v)),
    );
  return d;
}

/** A reduction's gradient: dY spread over the reduced axes times ∂y/∂x (`local`, may be absent). */
function reduction(
  init: number,
  f: ((acc: number, v: number) => number) | undefined,
  local?: (c: GradContext, n: NodeProto, x: string) => string,
  mean = false,
): OpDef {
  const vjp: Vjp = (c, n, [dY]) => {
    const g = spread(c, n, dY!, mean);
    return [local ? c.mul(g, local(c, n, I(n, 0))) : g, undefined];
  };
  return {
    infer: reduceInfer,
    runtimeDims: true,
    ...(f ? { fold: reduceFold(init, f, mean) } : {}),
    grad: { vjp, inputs: [0], constant: [1], outputs: [0] },
  };
}

/** ReduceMax/ReduceMin: the cotangent goes to the extremal elements, split evenly among ties. */
const extremumShare = (c: GradContext, n: NodeProto, x: string): string => {
  const mask = c.op('Cast', [c.op('Equal', [x, keptOutput(c, n)])], { to: c.et(x) });
  const fed = fedAxes(c, n);
  if (fed) return c.op('Div', [mask, c.op('ReduceSum', [mask, fed], { keepdims: 1 })]);
  const xs = c.shape(x);
  const axes = axesOf(c, n, xs);
  return c.op('Div', [mask, c.reduceSum(mask, axes.length ? axes : xs.map((_, i) => i), true)]);
};

const argInfer: Infer = (node, ins) => {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  const axis = normAxis(attrInt(node, 'axis', 0), x.shape.length);
  const keep = attrInt(node, 'keepdims', 1);
  return [
    { elemType: DataType.INT64, shape: x.shape.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d])) },
  ];
};

export const REDUCE: Record<string, OpDef> = {
  ReduceSum: reduction(0, (a, v) => a + v),
  ReduceMean: reduction(0, (a, v) => a + v, undefined, true),
  ReduceMax: reduction(Number.NEGATIVE_INFINITY, Math.max, extremumShare),
  ReduceMin: reduction(Number.POSITIVE_INFINITY, Math.min, extremumShare),
  ReduceProd: { infer: reduceInfer, fold: reduceFold(1, (a, v) => a * v) },
  ReduceSumSquare: reduction(0, undefined, (c, _n, x) => c.mul(x, c.scalar(2, c.et(x)))),
  ReduceL1: reduction(0, undefined, (c, _n, x) => c.op('Sign', [x])),
  // d‖x‖/dx = x / ‖x‖ (Y in keepdims form)
  ReduceL2: reduction(0, undefined, (c, n, x) => c.op('Div', [x, keptOutput(c, n)])),
  // y = log Σ x: 1/Σx = exp(−y)
  ReduceLogSum: reduction(0, undefined, (c, n) => c.op('Exp', [c.op('Neg', [keptOutput(c, n)])])),
  // y = log Σ exp x: softmax over the reduced axes
  ReduceLogSumExp: reduction(0, undefined, (c, n, x) => c.op('Exp', [c.op('Sub', [x, keptOutput(c, n)])])),
  ArgMax: { infer: argInfer, grad: 'zero' },
  ArgMin: { infer: argInfer, grad: 'zero' },
  TopK: {
    runtimeDims: true,
    infer: (node, ins, cs) => {
      const x = ins[0];
      if (!x) throw new Error('missing input 0');
      const axis = normAxis(attrInt(node, 'axis', -1), x.shape.length);
      const shape = [...x.shape];
      // k is an attribute before opset 10; fed at run time, the axis' size is known only then
      const fed = node.input?.[1] && !cs[1];
      shape[axis] = fed
        ? RUNTIME_DIM
        : node.input?.[1]
          ? (need(cs[1], 'K').data[0] ?? 0)
          : attrInt(node, 'k', 1);
      return [
        { elemType: x.elemType, shape },
        { elemType: DataType.INT64, shape: [...shape] },
      ];
    },
    grad: {
      // the values' cotangent goes back to where they were taken (indices distinct per row)
      vjp: (c, n, [dV]) => {
        const x = I(n, 0);
        const axis = normAxis(attrInt(n, 'axis', -1), c.shape(x).length);
        return [c.op('ScatterElements', [c.zeros(c.shape(x), c.et(x)), O(n, 1), dV!], { axis })];
      },
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  CumSum: {
    runtimeDims: true,
    infer: (_n, ins) => {
      const x = ins[0];
      if (!x) throw new Error('missing input 0');
      return [{ elemType: x.elemType, shape: [...x.shape] }];
    },
    grad: {
      // the adjoint of a running sum is the running sum the other way
      vjp: (c, n, [dY]) => [
        c.op('CumSum', [dY!, I(n, 1)], {
          exclusive: attrInt(n, 'exclusive', 0),
          reverse: 1 - attrInt(n, 'reverse', 0),
        }),
      ],
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
export const REDUCE_SAME_BEFORE_16: readonly string[] = [
  'ArgMax',
  'ArgMin',
  'CumSum',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceMax',
  'ReduceMean',
  'ReduceMin',
  'ReduceProd',
  'ReduceSum',
  'ReduceSumSquare',
  'TopK',
];
