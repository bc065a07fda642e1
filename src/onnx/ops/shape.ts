/**
 * Operators that move data without arithmetic: reshapes, transposes, slicing, gathering and
 * scattering, padding, concatenation, and the shape-valued operators (Shape, Range, …).
 */
import { InputError } from '../../errors.js';
import type { GradContext } from '../emit.js';
import { attrInt, attrInts, attrString, attrTensor, nodeLabel } from '../graph.js';
import { makeTensor, numElements, tensorToNumbers } from '../model.js';
import { DataType, type NodeProto } from '../proto.js';
import { sameAsInput } from './elementwise.js';
import { type Const, I, type Infer, O, type OpDef, type ValueType, type Vjp } from './types.js';
import {
  broadcastIndex,
  broadcastShapes,
  constantValue,
  isStatic,
  need,
  normAxis,
  RUNTIME_DIM,
  reshapeShape,
  sliceSpec,
  splitSizes,
  squeezeAxes,
  strides,
} from './util.js';

const X0 = (ins: (ValueType | undefined)[]): ValueType => {
  const x = ins[0];
  if (!x) throw new Error('missing input 0');
  return x;
};
const withShape = (ins: (ValueType | undefined)[], shape: number[]): ValueType[] => [
  { elemType: X0(ins).elemType, shape },
];
/** Data unchanged in order (Reshape-like): folding copies it. */
const sameData: OpDef['fold'] = (_n, [c]) => c?.data;

const reshapeBack: Vjp = (c, n, [dY]) => [c.reshapeLike(dY!, I(n, 0))];

/** `n` dims all known only at run time. */
const runtimeDims = (n: number): number[] => new Array<number>(n).fill(RUNTIME_DIM);

/** Whether input `i` is present but its value is known only at run time (not a constant). */
const fedAt = (node: NodeProto, cs: (unknown | undefined)[], i: number): boolean =>
  !!node.input?.[i] && !cs[i];
const reshapeLike = (infer: Infer, constant: number[] = [], runtimeDims = false): OpDef => ({
  infer,
  runtimeDims,
  fold: sameData,
  grad: { vjp: reshapeBack, inputs: [0], constant, outputs: [0] },
});

/**
 * Each output element's flat source index, where output coordinate k on axis a contributes
 * `offset(a, k)` (already multiplied by the source stride): Transpose, Slice and Tile folding.
 */
function sourceIndices(outShape: number[], offset: (axis: number, k: number) => number): number[] {
  const os = strides(outShape);
  return Array.from({ length: numElements(outShape) }, (_, i) => {
    let rem = i;
    let idx = 0;
    os.forEach((s, a) => {
      const k = Math.floor(rem / s);
      rem -= k * s;
      idx += offset(a, k);
    });
    return idx;
  });
}

/** Each output element's flat source index under `perm` (Transpose folding). */
function permuteIndex(shape: number[], perm: number[]): number[] {
  const st = strides(shape);
  return sourceIndices(
    perm.map((p) => shape[p] ?? 1),
    (a, k) => k * (st[perm[a] ?? 0] ?? 0),
  );
}

/** Scatter's gradient: the overwritten positions get none (`zeroed`), updates read theirs back. */
function scatterVjp(gather: 'GatherND' | 'GatherElements'): Vjp {
  return (c, n, [dY], w) => {
    const red = attrString(n, 'reduction', 'none');
    const axis: Record<string, number> = gather === 'GatherElements' ? { axis: attrInt(n, 'axis', 0) } : {};
    const [data, idx, upd] = [I(n, 0), I(n, 1), I(n, 2)];
    const dAt = () => c.op(gather, [dY!, idx], axis);
    if (red === 'none' || red === 'add') {
      // indices must be distinct for 'none' (the operator's own contract), so zeroing is exact
      const dData =
        red === 'add' ? dY : c.op(n.opType ?? '', [dY!, idx, c.zeros(c.shape(upd), c.et(upd))], axis);
      return [w[0] ? dData : undefined, undefined, w[2] ? dAt() : undefined];
    }
    if (red === 'mul' && distinctIndices(c, n, gather)) {
      // out = data·u at the indices: each side's cotangent is dY times the other
      const dData = c.op(n.opType ?? '', [dY!, idx, c.mul(dAt(), upd)], axis);
      const dU = c.mul(dAt(), c.op(gather, [data, idx], axis));
      return [w[0] ? dData : undefined, undefined, w[2] ? dU : undefined];
    }
    throw new InputError(
      'model',
      `${n.opType} ${nodeLabel(n)}: reduction '${red}' has no gradient rule (only 'mul' with distinct constant indices)`,
    );
  };
}

/** Whether a scatter's indices are constants naming every target position once. */
function distinctIndices(c: GradContext, n: NodeProto, gather: 'GatherND' | 'GatherElements'): boolean {
  const ic = c.constOf(I(n, 1));
  if (!ic) return false;
  const xs = c.shape(I(n, 0));
  if (gather === 'GatherND') {
    const k = ic.shape[ic.shape.length - 1] ?? 1;
    const keys = new Set<string>();
    for (let i = 0; i < ic.data.length; i += k) {
      keys.add(
        ic.data
          .slice(i, i + k)
          .map((v, a) => (v < 0 ? v + (xs[a] ?? 0) : v))
          .join(','),
      );
    }
    return keys.size * k === ic.data.length;
  }
  // ScatterElements: a position is its index along the axis with the other coordinates
  const axis = normAxis(attrInt(n, 'axis', 0), xs.length);
  const st = strides(ic.shape);
  const keys = new Set(
    ic.data.map((v, i) => {
      const coords = st.map((s, a) => Math.floor(i / s) % (ic.shape[a] ?? 1));
      coords[axis] = v < 0 ? v + (xs[axis] ?? 0) : v;
      return coords.join(',');
    }),
  );
  return keys.size === ic.data.length;
}

export const SHAPE: Record<string, OpDef> = {
  Reshape: reshapeLike(
    (node, ins, cs) =>
      withShape(
        ins,
        fedAt(node, cs, 1)
          ? runtimeDims(need1(ins).shape[0] ?? 0)
          : reshapeShape(
              X0(ins).shape,
              node.input?.[1] ? need(cs[1], 'shape').data : (attrInts(node, 'shape') ?? []),
              attrInt(node, 'allowzero', 0) === 1,
            ),
      ),
    [1],
    true,
  ),
  Flatten: reshapeLike((node, ins) => {
    const s = X0(ins).shape;
    const axis = attrInt(node, 'axis', 1);
    const a = axis < 0 ? axis + s.length : axis;
    return withShape(ins, [numElements(s.slice(0, a)), numElements(s.slice(a))]);
  }),
  Squeeze: reshapeLike(
    (node, ins, cs) => {
      const s = X0(ins).shape;
      if (fedAt(node, cs, 1)) {
        // k axes fed at run time: static only where x has exactly k size-1 axes
        const k = need1(ins).shape[0] ?? 0;
        const ones = s.filter((d) => d === 1).length;
        return withShape(ins, ones === k ? s.filter((d) => d !== 1) : runtimeDims(s.length - k));
      }
      const axes = squeezeAxes(node, cs)?.map((a) => normAxis(a, s.length));
      return withShape(
        ins,
        s.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)),
      );
    },
    [1],
  ),
  Unsqueeze: reshapeLike(
    (node, ins, cs) => {
      if (fedAt(node, cs, 1)) {
        const r = X0(ins).shape.length + (need1(ins).shape[0] ?? 0);
        const ones = X0(ins).shape.every((d) => d === 1);
        return withShape(ins, ones ? new Array<number>(r).fill(1) : runtimeDims(r));
      }
      const axes = squeezeAxes(node, cs) ?? [];
      const r = X0(ins).shape.length + axes.length;
      const norm = axes.map((a) => normAxis(a, r));
      const src = [...X0(ins).shape];
      return withShape(
        ins,
        Array.from({ length: r }, (_, i) => (norm.includes(i) ? 1 : (src.shift() ?? 1))),
      );
    },
    [1],
    true,
  ),
  Transpose: {
    runtimeDims: true,
    infer: (node, ins) => {
      const s = X0(ins).shape;
      const perm = attrInts(node, 'perm') ?? s.map((_, i) => s.length - 1 - i);
      return withShape(
        ins,
        perm.map((p) => s[p] ?? 1),
      );
    },
    fold: (node, [c0]) => {
      if (!c0) return undefined;
      const perm = attrInts(node, 'perm') ?? c0.shape.map((_, i) => c0.shape.length - 1 - i);
      return permuteIndex(c0.shape, perm).map((i) => c0.data[i] ?? 0);
    },
    grad: {
      vjp: (c, n, [dY]) => {
        const r = c.shape(I(n, 0)).length;
        const perm = attrInts(n, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
        const inv = new Array<number>(r);
        perm.forEach((p, i) => {
          inv[p] = i;
        });
        return [c.transpose(dY!, inv)];
      },
      inputs: [0],
      outputs: [0],
    },
  },
  Concat: {
    infer: (node, ins) => {
      const axis = normAxis(attrInt(node, 'axis', 0), X0(ins).shape.length);
      const shape = [...X0(ins).shape];
      shape[axis] = ins.reduce((s, t) => s + (t ? (t.shape[axis] ?? 0) : 0), 0);
      return withShape(ins, shape);
    },
    fold: (node, cs, out) => {
      const axis = normAxis(attrInt(node, 'axis', 0), out.shape.length);
      const outer = numElements(out.shape.slice(0, axis));
      const res: number[] = [];
      for (let o = 0; o < outer; o++) {
        for (const c of cs) {
          if (!c) continue;
          const inner = numElements(c.shape.slice(axis));
          res.push(...c.data.slice(o * inner, (o + 1) * inner));
        }
      }
      return res;
    },
    grad: {
      vjp: (c, n, [dY], w) => {
        const axis = normAxis(attrInt(n, 'axis', 0), c.shape(O(n)).length);
        const sizes = (n.input ?? []).map((x) => c.shape(x)[axis] ?? 0);
        const parts = c.b.opN('Split', [dY!, c.ints(sizes)], { axis }, { outputs: sizes.length });
        return parts.map((p, i) => (w[i] ? p : undefined));
      },
      inputs: 'all',
      outputs: [0],
    },
  },
  Split: {
    infer: (node, ins, cs) => {
      const axis = normAxis(attrInt(node, 'axis', 0), X0(ins).shape.length);
      const sizes = fedAt(node, cs, 1)
        ? runtimeDims(node.output?.length ?? 1)
        : splitSizes(node, cs, X0(ins).shape[axis] ?? 0);
      return sizes.map((s) => {
        const shape = [...X0(ins).shape];
        shape[axis] = s;
        return { elemType: X0(ins).elemType, shape };
      });
    },
    grad: {
      // outputs without a cotangent contribute zeros of their shape
      vjp: (c, n, dYs) => {
        const axis = normAxis(attrInt(n, 'axis', 0), c.dims(I(n, 0)).length);
        const parts = (n.output ?? []).map((o, i) => dYs[i] ?? c.zerosLike(o, c.et(I(n, 0))));
        return [parts.length === 1 ? parts[0] : c.op('Concat', parts, { axis })];
      },
      inputs: [0],
      constant: [1],
      outputs: 'all',
    },
  },
  Slice: {
    infer: (node, ins, cs) => withShape(ins, sliceShape(node, ins, cs)),
    fold: (node, cs) => {
      const c0 = need(cs[0], 'data');
      const spec = sliceSpec(node, cs, c0.shape);
      const st = strides(c0.shape);
      return sourceIndices(
        spec.outShape,
        (a, k) => ((spec.starts[a] ?? 0) + k * (spec.steps[a] ?? 1)) * (st[a] ?? 0),
      ).map((idx) => c0.data[idx] ?? 0);
    },
    grad: { vjp: sliceVjp, inputs: [0], constant: [1, 2, 3, 4], outputs: [0] },
  },
  Gather: {
    runtimeDims: true,
    infer: (node, ins) => {
      const s = X0(ins).shape;
      const axis = normAxis(attrInt(node, 'axis', 0), s.length);
      return withShape(ins, [...s.slice(0, axis), ...need1(ins).shape, ...s.slice(axis + 1)]);
    },
    fold: (node, cs) => {
      const c0 = need(cs[0], 'data');
      const axis = normAxis(attrInt(node, 'axis', 0), c0.shape.length);
      const dim = c0.shape[axis] ?? 0;
      const idx = need(cs[1], 'indices').data.map((v) => (v < 0 ? v + dim : v));
      const outer = numElements(c0.shape.slice(0, axis));
      const inner = numElements(c0.shape.slice(axis + 1));
      const res: number[] = [];
      for (let o = 0; o < outer; o++) {
        for (const j of idx) res.push(...c0.data.slice((o * dim + j) * inner, (o * dim + j + 1) * inner));
      }
      return res;
    },
    grad: { vjp: gatherVjp, inputs: [0], constant: [1], outputs: [0] },
  },
  GatherElements: {
    infer: (_n, ins) => withShape(ins, [...need1(ins).shape]),
    grad: {
      vjp: (c, n, [dY]) => {
        const x = I(n, 0);
        if (c.opset < 16) return [gatherElementsOneHot(c, n, dY!), undefined];
        const axis = normAxis(attrInt(n, 'axis', 0), c.shape(x).length);
        const z = c.zeros(c.shape(x), c.et(x));
        return [c.op('ScatterElements', [z, I(n, 1), dY!], { axis, reduction: 'add' }), undefined];
      },
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  GatherND: {
    infer: (node, ins) => {
      const idx = need1(ins).shape;
      const bd = attrInt(node, 'batch_dims', 0);
      const last = idx[idx.length - 1] ?? 0;
      return withShape(ins, [...idx.slice(0, -1), ...X0(ins).shape.slice(bd + last)]);
    },
    grad: {
      // repeated indices accumulate: ScatterND with 'add' (opset 16; older graphs are read as 16)
      vjp: (c, n, [dY]) => {
        const x = I(n, 0);
        if (attrInt(n, 'batch_dims', 0) !== 0 || c.opset < 16) {
          throw new InputError(
            'model',
            `GatherND ${nodeLabel(n)}: gradient needs batch_dims 0 and opset 16+`,
          );
        }
        return [
          c.op('ScatterND', [c.zeros(c.shape(x), c.et(x)), I(n, 1), dY!], { reduction: 'add' }),
          undefined,
        ];
      },
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  DepthToSpace: blockMove((n, [b, c, h, w]) => {
    const k = attrInt(n, 'blocksize', 1);
    const crd = attrString(n, 'mode', 'DCR') === 'CRD';
    return crd
      ? { split: [b, c / (k * k), k, k, h, w], perm: [0, 1, 4, 2, 5, 3], out: [b, c / (k * k), h * k, w * k] }
      : {
          split: [b, k, k, c / (k * k), h, w],
          perm: [0, 3, 4, 1, 5, 2],
          out: [b, c / (k * k), h * k, w * k],
        };
  }),
  SpaceToDepth: blockMove((n, [b, c, h, w]) => {
    const k = attrInt(n, 'blocksize', 1);
    return { split: [b, c, h / k, k, w / k, k], perm: [0, 3, 5, 1, 2, 4], out: [b, c * k * k, h / k, w / k] };
  }),
  ScatterND: {
    infer: sameAsInput,
    grad: { vjp: scatterVjp('GatherND'), inputs: [0, 2], constant: [1], outputs: [0] },
  },
  ScatterElements: {
    infer: sameAsInput,
    grad: { vjp: scatterVjp('GatherElements'), inputs: [0, 2], constant: [1], outputs: [0] },
  },
  Expand: {
    runtimeDims: true,
    infer: (node, ins, cs) =>
      withShape(
        ins,
        broadcastShapes(
          X0(ins).shape,
          fedAt(node, cs, 1) ? runtimeDims(need1(ins).shape[0] ?? 0) : need(cs[1], 'shape').data,
        ),
      ),
    fold: (_n, [c0], out) => c0 && broadcastIndex(c0.shape, out.shape).map((i) => c0.data[i] ?? 0),
    grad: {
      // with the shape fed at run time, every axis where x is 1 is summed (a no-op where y is 1 too)
      vjp: (c, n, [dY]) => [c.unbroadcast(dY!, c.dims(O(n)), c.shape(I(n, 0)))],
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  Tile: {
    infer: (node, ins, cs) => {
      if (fedAt(node, cs, 1)) return withShape(ins, runtimeDims(X0(ins).shape.length));
      const reps = need(cs[1], 'repeats').data;
      return withShape(
        ins,
        X0(ins).shape.map((d, i) => d * (reps[i] ?? 1)),
      );
    },
    fold: (_n, [c0], out) => {
      if (!c0) return undefined;
      const st = strides(c0.shape);
      return sourceIndices(out.shape, (a, k) => (k % (c0.shape[a] ?? 1)) * (st[a] ?? 0)).map(
        (idx) => c0.data[idx] ?? 0,
      );
    },
    grad: {
      vjp: (c, n, [dY]) => {
        const xs = c.shape(I(n, 0));
        if (c.runtime(I(n, 1))) return [tileRuntimeVjp(c, n, dY!, xs)];
        const reps = need(c.constOf(I(n, 1)), 'repeats').data;
        const split = xs.flatMap((d, i) => [reps[i] ?? 1, d]);
        const r = c.reduceSum(
          c.reshape(dY!, split),
          xs.map((_, i) => 2 * i),
          false,
        );
        return [c.reshape(r, xs)];
      },
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  Pad: {
    infer: (node, ins, cs) => {
      const r = X0(ins).shape.length;
      if (fedAt(node, cs, 1) || fedAt(node, cs, 3)) {
        // pads fed at run time: the padded axes' sizes are known only then
        const ax = fedAt(node, cs, 3) ? undefined : cs[3]?.data.map((a) => normAxis(a, r));
        return withShape(
          ins,
          X0(ins).shape.map((d, i) => (!ax || ax.includes(i) ? RUNTIME_DIM : d)),
        );
      }
      const pads = node.input?.[1] ? need(cs[1], 'pads').data : (attrInts(node, 'pads') ?? []);
      const axes = node.input?.[3]
        ? need(cs[3], 'axes').data.map((a) => normAxis(a, r))
        : X0(ins).shape.map((_, i) => i);
      const shape = [...X0(ins).shape];
      axes.forEach((a, i) => {
        shape[a] = (shape[a] ?? 0) + (pads[i] ?? 0) + (pads[i + axes.length] ?? 0);
      });
      return withShape(ins, shape);
    },
    grad: { vjp: padVjp, inputs: [0, 2], constant: [1, 3], outputs: [0] },
  },
  Trilu: {
    infer: sameAsInput,
    grad: {
      vjp: (c, n, [dY]) => [
        c.op('Trilu', n.input?.[1] ? [dY!, I(n, 1)] : [dY!], { upper: attrInt(n, 'upper', 1) }),
      ],
      inputs: [0],
      constant: [1],
      outputs: [0],
    },
  },
  Shape: {
    runtimeDims: true,
    infer: (node, ins) => {
      const [start, end] = shapeRange(node, X0(ins).shape.length);
      return [{ elemType: DataType.INT64, shape: [Math.max(0, end - start)] }];
    },
    fold: (node, _cs, _out, ins) => {
      const s = X0(ins).shape.slice(...shapeRange(node, X0(ins).shape.length));
      return isStatic(s) ? s : undefined;
    },
    foldAny: true,
    grad: 'zero',
  },
  Size: {
    infer: () => [{ elemType: DataType.INT64, shape: [] }],
    fold: (_n, _cs, _out, ins) => (isStatic(X0(ins).shape) ? [numElements(X0(ins).shape)] : undefined),
    foldAny: true,
    grad: 'zero',
  },
  ConstantOfShape: {
    runtimeDims: true,
    infer: (node, _ins, cs) => [
      {
        elemType: attrTensor(node, 'value')?.dataType ?? DataType.FLOAT,
        shape: cs[0] ? cs[0].data : runtimeDims(_ins[0]?.shape[0] ?? 0),
      },
    ],
    fold: (node, _cs, out) => {
      const t = attrTensor(node, 'value');
      return new Array<number>(numElements(out.shape)).fill(t ? (tensorToNumbers(t)[0] ?? 0) : 0);
    },
    foldAny: true,
    grad: 'zero',
  },
  Constant: {
    infer: (node) => {
      const c = constantValue(node);
      return [{ elemType: c.elemType, shape: c.shape }];
    },
    fold: (node) => constantValue(node).data,
    foldAny: true,
    grad: 'zero',
  },
  Range: {
    runtimeDims: true,
    infer: (_n, ins, cs) => {
      // inputs fed at run time: the length is known only then
      if (!cs[0] || !cs[1] || !cs[2]) return withShape(ins, [RUNTIME_DIM]);
      const [s, l, d] = [0, 1, 2].map((i) => need(cs[i], ['start', 'limit', 'delta'][i] ?? '').data[0] ?? 0);
      return withShape(ins, [Math.max(Math.ceil(((l ?? 0) - (s ?? 0)) / (d ?? 1)), 0)]);
    },
    fold: (_n, cs, out) => {
      const [s, d] = [need(cs[0], 'start').data[0] ?? 0, need(cs[2], 'delta').data[0] ?? 1];
      return Array.from({ length: out.shape[0] ?? 0 }, (_, i) => s + i * d);
    },
    grad: {
      // y_i = start + i·delta (the length, set by limit, is piecewise constant)
      vjp: (c, n, [dY], w) => {
        const et = c.et(O(n));
        const sum = (v: string) => c.reduceSum(v, [0], false);
        const len = isStatic(c.dims(O(n)))
          ? c.scalar(c.shape(O(n))[0] ?? 0, et)
          : c.op('Cast', [c.op('Size', [O(n)])], { to: et });
        const iota = c.op('Range', [c.scalar(0, et), len, c.scalar(1, et)]);
        return [
          w[0] ? c.reshape(sum(dY!), c.shape(I(n, 0))) : undefined,
          undefined,
          w[2] ? c.reshape(sum(c.mul(dY!, iota)), c.shape(I(n, 2))) : undefined,
        ];
      },
      inputs: [0, 2],
      constant: [1],
      outputs: [0],
    },
  },
  NonZero: { grad: 'zero' },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const SHAPE_SAME_BEFORE_16: readonly string[] = [
  'Concat',
  'Constant',
  'ConstantOfShape',
  'DepthToSpace',
  'Expand',
  'Flatten',
  'Gather',
  'GatherElements',
  'GatherND',
  'Pad',
  'Range',
  'Reshape',
  'ScatterElements',
  'ScatterND',
  'Shape',
  'Size',
  'Slice',
  'SpaceToDepth',
  'Split',
  'Squeeze',
  'Tile',
  'Transpose',
  'Trilu',
  'Unsqueeze',
];

function need1(ins: (ValueType | undefined)[]): ValueType {
  const t = ins[1];
  if (!t) throw new Error('missing input 1');
  return t;
}

function shapeRange(node: NodeProto, r: number): [number, number] {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  return [clamp(attrInt(node, 'start', 0)), clamp(attrInt(node, 'end', r))];
}

function padVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const fed = c.runtime(I(n, 1)) || c.runtime(I(n, 3));
  if (fed || attrString(n, 'mode', 'constant') !== 'constant') return indexPadVjp(c, n, dY!, w);
  const xs = c.shape(I(n, 0));
  const r = xs.length;
  const pads = n.input?.[1] ? c.constOf(I(n, 1))?.data : attrInts(n, 'pads');
  if (!pads) throw new InputError('model', `Pad ${nodeLabel(n)}: pads must be constant`);
  const ax = n.input?.[3] ? c.constOf(I(n, 3))?.data.map((a) => normAxis(a, r)) : xs.map((_, i) => i);
  if (!ax) throw new InputError('model', `Pad ${nodeLabel(n)}: axes must be constant`);
  const starts = ax.map((_, i) => pads[i] ?? 0);
  const ends = ax.map((a, i) => (pads[i] ?? 0) + (xs[a] ?? 0));
  const inner = c.op('Slice', [dY!, c.ints(starts), c.ints(ends), c.ints(ax)]);
  // the padding value fills everything outside the slice
  const all = (v: string) =>
    c.reduceSum(
      v,
      c.shape(v).map((_, i) => i),
      false,
    );
  const value = n.input?.[2];
  const dV = w[2] && value ? c.reshape(c.op('Sub', [all(dY!), all(inner)]), c.shape(value)) : undefined;
  return [inner, undefined, dV];
}

function gatherVjp(...[c, n, [dY]]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const axis = normAxis(attrInt(n, 'axis', 0), xs.length);
  const idxName = I(n, 1);
  // indices whose shape is known only at run time (a Range fed its bounds): their count is Reshape's -1
  const qn = isStatic(c.dims(idxName)) ? numElements(c.shape(idxName)) : -1;
  // dY as [pre, qn, post] with the indices flattened, ScatterElements-add into zeros of X
  const mid = [...xs.slice(0, axis), qn, ...xs.slice(axis + 1)];
  const d = c.reshape(dY!, mid);
  const flatIdx = c.reshape(idxName, [qn]);
  const idxShape = mid.map((_, i) => (i === axis ? qn : 1));
  let idx = c.op('Expand', [c.reshape(flatIdx, idxShape), qn < 0 ? c.op('Shape', [d]) : c.ints(mid)]);
  if (c.et(idxName) !== DataType.INT64) idx = c.op('Cast', [idx], { to: DataType.INT64 });
  const zeros = c.zeros(xs, c.et(x));
  if (c.opset >= 16) return [c.op('ScatterElements', [zeros, idx, d], { axis, reduction: 'add' }), undefined];
  const ic = c.constOf(idxName);
  const dim = xs[axis] ?? 0;
  const uniq = ic && new Set(ic.data.map((v) => (v < 0 ? v + dim : v))).size === ic.data.length;
  if (uniq) return [c.op('ScatterElements', [zeros, idx, d], { axis }), undefined];
  // before opset 16 (no ScatterElements 'add'): dX[pre, j, post] = Σ_q [idx_q = j]·dY[pre, q, post],
  // a product with the one-hot matrix of the indices
  const pre = numElements(xs.slice(0, axis));
  const post = numElements(xs.slice(axis + 1));
  const hot = oneHot(c, c.reshape(idxName, [qn, 1]), dim, c.et(x));
  const dX = c.op('MatMul', [c.transpose(hot, [1, 0]), c.reshape(dY!, [pre, qn, post])]);
  return [c.reshape(dX, xs), undefined];
}

/** [..., dim] with 1 where the (possibly negative) index in the last axis of `idx` [..., 1] is j. */
function oneHot(c: GradContext, idx: string, dim: number, et: number): string {
  let q = c.et(idx) === DataType.INT64 ? idx : c.op('Cast', [idx], { to: DataType.INT64 });
  q = c.op('Where', [c.op('Less', [q, c.ints([0])]), c.op('Add', [q, c.ints([dim])]), q]);
  const range = c.ints(Array.from({ length: dim }, (_, j) => j));
  return c.op('Cast', [c.op('Equal', [q, range])], { to: et });
}

/** GatherElements before opset 16: per position, a one-hot product along the axis. */
function gatherElementsOneHot(c: GradContext, n: NodeProto, dY: string): string {
  const x = I(n, 0);
  const xs = c.shape(x);
  const idx = I(n, 1);
  const s = c.shape(idx);
  const r = xs.length;
  const axis = normAxis(attrInt(n, 'axis', 0), r);
  const dim = xs[axis] ?? 0;
  // the axis moved last: idx, dY [S, q]; hot [S, q, dim]; dX = dY [S, 1, q] · hot → [S, dim]
  const perm = [...Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis), axis];
  const inv = perm.map((_, i) => perm.indexOf(i));
  const rest = perm.slice(0, -1).map((i) => s[i] ?? 1);
  const q = s[axis] ?? 1;
  const hot = oneHot(c, c.reshape(c.transpose(idx, perm), [...rest, q, 1]), dim, c.et(x));
  const d = c.reshape(c.transpose(dY, perm), [...rest, 1, q]);
  const dX = c.transpose(c.reshape(c.op('MatMul', [d, hot]), [...rest, dim]), inv);
  // positions past the indices' extent (smaller along the other axes) get no gradient
  const short = xs.map((v, i) => (i === axis ? 0 : v - (s[i] ?? v)));
  return short.some((v) => v > 0) ? c.op('Pad', [dX, c.ints([...xs.map(() => 0), ...short])]) : dX;
}

function sliceVjp(...[c, n, [dY]]: Parameters<Vjp>): ReturnType<Vjp> {
  const fed = (n.input ?? []).slice(1).some((v) => c.runtime(v));
  if (fed || !isStatic(c.dims(I(n, 0)))) return [runtimeSliceVjp(c, n, dY!)];
  const xs = c.shape(I(n, 0));
  const cs = (n.input ?? []).map((i) => (i ? c.constOf(i) : undefined));
  const spec = sliceSpec(n, cs, xs);
  if (spec.steps.every((s) => s === 1)) {
    const pads = [...spec.starts, ...xs.map((d, a) => d - (spec.ends[a] ?? d))];
    if (pads.every((p) => p === 0)) return [dY];
    return [c.op('Pad', [dY!, c.ints(pads)])];
  }
  if (spec.steps.every((s) => s > 0)) return [stridedSliceVjp(c, n, dY!, xs, spec)];
  return [scatterSliceVjp(c, n, dY!, xs, spec)];
}

/** Positive steps: interleave step−1 zeros along each strided axis, then pad/crop. */
function stridedSliceVjp(
  c: GradContext,
  n: NodeProto,
  dY: string,
  xs: number[],
  spec: ReturnType<typeof sliceSpec>,
): string {
  const et = c.et(I(n, 0));
  let d = dY;
  const cur = [...spec.outShape];
  xs.forEach((_, a) => {
    const st = spec.steps[a] ?? 1;
    if (st === 1 || cur[a] === 0) return;
    const un = [...cur.slice(0, a + 1), 1, ...cur.slice(a + 1)];
    const pads = new Array<number>(2 * un.length).fill(0);
    pads[un.length + a + 1] = st - 1;
    d = c.op('Pad', [c.reshape(d, un), c.ints(pads), c.scalar(0, et)]);
    cur[a] = (cur[a] ?? 0) * st;
    d = c.reshape(d, cur);
  });
  const crop = xs.map((dim, a) => Math.min(cur[a] ?? 0, dim - (spec.starts[a] ?? 0)));
  if (crop.some((v, a) => v !== cur[a])) {
    d = c.op('Slice', [d, c.ints(xs.map(() => 0)), c.ints(crop), c.ints(xs.map((_, a) => a))]);
  }
  const pads = [...spec.starts, ...xs.map((dim, a) => dim - (spec.starts[a] ?? 0) - (crop[a] ?? 0))];
  return pads.every((p) => p === 0) ? d : c.op('Pad', [d, c.ints(pads)]);
}

/** Negative steps: scatter into zeros at the indices the slice read. */
function scatterSliceVjp(
  c: GradContext,
  n: NodeProto,
  dY: string,
  xs: number[],
  spec: ReturnType<typeof sliceSpec>,
): string {
  const total = numElements(spec.outShape);
  if (total * xs.length > 1 << 22)
    throw new InputError('model', `strided Slice ${nodeLabel(n)} is too large to differentiate`);
  const idx = new BigInt64Array(total * xs.length);
  const os = spec.outShape;
  for (let i = 0; i < total; i++) {
    let rem = i;
    for (let a = os.length - 1; a >= 0; a--) {
      const dim = os[a] ?? 1;
      const cix = rem % dim;
      rem = Math.floor(rem / dim);
      idx[i * xs.length + a] = BigInt((spec.starts[a] ?? 0) + cix * (spec.steps[a] ?? 1));
    }
  }
  const name = c.b.fresh('grad_slice_idx');
  c.b.graph.initializer?.push(makeTensor(name, [...os, xs.length], idx));
  return c.op('ScatterND', [c.zeros(xs, c.et(I(n, 0))), name, dY]);
}

interface BlockPlan {
  split: number[];
  perm: number[];
  out: number[];
}

/** DepthToSpace/SpaceToDepth: a reshape, a transpose and a reshape; the gradient runs them backwards. */
function blockMove(planOf: (n: NodeProto, xs: [number, number, number, number]) => BlockPlan): OpDef {
  const plan = (n: NodeProto, xs: number[]) => {
    const [b = 1, ch = 1, h = 1, w = 1] = xs;
    return planOf(n, [b, ch, h, w]);
  };
  return {
    infer: (n, ins) => withShape(ins, plan(n, X0(ins).shape).out),
    grad: {
      vjp: (c, n, [dY]) => {
        const xs = c.shape(I(n, 0));
        const p = plan(n, xs);
        const inv = p.perm.map((_, i) => p.perm.indexOf(i));
        const moved = p.perm.map((a) => p.split[a] ?? 1);
        return [c.reshape(c.transpose(c.reshape(dY!, moved), inv), xs)];
      },
      inputs: [0],
      outputs: [0],
    },
  };
}

/**
 * Slice's output shape; where starts/ends/axes/steps are fed at run time, the sliced axes (all,
 * if the axes are fed too) are known only then.
 */
function sliceShape(node: NodeProto, ins: (ValueType | undefined)[], cs: (Const | undefined)[]): number[] {
  const xs = X0(ins).shape;
  if (![1, 2, 3, 4].some((i) => fedAt(node, cs, i))) return sliceSpec(node, cs, xs).outShape;
  const count = ins[1]?.shape[0] ?? 0;
  const axes = fedAt(node, cs, 3)
    ? undefined
    : (cs[3]?.data ?? Array.from({ length: count }, (_, i) => i)).map((a) => normAxis(a, xs.length));
  return xs.map((d, i) => (!axes || axes.includes(i) ? RUNTIME_DIM : d));
}

/**
 * x's flat element indices [0, N) in x's shape (int64): moved by the forward operator itself, they
 * say where each output element came from, so a rule whose index map is known only at run time
 * scatters the cotangent back through them.
 */
function flatIndices(c: GradContext, x: string): string {
  const iota = c.op('Range', [c.int64(0), c.op('Size', [x]), c.int64(1)]);
  return c.reshapeLike(iota, x);
}

/**
 * Σ of `d` [M] into `size` slots at `idx` [M] (int64, repeats accumulate): ScatterElements with
 * reduction 'add' (opset 16+), before that a product with the one-hot matrix of the indices.
 */
function scatterAdd(c: GradContext, idx: string, d: string, size: number, et: number): string {
  if (c.opset >= 16) {
    return c.op('ScatterElements', [c.zeros([size], et), idx, d], { axis: 0, reduction: 'add' });
  }
  const slots = c.op('Range', [c.int64(0), c.int64(size), c.int64(1)]);
  const hot = c.op('Cast', [c.op('Equal', [c.op('Unsqueeze', [idx, c.ints([1])]), slots])], { to: et });
  return c.reshape(c.op('MatMul', [c.op('Unsqueeze', [d, c.ints([0])]), hot]), [size]);
}

/** Slice with starts/ends/axes/steps fed at run time (any signs): dY scattered back to the indices the same Slice reads. */
function runtimeSliceVjp(c: GradContext, n: NodeProto, dY: string): string {
  const x = I(n, 0);
  const picked = c.op('Slice', [flatIndices(c, x), ...(n.input ?? []).slice(1)]);
  const flat = c.op(
    'ScatterElements',
    [c.zerosLike(c.reshape(x, [-1]), c.et(x)), c.reshape(picked, [-1]), c.reshape(dY, [-1])],
    {
      axis: 0,
    },
  );
  return c.reshapeLike(flat, x);
}

/**
 * Pad with pads or axes fed at run time, or in edge/reflect/wrap mode: the same Pad applied to x's
 * flat indices (the padding value there is N, an extra slot) says where each output element came
 * from; dY is summed back into those N + 1 slots, the last being the padding value's cotangent.
 */
function indexPadVjp(c: GradContext, n: NodeProto, dY: string, w: boolean[]): (string | undefined)[] {
  const x = I(n, 0);
  const xs = c.shape(x);
  const size = numElements(xs);
  const et = c.et(x);
  const ins = n.input ?? [];
  const padded = c.op('Pad', [flatIndices(c, x), ins[1] ?? '', c.int64(size), ...ins.slice(3)], {
    mode: attrString(n, 'mode', 'constant'),
  });
  const acc = scatterAdd(c, c.reshape(padded, [-1]), c.reshape(dY, [-1]), size + 1, et);
  const part = (from: number, to: number) => c.op('Slice', [acc, c.ints([from]), c.ints([to])]);
  const value = ins[2];
  const constantMode = attrString(n, 'mode', 'constant') === 'constant';
  let dV: string | undefined;
  if (w[2] && value)
    dV = constantMode ? c.reshape(part(size, size + 1), c.shape(value)) : c.zeros(c.shape(value), et);
  return [c.reshape(part(0, size), xs), undefined, dV];
}

/** Tile with repeats fed at run time: dY as [r0, x0, r1, x1, …] (shape built at run time), summed over the r axes. */
function tileRuntimeVjp(c: GradContext, n: NodeProto, dY: string, xs: number[]): string {
  const r = xs.length;
  const pairs = c.op('Concat', [c.op('Unsqueeze', [I(n, 1), c.ints([1])]), c.reshape(c.ints(xs), [r, 1])], {
    axis: 1,
  });
  const split = c.op('Reshape', [dY, c.reshape(pairs, [2 * r])]);
  const sum = c.reduceSum(
    split,
    xs.map((_, i) => 2 * i),
    false,
  );
  return c.reshape(sum, xs);
}
