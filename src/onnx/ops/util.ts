/**
 * Axis, broadcast and attribute arithmetic shared by the operator definitions (shape rules,
 * folding and gradients read the same resolved attributes).
 */
import { attrFloats, attrInt, attrInts, attrString, attrTensor } from '../graph.js';
import { numElements, tensorToNumbers } from '../model.js';
import { DataType, type NodeProto, type TensorProto } from '../proto.js';
import type { Const } from './types.js';

export const isFloatType = (et: number): boolean =>
  et === DataType.FLOAT || et === DataType.DOUBLE || et === DataType.FLOAT16 || et === DataType.BFLOAT16;

export function tensorConst(t: TensorProto, limit = 4096): Const | undefined {
  const et = t.dataType ?? 0;
  const shape = [...(t.dims ?? [])];
  if (numElements(shape) > limit) return undefined;
  if (et === DataType.FLOAT16 || et === DataType.BFLOAT16 || et === DataType.STRING || t.dataLocation === 1) {
    return undefined;
  }
  return { elemType: et, shape, data: tensorToNumbers(t) };
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/**
 * A dim known only at run time: downstream of a shape, axes, sizes or repeats value that is a
 * graph input (or computed from one). Rules that read shapes statically refuse such values
 * (`GradContext.shape`); the rules of the shape operators compute what they need at run time.
 */
export const RUNTIME_DIM = -1;

/** Whether every dim of `shape` is known when the graph is written. */
export const isStatic = (shape: readonly number[]): boolean => shape.every((d) => d >= 0);

/** Broadcast shapes; a run-time dim against 1 stays run-time, against a known d > 1 is d. */
export function broadcastShapes(...shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1 || (v === RUNTIME_DIM && d !== 1)) continue;
      if (d === RUNTIME_DIM) {
        d = v;
        continue;
      }
      if (d !== 1 && d !== v)
        throw new Error(`shapes [${shapes.map((x) => x.join(',')).join('] [')}] do not broadcast`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Reduction axes from the input (when present) or the attribute; undefined = all axes. */
export function reduceAxes(node: NodeProto, cs: (Const | undefined)[], rank: number): number[] | undefined {
  const name = node.input?.[1];
  let axes: number[] | undefined;
  if (name) {
    const c = cs[1];
    if (!c) throw new Error('axes input is not a constant');
    axes = c.data;
  } else axes = attrInts(node, 'axes');
  if (!axes || axes.length === 0) {
    return attrInt(node, 'noop_with_empty_axes', 0) ? [] : undefined;
  }
  return axes.map((a) => normAxis(a, rank));
}

export function need(c: Const | undefined, what: string): Const {
  if (!c) throw new Error(`${what} is not a constant (a data-dependent shape cannot be made static)`);
  return c;
}

/** Squeeze/Unsqueeze axes from input 1 (opset 13+) or the attribute. */
export function squeezeAxes(node: NodeProto, cs: (Const | undefined)[]): number[] | undefined {
  if (node.input?.[1]) return need(cs[1], 'axes').data;
  return attrInts(node, 'axes');
}

/**
 * An Einsum equation as one index string per input and the output's. An ellipsis becomes
 * letters of its own (right-aligned across inputs), which needs the inputs' `ranks`.
 */
export function parseEinsum(
  equation: string,
  nInputs: number,
  ranks?: number[],
): { inputs: string[]; output: string } {
  const eq = equation.replace(/\s+/g, '');
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  let inputs = lhs.split(',');
  if (inputs.length !== nInputs)
    throw new Error(`Einsum '${equation}' names ${inputs.length} inputs, node has ${nInputs}`);
  let ell = '';
  if (eq.includes('...')) {
    if (!ranks) throw new Error(`Einsum '${equation}': an ellipsis needs the input ranks`);
    const free = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'].filter((l) => !eq.includes(l));
    const widths = inputs.map((spec, i) => (spec.includes('...') ? (ranks[i] ?? 0) - (spec.length - 3) : 0));
    ell = free.slice(0, Math.max(0, ...widths)).join('');
    inputs = inputs.map((spec, i) => spec.replace('...', ell.slice(ell.length - (widths[i] ?? 0))));
  }
  let output = rhs?.replace('...', ell);
  if (output === undefined) {
    // implicit output: the ellipsis, then the letters used once, sorted
    const count = new Map<string, number>();
    for (const l of inputs.join('')) count.set(l, (count.get(l) ?? 0) + 1);
    output =
      ell +
      [...count.keys()]
        .filter((l) => count.get(l) === 1 && !ell.includes(l))
        .sort()
        .join('');
  }
  return { inputs, output };
}

export interface SliceSpec {
  starts: number[];
  ends: number[];
  steps: number[];
  outShape: number[];
}

/** Resolve Slice's clamped starts/ends/steps per axis (all axes listed). */
export function sliceSpec(node: NodeProto, cs: (Const | undefined)[], shape: number[]): SliceSpec {
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if ((node.input?.length ?? 0) > 1) {
    starts = need(cs[1], 'starts').data;
    ends = need(cs[2], 'ends').data;
    axes = node.input?.[3] ? need(cs[3], 'axes').data : undefined;
    steps = node.input?.[4] ? need(cs[4], 'steps').data : undefined;
  } else {
    starts = attrInts(node, 'starts') ?? [];
    ends = attrInts(node, 'ends') ?? [];
    axes = attrInts(node, 'axes');
  }
  const rank = shape.length;
  const S = shape.map(() => 0);
  const E = [...shape];
  const T = shape.map(() => 1);
  const ax = axes ?? starts.map((_, i) => i);
  ax.forEach((a0, i) => {
    const a = normAxis(a0, rank);
    const dim = shape[a]!;
    const step = steps?.[i] ?? 1;
    if (step === 0) throw new Error('Slice step 0');
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    S[a] = s;
    E[a] = e;
    T[a] = step;
  });
  const outShape = shape.map((_, a) => Math.max(0, Math.ceil((E[a]! - S[a]!) / T[a]!)));
  return { starts: S, ends: E, steps: T, outShape };
}

export interface ConvSpec {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin..., end...] as ONNX writes them, resolved for auto_pad. */
  pads: number[];
  group: number;
  outShape: number[];
}

/** Conv's resolved attributes and output shape, for X [N, C, ...] and W [M, C/g, ...]. */
export function convSpec(node: NodeProto, x: number[], w: number[]): ConvSpec {
  const nsp = x.length - 2;
  const kernel = attrInts(node, 'kernel_shape') ?? w.slice(2);
  const strides = attrInts(node, 'strides') ?? kernel.map(() => 1);
  const dilations = attrInts(node, 'dilations') ?? kernel.map(() => 1);
  const group = attrInt(node, 'group', 1);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  let pads = attrInts(node, 'pads') ?? new Array(2 * nsp).fill(0);
  const spatial: number[] = [];
  for (let i = 0; i < nsp; i++) {
    const inD = x[i + 2]!;
    const ke = (kernel[i]! - 1) * dilations[i]! + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const out = Math.ceil(inD / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + ke - inD);
      const small = Math.floor(total / 2);
      pads = [...pads];
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + nsp] = total - pads[i]!;
      spatial.push(out);
    } else {
      if (autoPad === 'VALID') {
        pads = [...pads];
        pads[i] = 0;
        pads[i + nsp] = 0;
      }
      spatial.push(Math.floor((inD + pads[i]! + pads[i + nsp]! - ke) / strides[i]!) + 1);
    }
  }
  return { kernel, strides, dilations, pads, group, outShape: [x[0]!, w[0]!, ...spatial] };
}

export function matmulShape(a: number[], b: number[]): number[] {
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (k1 !== k2) throw new Error(`MatMul inner dims ${k1} and ${k2} differ`);
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch];
  if (a.length !== 1) out.push(a2[a2.length - 2]!);
  if (b.length !== 1) out.push(b2[b2.length - 1]!);
  return out;
}

export function reshapeShape(input: number[], target: number[], allowzero: boolean): number[] {
  const out = target.map((d, i) => (d === 0 && !allowzero ? input[i]! : d));
  // from dims known only at run time, a -1 (inferred) dim is known only then too: RUNTIME_DIM
  if (!isStatic(input)) return out;
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const known = out.reduce((p, d, i) => (i === neg ? p : p * d), 1);
    out[neg] = known === 0 ? 0 : numElements(input) / known;
  }
  if (numElements(out) !== numElements(input)) {
    throw new Error(`cannot reshape [${input.join(',')}] to [${target.join(',')}]`);
  }
  return out;
}

export function splitSizes(node: NodeProto, cs: (Const | undefined)[], dim: number): number[] {
  const nOut = node.output?.length ?? 1;
  if (node.input?.[1]) return need(cs[1], 'split').data;
  const attr = attrInts(node, 'split');
  if (attr?.length) return attr;
  const num = attrInt(node, 'num_outputs') ?? nOut;
  const chunk = Math.ceil(dim / num);
  return Array.from({ length: num }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
}

export function constantValue(node: NodeProto): Const {
  const t = attrTensor(node, 'value');
  if (t) {
    const c = tensorConst(t, Number.POSITIVE_INFINITY);
    if (!c) throw new Error('Constant tensor type not foldable');
    return c;
  }
  const vf = node.attribute?.find((a) => a.name === 'value_float');
  if (vf) return { elemType: DataType.FLOAT, shape: [], data: [vf.f ?? 0] };
  const vfs = attrFloats(node, 'value_floats');
  if (vfs) return { elemType: DataType.FLOAT, shape: [vfs.length], data: vfs };
  const vi = attrInt(node, 'value_int');
  if (vi !== undefined) return { elemType: DataType.INT64, shape: [], data: [vi] };
  const vis = attrInts(node, 'value_ints');
  if (vis) return { elemType: DataType.INT64, shape: [vis.length], data: vis };
  throw new Error('Constant without a supported value attribute');
}

export function strides(shape: number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1]!;
  return s;
}

/** For each output element of shape `out`, the flat index into a broadcast input of `shape`. */
export function broadcastIndex(shape: number[], out: number[]): number[] {
  const n = numElements(out);
  const st = strides(shape);
  const off = out.length - shape.length;
  const res = new Array<number>(n);
  const os = strides(out);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let idx = 0;
    for (let a = 0; a < out.length; a++) {
      const c = Math.floor(rem / os[a]!);
      rem -= c * os[a]!;
      const ia = a - off;
      if (ia >= 0 && shape[ia]! !== 1) idx += c * st[ia]!;
    }
    res[i] = idx;
  }
  return res;
}

export function castValue(v: number, et: number): number {
  switch (et) {
    case DataType.FLOAT:
      return Math.fround(v);
    case DataType.DOUBLE:
      return v;
    case DataType.BOOL:
      return v ? 1 : 0;
    default:
      return Number.isFinite(v) ? Math.trunc(v) : v;
  }
}

export const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** ConvTranspose's resolved attributes for X [N, C, ...] and W [C, M/g, ...]: pads from auto_pad or output_shape. */
export function convTransposeSpec(
  node: NodeProto,
  x: number[],
  w: number[],
): ConvSpec & { outputPadding: number[] } {
  const nsp = x.length - 2;
  const kernel = attrInts(node, 'kernel_shape') ?? w.slice(2);
  const strides = attrInts(node, 'strides') ?? kernel.map(() => 1);
  const dilations = attrInts(node, 'dilations') ?? kernel.map(() => 1);
  const group = attrInt(node, 'group', 1);
  const outputPadding = [...(attrInts(node, 'output_padding') ?? kernel.map(() => 0))];
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const given = attrInts(node, 'output_shape');
  const full = kernel.map(
    (k, i) =>
      (strides[i] ?? 1) * ((x[i + 2] ?? 1) - 1) + (outputPadding[i] ?? 0) + (k - 1) * (dilations[i] ?? 1) + 1,
  );
  let pads = attrInts(node, 'pads') ?? new Array<number>(2 * nsp).fill(0);
  const same = autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER';
  if (given?.length || same) {
    // the output size is given (or input·stride): the padding is what it takes, split as the spec says
    const target = given?.length
      ? given.slice(-nsp)
      : kernel.map((_, i) => (x[i + 2] ?? 1) * (strides[i] ?? 1));
    pads = new Array<number>(2 * nsp).fill(0);
    full.forEach((f, i) => {
      // a larger output than the kernel covers grows at the end, like output_padding
      const total = f - (target[i] ?? f);
      if (total < 0) {
        outputPadding[i] = (outputPadding[i] ?? 0) - total;
        full[i] = f - total;
        return;
      }
      const half = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? half : total - half;
      pads[i + nsp] = total - (pads[i] ?? 0);
    });
  } else if (autoPad === 'VALID') pads = new Array<number>(2 * nsp).fill(0);
  const spatial = full.map((f, i) => f - (pads[i] ?? 0) - (pads[i + nsp] ?? 0));
  return {
    kernel,
    strides,
    dilations,
    pads,
    group,
    outputPadding,
    outShape: [x[0] ?? 1, (w[1] ?? 1) * group, ...spatial],
  };
}
