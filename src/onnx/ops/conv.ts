/** Convolutions and pooling. */
import { InputError } from '../../errors.js';
import { attr } from '../builder.js';
import type { GradContext } from '../emit.js';
import { attrInt, attrInts, attrString, nodeLabel } from '../graph.js';
import { numElements } from '../model.js';
import { DataType, type NodeProto } from '../proto.js';
import { I, O, type OpDef, type ValueType, type Vjp } from './types.js';
import { convSpec, convTransposeSpec } from './util.js';

const two = (ins: (ValueType | undefined)[]): [ValueType, ValueType] => {
  const [a, b] = ins;
  if (!a || !b) throw new Error('needs two inputs');
  return [a, b];
};

export const CONV: Record<string, OpDef> = {
  Conv: {
    infer: (node, ins) => {
      const [x, w] = two(ins);
      return [{ elemType: x.elemType, shape: convSpec(node, x.shape, w.shape).outShape }];
    },
    grad: { vjp: convVjp, inputs: 'all', outputs: [0] },
  },
  ConvTranspose: {
    infer: (node, ins) => {
      const [x, w] = two(ins);
      return [{ elemType: x.elemType, shape: convTransposeSpec(node, x.shape, w.shape).outShape }];
    },
    grad: { vjp: convTransposeVjp, inputs: 'all', outputs: [0] },
  },
  AveragePool: {
    infer: (node, ins) => [poolOut(node, ins)],
    grad: { vjp: averagePoolVjp, inputs: [0], outputs: [0] },
  },
  MaxPool: {
    infer: (node, ins) => {
      const y = poolOut(node, ins);
      return [y, { elemType: DataType.INT64, shape: [...y.shape] }];
    },
    grad: { vjp: maxPoolVjp, inputs: [0], outputs: [0], prepare: withIndices },
  },
  GlobalAveragePool: {
    infer: (_n, ins) => [globalOut(ins)],
    grad: {
      vjp: (c, n, [dY]) => {
        const xs = c.shape(I(n, 0));
        return [c.mul(dY!, c.scalar(1 / numElements(xs.slice(2)), c.et(I(n, 0))))];
      },
      inputs: [0],
      outputs: [0],
      broadcast: true,
    },
  },
  GlobalMaxPool: {
    infer: (_n, ins) => [globalOut(ins)],
    grad: {
      // to the maxima, split evenly among ties
      vjp: (c, n, [dY]) => {
        const x = I(n, 0);
        const sp = c
          .shape(x)
          .map((_, i) => i)
          .slice(2);
        const mask = c.op('Cast', [c.op('Equal', [x, O(n)])], { to: c.et(x) });
        return [c.mul(dY!, c.op('Div', [mask, c.reduceSum(mask, sp, true)]))];
      },
      inputs: [0],
      outputs: [0],
      broadcast: true,
    },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const CONV_SAME_BEFORE_16: readonly string[] = [
  'AveragePool',
  'Conv',
  'ConvTranspose',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'MaxPool',
];

function convVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const X = I(n, 0);
  const W = I(n, 1);
  const xs = c.shape(X);
  const ws = c.shape(W);
  const spec = convSpec(n, xs, ws);
  const nsp = xs.length - 2;
  const ys = spec.outShape;
  const g = spec.group;
  let dX: string | undefined;
  let dW: string | undefined;
  let dB: string | undefined;
  if (w[0]) {
    const outPad = spec.kernel.map(
      (k, i) =>
        xs[i + 2]! +
        spec.pads[i]! +
        spec.pads[i + nsp]! -
        ((ys[i + 2]! - 1) * spec.strides[i]! + (k - 1) * spec.dilations[i]! + 1),
    );
    dX = c.op('ConvTranspose', [dY!, W], {
      strides: spec.strides,
      pads: spec.pads,
      dilations: spec.dilations,
      group: g,
      kernel_shape: spec.kernel,
      ...(outPad.some((p) => p) ? { output_padding: outPad } : {}),
    });
  }
  const k = spec.kernel;
  const o = ys.slice(2);
  const patchify =
    g === 1 &&
    k.every((ki, i) => spec.strides[i] === ki && spec.dilations[i] === 1 && xs[i + 2] === o[i]! * ki) &&
    spec.pads.every((q) => q === 0);
  if (w[1] && patchify) {
    // kernel = stride, no padding (a patch embedding): dW is one product of the patches
    // [N·o, C·k] with dY [N·o, M], far cheaper than a dilated Conv over the whole input
    const [N, C, M] = [xs[0]!, xs[1]!, ws[0]!];
    const split = [N, C, ...o.flatMap((oi, i) => [oi, k[i]!])];
    const perm = [0, ...o.map((_, i) => 2 + 2 * i), 1, ...k.map((_, i) => 3 + 2 * i)];
    const rows = N * numElements(o);
    const patches = c.reshape(c.transpose(c.reshape(X, split), perm), [rows, C * numElements(k)]);
    const dRows = c.reshape(c.transpose(dY!, [0, ...o.map((_, i) => 2 + i), 1]), [rows, M]);
    dW = c.reshape(c.op('Gemm', [dRows, patches], { transA: 1 }), ws);
  } else if (w[1]) {
    const [N, C] = [xs[0]!, xs[1]!];
    const sp = xs.slice(2);
    const axesRest = sp.map((_, i) => i + 3);
    // channels become the batch: Xg [C/g, g·N, sp], kernel dYᵀ [M, N, o]
    const Xg =
      g === 1
        ? c.op('Transpose', [X], { perm: [1, 0, ...sp.map((_, i) => i + 2)] })
        : c.reshape(
            c.op('Transpose', [c.reshape(X, [N, g, C / g, ...sp])], { perm: [2, 1, 0, ...axesRest] }),
            [C / g, g * N, ...sp],
          );
    const K = c.op('Transpose', [dY!], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
    let r = c.op('Conv', [Xg, K], {
      strides: spec.dilations,
      dilations: spec.strides,
      pads: spec.pads,
      group: g,
    });
    const got = spec.kernel.map(
      (_, i) =>
        Math.floor(
          (sp[i]! + spec.pads[i]! + spec.pads[i + nsp]! - ((ys[i + 2]! - 1) * spec.strides[i]! + 1)) /
            spec.dilations[i]!,
        ) + 1,
    );
    if (got.some((v, i) => v !== spec.kernel[i])) {
      r = c.op('Slice', [
        r,
        c.ints(spec.kernel.map(() => 0)),
        c.ints(spec.kernel),
        c.ints(spec.kernel.map((_, i) => i + 2)),
      ]);
    }
    dW = c.op('Transpose', [r], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
  }
  if (w[2]) dB = c.reduceSum(dY!, [0, ...ys.slice(2).map((_, i) => i + 2)], false);
  return [dX, dW, dB];
}

/**
 * ConvTranspose is the adjoint of a Conv with the same attributes: dX is that Conv of dY, and
 * dW is the Conv weight gradient with the roles of input and cotangent swapped.
 */
function convTransposeVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const [X, W] = [I(n, 0), I(n, 1)];
  const spec = convTransposeSpec(n, c.shape(X), c.shape(W));
  const attrs = {
    kernel_shape: spec.kernel,
    strides: spec.strides,
    pads: spec.pads,
    dilations: spec.dilations,
    group: spec.group,
  };
  const dX = w[0] ? c.op('Conv', [dY!, W], attrs) : undefined;
  let dW: string | undefined;
  if (w[1]) {
    // Conv(dY, W) → X, differentiated in W with X's cotangent standing in for that Conv's
    const conv: NodeProto = {
      opType: 'Conv',
      input: [dY!, W],
      output: [X],
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    };
    dW = convVjp(c, conv, [X], [false, true, false])[1];
  }
  const r = c.shape(X).length;
  const dB = w[2]
    ? c.reduceSum(dY!, [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)], false)
    : undefined;
  return [dX, dW, dB];
}

interface PoolSpec {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  out: number[];
}

/** A pool's windows over the spatial axes of `xs` (auto_pad, pads, ceil_mode resolved). */
function poolSpec(node: NodeProto, xs: number[]): PoolSpec {
  const kernel = attrInts(node, 'kernel_shape') ?? [];
  const nsp = kernel.length;
  const strides = attrInts(node, 'strides') ?? kernel.map(() => 1);
  const dilations = attrInts(node, 'dilations') ?? kernel.map(() => 1);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const pads =
    autoPad === 'NOTSET'
      ? [...(attrInts(node, 'pads') ?? new Array<number>(2 * nsp).fill(0))]
      : new Array<number>(2 * nsp).fill(0);
  const out = kernel.map((k, i) => {
    const [inD, s] = [xs[i + 2] ?? 1, strides[i] ?? 1];
    const ke = (k - 1) * (dilations[i] ?? 1) + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const o = Math.ceil(inD / s);
      const total = Math.max(0, (o - 1) * s + ke - inD);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + nsp] = total - (pads[i] ?? 0);
      return o;
    }
    const span = inD + (pads[i] ?? 0) + (pads[i + nsp] ?? 0) - ke;
    let o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    // a last window starting in the end padding is dropped
    if (ceil && (o - 1) * s >= inD + (pads[i] ?? 0)) o--;
    return o;
  });
  return { kernel, strides, dilations, pads, out };
}

function poolOut(node: NodeProto, ins: (ValueType | undefined)[]): ValueType {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  return { elemType: x.elemType, shape: [...x.shape.slice(0, 2), ...poolSpec(node, x.shape).out] };
}

function globalOut(ins: (ValueType | undefined)[]): ValueType {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  return { elemType: x.elemType, shape: x.shape.map((d, i) => (i < 2 ? d : 1)) };
}

/**
 * Every window's share, spread back: dY/count through a ConvTranspose with a kernel of ones, on
 * the channels folded into the batch. `count` (per output position) counts the padding only
 * with count_include_pad, and never the part of a ceil_mode window past the padding.
 */
function averagePoolVjp(...[c, n, [dY]]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const et = c.et(x);
  const spec = poolSpec(n, xs);
  const nsp = spec.kernel.length;
  const withPad = attrInt(n, 'count_include_pad', 0) === 1;
  const perAxis = spec.out.map((o, a) => {
    const [inD, s, d, pb, pe] = [
      xs[a + 2] ?? 1,
      spec.strides[a] ?? 1,
      spec.dilations[a] ?? 1,
      spec.pads[a] ?? 0,
      spec.pads[a + nsp] ?? 0,
    ];
    const [lo, hi] = withPad ? [-pb, inD + pe] : [0, inD];
    return Array.from({ length: o }, (_, i) => {
      let k = 0;
      for (let t = 0; t < (spec.kernel[a] ?? 1); t++) {
        const j = i * s - pb + t * d;
        if (j >= lo && j < hi) k++;
      }
      return k;
    });
  });
  const inv: number[] = [];
  const visit = (a: number, prod: number) => {
    if (a === nsp) inv.push(1 / prod);
    else for (const k of perAxis[a] ?? []) visit(a + 1, prod * k);
  };
  visit(0, 1);
  const scaled = c.mul(dY!, c.floats([1, 1, ...spec.out], inv, et));
  const nc = (xs[0] ?? 1) * (xs[1] ?? 1);
  const sp = xs.slice(2);
  return [c.reshape(spreadWindows(c, c.reshape(scaled, [nc, 1, ...spec.out]), spec, sp, et), xs)];
}

/** Σ over the windows covering each input position: ConvTranspose with ones, cropped to `sp`. */
function spreadWindows(c: GradContext, d: string, spec: PoolSpec, sp: number[], et: number): string {
  const nsp = spec.kernel.length;
  const pads = [...spec.pads];
  const outPad = spec.kernel.map((k, a) => {
    const full = ((spec.out[a] ?? 1) - 1) * (spec.strides[a] ?? 1) + (k - 1) * (spec.dilations[a] ?? 1) + 1;
    const extra = (sp[a] ?? 1) + (pads[a] ?? 0) + (pads[a + nsp] ?? 0) - full;
    // a ceil_mode window past the padding: crop it as more end padding
    if (extra < 0) pads[a + nsp] = (pads[a + nsp] ?? 0) - extra;
    return Math.max(0, extra);
  });
  return c.op('ConvTranspose', [d, c.ones([1, 1, ...spec.kernel], et)], {
    strides: spec.strides,
    dilations: spec.dilations,
    pads,
    ...(outPad.some((p) => p) ? { output_padding: outPad } : {}),
  });
}

/** MaxPool with its Indices output, which the gradient scatters through. */
function withIndices(
  n: NodeProto,
  info: { types: Map<string, ValueType> },
  fresh: (p: string) => string,
): NodeProto {
  if (n.output?.[1]) return n;
  const y = info.types.get(O(n));
  const name = fresh(`${O(n)}_indices`);
  if (y) info.types.set(name, { elemType: DataType.INT64, shape: [...y.shape] });
  return { ...n, output: [O(n), name] };
}

/** The cotangent goes to each window's maximum (the Indices output, flat over X). */
function maxPoolVjp(...[c, n, [dY]]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  if (attrInt(n, 'storage_order', 0) !== 0) {
    throw new InputError('model', `MaxPool ${nodeLabel(n)}: storage_order 1 has no gradient rule`);
  }
  const spec = poolSpec(n, xs);
  const total = numElements(xs);
  const idx = c.reshape(O(n, 1), [-1]);
  const d = c.reshape(dY!, [-1]);
  const zeros = c.zeros([total], c.et(x));
  const overlap = spec.kernel.some((k, a) => (spec.strides[a] ?? 1) < (k - 1) * (spec.dilations[a] ?? 1) + 1);
  if (c.opset >= 16)
    return [c.reshape(c.op('ScatterElements', [zeros, idx, d], { axis: 0, reduction: 'add' }), xs)];
  if (overlap) {
    throw new InputError('model', `MaxPool ${nodeLabel(n)}: gradient of overlapping windows needs opset 16+`);
  }
  return [c.reshape(c.op('ScatterElements', [zeros, idx, d], { axis: 0 }), xs)];
}
