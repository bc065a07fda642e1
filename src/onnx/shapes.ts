/**
 * Static shape and element-type resolution for every value of a graph, with constant folding of
 * small (Shape-driven) subgraphs, so PyTorch-exported graphs get fully static shapes.
 *
 * Both forms of the operators whose attributes became inputs are read (ReduceSum's axes since
 * 13, the other reductions' since 18, Split sizes and Squeeze/Unsqueeze axes since 13): the
 * input is used when present, else the attribute.
 *
 * @example
 *   const info = inferShapes(model, { shapes: { latents: [1, 16, 5, 8, 8] } });
 *   info.types.get('velocity'); // { elemType: 1, shape: [1, 16, 5, 8, 8] }
 */
import { InputError } from '../errors.js';
import {
  attrFloats,
  attrInt,
  attrInts,
  attrString,
  attrTensor,
  modelOpset,
  nodeLabel,
  topoSort,
} from './graph.js';
import { numElements, tensorToNumbers } from './model.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

export interface ValueType {
  elemType: number;
  shape: number[];
}

/** A small constant known at graph-writing time (int64 values as plain numbers). */
export interface Const extends ValueType {
  data: number[];
}

export interface ShapeInfo {
  opset: number;
  types: Map<string, ValueType>;
  consts: Map<string, Const>;
  /** The graph's nodes in topological order. */
  order: NodeProto[];
}

export interface ShapeOptions {
  /** Overrides: an input's name → its full shape, or a symbolic dim name → [value]. */
  shapes?: Record<string, number[]>;
  /** Largest tensor (elements) that is folded or kept as a constant. Default 4096. */
  constLimit?: number;
}

export const isFloatType = (et: number): boolean =>
  et === DataType.FLOAT || et === DataType.DOUBLE || et === DataType.FLOAT16 || et === DataType.BFLOAT16;

/** Resolve every value's static type; throws InputError for unresolved dims or unknown ops. */
export function inferShapes(model: ModelProto, opts: ShapeOptions = {}): ShapeInfo {
  const graph = model.graph ?? {};
  const opset = modelOpset(model);
  const limit = opts.constLimit ?? 4096;
  const overrides = opts.shapes ?? {};
  const types = new Map<string, ValueType>();
  const consts = new Map<string, Const>();
  const inits = new Set<string>();

  for (const t of graph.initializer ?? []) {
    const name = t.name ?? '';
    inits.add(name);
    const vt = { elemType: t.dataType ?? 0, shape: [...(t.dims ?? [])] };
    types.set(name, vt);
    const c = tensorConst(t, limit);
    if (c) consts.set(name, c);
  }
  for (const v of graph.input ?? []) {
    const name = v.name ?? '';
    const tt = v.type?.tensorType;
    if (!tt) throw new InputError('model', `input '${name}' is not a tensor`);
    const dims = tt.shape?.dim;
    const ov = overrides[name];
    let shape: number[];
    if (ov) {
      if (dims && dims.length !== ov.length) {
        throw new InputError(
          `--shape ${name}`,
          `rank ${ov.length} but the model's input has rank ${dims.length}`,
        );
      }
      dims?.forEach((d, i) => {
        if (d.dimValue !== undefined && d.dimValue !== ov[i]) {
          throw new InputError(
            `--shape ${name}`,
            `dim ${i} is ${ov[i]} but the model fixes it to ${d.dimValue}`,
          );
        }
      });
      shape = [...ov];
    } else if (inits.has(name)) {
      continue; // an initializer that is also an input keeps its stored shape
    } else {
      if (!dims)
        throw new InputError('model', `input '${name}' has no shape; give it with --shape ${name}=...`);
      shape = dims.map((d, i) => {
        if (d.dimValue !== undefined && d.dimValue > 0) return d.dimValue;
        const sym = d.dimParam && overrides[d.dimParam];
        if (sym && sym.length === 1) return sym[0]!;
        throw new InputError(
          'model',
          `input '${name}' has dynamic dim ${i}${d.dimParam ? ` ('${d.dimParam}')` : ''}; give its shape with --shape ${name}=...`,
        );
      });
    }
    types.set(name, { elemType: tt.elemType ?? 0, shape });
  }

  const declared = new Map<string, ValueType>();
  for (const v of [...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const tt = v.type?.tensorType;
    const dims = tt?.shape?.dim;
    if (tt?.elemType && dims?.every((d) => d.dimValue !== undefined)) {
      declared.set(v.name ?? '', { elemType: tt.elemType, shape: dims.map((d) => d.dimValue!) });
    }
  }

  const order = topoSort(graph);
  for (const node of order) {
    const ins = (node.input ?? []).map((n) => (n ? types.get(n) : undefined));
    const cs = (node.input ?? []).map((n) => (n ? consts.get(n) : undefined));
    let outs: ValueType[];
    try {
      outs = inferNode(node, ins, cs, opset);
    } catch (err) {
      const outsDeclared = (node.output ?? []).map((o) => declared.get(o));
      if (err instanceof UnknownOp && outsDeclared.every((d) => d)) outs = outsDeclared as ValueType[];
      else if (err instanceof InputError) throw err;
      else
        throw new InputError('model', `node ${nodeLabel(node)} (${node.opType}): ${(err as Error).message}`);
    }
    (node.output ?? []).forEach((o, i) => {
      if (o && outs[i]) types.set(o, outs[i]!);
    });
    const out0 = outs[0];
    if (out0 && (node.output ?? []).length === 1 && numElements(out0.shape) <= limit) {
      try {
        const c = foldNode(node, ins, cs, out0, opset);
        if (c) consts.set(node.output![0]!, c);
      } catch {
        // folding is an optimisation for shapes; a value that cannot be folded stays dynamic
      }
    }
  }
  return { opset, types, consts, order };
}

/** The type of `name`, or an InputError naming it. */
export function typeOf(info: ShapeInfo, name: string): ValueType {
  const t = info.types.get(name);
  if (!t) throw new InputError('model', `no static type for value '${name}'`);
  return t;
}

export function tensorConst(t: TensorProto, limit = 4096): Const | undefined {
  const et = t.dataType ?? 0;
  const shape = [...(t.dims ?? [])];
  if (numElements(shape) > limit) return undefined;
  if (et === DataType.FLOAT16 || et === DataType.BFLOAT16 || et === DataType.STRING || t.dataLocation === 1) {
    return undefined;
  }
  return { elemType: et, shape, data: tensorToNumbers(t) };
}

class UnknownOp extends Error {}

// ---------------------------------------------------------------------------------------------
// Shape rules

const UNARY_SAME = new Set([
  'Identity',
  'Neg',
  'Abs',
  'Sqrt',
  'Reciprocal',
  'Exp',
  'Log',
  'Tanh',
  'Sigmoid',
  'Erf',
  'Relu',
  'Gelu',
  'Sin',
  'Cos',
  'Tan',
  'Atan',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Softmax',
  'LogSoftmax',
  'LeakyRelu',
  'Elu',
  'Selu',
  'Celu',
  'Softplus',
  'Softsign',
  'HardSigmoid',
  'HardSwish',
  'Mish',
  'Clip',
  'Not',
  'CumSum',
  'Trilu',
  'LpNormalization',
  'InstanceNormalization',
  'GroupNormalization',
  'BatchNormalization',
  'ScatterND',
  'ScatterElements',
  'PRelu',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'BitShift']);
const VARIADIC = new Set(['Sum', 'Mean', 'Max', 'Min']);
const COMPARE = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']);
const REDUCE = new Set([
  'ReduceSum',
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
]);

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(...shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
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

function need(c: Const | undefined, what: string): Const {
  if (!c) throw new Error(`${what} is not a constant (a data-dependent shape cannot be made static)`);
  return c;
}

/** Squeeze/Unsqueeze axes from input 1 (opset 13+) or the attribute. */
export function squeezeAxes(node: NodeProto, cs: (Const | undefined)[]): number[] | undefined {
  if (node.input?.[1]) return need(cs[1], 'axes').data;
  return attrInts(node, 'axes');
}

/** An Einsum equation without ellipsis: one index string per input and the output's. */
export function parseEinsum(equation: string, nInputs: number): { inputs: string[]; output: string } {
  const eq = equation.replace(/\s+/g, '');
  if (eq.includes('...')) throw new Error(`Einsum '${equation}': ellipsis is not supported`);
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const inputs = lhs.split(',');
  if (inputs.length !== nInputs)
    throw new Error(`Einsum '${equation}' names ${inputs.length} inputs, node has ${nInputs}`);
  let output = rhs;
  if (output === undefined) {
    const count = new Map<string, number>();
    for (const l of inputs.join('')) count.set(l, (count.get(l) ?? 0) + 1);
    output = [...count.keys()]
      .filter((l) => count.get(l) === 1)
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

function matmulShape(a: number[], b: number[]): number[] {
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

function reshapeShape(input: number[], target: number[], allowzero: boolean): number[] {
  const out = target.map((d, i) => (d === 0 && !allowzero ? input[i]! : d));
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

function splitSizes(node: NodeProto, cs: (Const | undefined)[], dim: number): number[] {
  const nOut = node.output?.length ?? 1;
  if (node.input?.[1]) return need(cs[1], 'split').data;
  const attr = attrInts(node, 'split');
  if (attr?.length) return attr;
  const num = attrInt(node, 'num_outputs') ?? nOut;
  const chunk = Math.ceil(dim / num);
  return Array.from({ length: num }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
}

function constantValue(node: NodeProto): Const {
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
  throw new UnknownOp('Constant without a supported value attribute');
}

/** Output types of one node from its input types (and the constant inputs). */
export function inferNode(
  node: NodeProto,
  ins: (ValueType | undefined)[],
  cs: (Const | undefined)[],
  _opset: number,
): ValueType[] {
  const op = node.opType ?? '';
  if (node.domain && node.domain !== 'ai.onnx') throw new UnknownOp(`domain ${node.domain}`);
  const x = ins[0];
  const X = (): ValueType => {
    if (!x) throw new Error('missing input 0');
    return x;
  };
  const same = (): ValueType => ({ elemType: X().elemType, shape: [...X().shape] });
  if (UNARY_SAME.has(op)) return [same()];
  if (BINARY.has(op)) return [{ elemType: X().elemType, shape: broadcastShapes(X().shape, ins[1]!.shape) }];
  if (VARIADIC.has(op)) {
    return [{ elemType: X().elemType, shape: broadcastShapes(...ins.filter((i) => i).map((i) => i!.shape)) }];
  }
  if (COMPARE.has(op)) return [{ elemType: DataType.BOOL, shape: broadcastShapes(X().shape, ins[1]!.shape) }];
  if (REDUCE.has(op)) {
    const rank = X().shape.length;
    const axes = reduceAxes(node, cs, rank) ?? X().shape.map((_, i) => i);
    const keep = attrInt(node, 'keepdims', 1);
    const shape: number[] = [];
    X().shape.forEach((d, i) => {
      if (!axes.includes(i)) shape.push(d);
      else if (keep) shape.push(1);
    });
    return [{ elemType: X().elemType, shape }];
  }
  switch (op) {
    case 'Dropout':
      return [same(), { elemType: DataType.BOOL, shape: [...X().shape] }];
    case 'IsNaN':
    case 'IsInf':
      return [{ elemType: DataType.BOOL, shape: [...X().shape] }];
    case 'Where':
      return [
        { elemType: ins[1]!.elemType, shape: broadcastShapes(X().shape, ins[1]!.shape, ins[2]!.shape) },
      ];
    case 'MatMul':
      return [{ elemType: X().elemType, shape: matmulShape(X().shape, ins[1]!.shape) }];
    case 'Gemm': {
      const a = X().shape;
      const b = ins[1]!.shape;
      const m = attrInt(node, 'transA', 0) ? a[1]! : a[0]!;
      const n = attrInt(node, 'transB', 0) ? b[0]! : b[1]!;
      return [{ elemType: X().elemType, shape: [m, n] }];
    }
    case 'Conv':
      return [{ elemType: X().elemType, shape: convSpec(node, X().shape, ins[1]!.shape).outShape }];
    case 'ConvTranspose': {
      const xs = X().shape;
      const w = ins[1]!.shape;
      const nsp = xs.length - 2;
      const kernel = attrInts(node, 'kernel_shape') ?? w.slice(2);
      const s = attrInts(node, 'strides') ?? kernel.map(() => 1);
      const d = attrInts(node, 'dilations') ?? kernel.map(() => 1);
      const p = attrInts(node, 'pads') ?? new Array(2 * nsp).fill(0);
      const op_ = attrInts(node, 'output_padding') ?? kernel.map(() => 0);
      const os = attrInts(node, 'output_shape');
      const spatial = os?.length
        ? os.slice(-nsp)
        : kernel.map(
            (k, i) => s[i]! * (xs[i + 2]! - 1) + op_[i]! + (k - 1) * d[i]! + 1 - p[i]! - p[i + nsp]!,
          );
      return [{ elemType: X().elemType, shape: [xs[0]!, w[1]! * attrInt(node, 'group', 1), ...spatial] }];
    }
    case 'LayerNormalization': {
      const rank = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', -1), rank);
      const stat = X().shape.map((d, i) => (i < axis ? d : 1));
      const st = attrInt(node, 'stash_type', 1) === 1 ? DataType.FLOAT : X().elemType;
      return [same(), { elemType: st, shape: stat }, { elemType: st, shape: [...stat] }];
    }
    case 'Transpose': {
      const perm = attrInts(node, 'perm') ?? X().shape.map((_, i) => X().shape.length - 1 - i);
      return [{ elemType: X().elemType, shape: perm.map((p) => X().shape[p]!) }];
    }
    case 'Reshape': {
      const target = node.input?.[1] ? need(cs[1], 'shape').data : (attrInts(node, 'shape') ?? []);
      return [
        {
          elemType: X().elemType,
          shape: reshapeShape(X().shape, target, attrInt(node, 'allowzero', 0) === 1),
        },
      ];
    }
    case 'Flatten': {
      const r = X().shape.length;
      const axis = attrInt(node, 'axis', 1);
      const a = axis < 0 ? axis + r : axis;
      return [
        {
          elemType: X().elemType,
          shape: [numElements(X().shape.slice(0, a)), numElements(X().shape.slice(a))],
        },
      ];
    }
    case 'Squeeze': {
      const r = X().shape.length;
      const axes = squeezeAxes(node, cs)?.map((a) => normAxis(a, r));
      return [
        {
          elemType: X().elemType,
          shape: X().shape.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)),
        },
      ];
    }
    case 'Unsqueeze': {
      const axes = squeezeAxes(node, cs) ?? [];
      const r = X().shape.length + axes.length;
      const norm = axes.map((a) => normAxis(a, r));
      const shape: number[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) shape.push(norm.includes(i) ? 1 : X().shape[j++]!);
      return [{ elemType: X().elemType, shape }];
    }
    case 'Concat': {
      const r = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      const shape = [...X().shape];
      shape[axis] = ins.reduce((s, t) => s + (t ? t.shape[axis]! : 0), 0);
      return [{ elemType: X().elemType, shape }];
    }
    case 'Split': {
      const r = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      return splitSizes(node, cs, X().shape[axis]!).map((s) => {
        const shape = [...X().shape];
        shape[axis] = s;
        return { elemType: X().elemType, shape };
      });
    }
    case 'Slice':
      return [{ elemType: X().elemType, shape: sliceSpec(node, cs, X().shape).outShape }];
    case 'Gather': {
      const r = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      const shape = [...X().shape.slice(0, axis), ...ins[1]!.shape, ...X().shape.slice(axis + 1)];
      return [{ elemType: X().elemType, shape }];
    }
    case 'GatherElements':
      return [{ elemType: X().elemType, shape: [...ins[1]!.shape] }];
    case 'GatherND': {
      const idx = ins[1]!.shape;
      const bd = attrInt(node, 'batch_dims', 0);
      const last = idx[idx.length - 1]!;
      return [{ elemType: X().elemType, shape: [...idx.slice(0, -1), ...X().shape.slice(bd + last)] }];
    }
    case 'Expand':
      return [{ elemType: X().elemType, shape: broadcastShapes(X().shape, need(cs[1], 'shape').data) }];
    case 'Tile': {
      const reps = need(cs[1], 'repeats').data;
      return [{ elemType: X().elemType, shape: X().shape.map((d, i) => d * reps[i]!) }];
    }
    case 'Pad': {
      const r = X().shape.length;
      const pads = node.input?.[1] ? need(cs[1], 'pads').data : (attrInts(node, 'pads') ?? []);
      const axes = node.input?.[3]
        ? need(cs[3], 'axes').data.map((a) => normAxis(a, r))
        : X().shape.map((_, i) => i);
      const shape = [...X().shape];
      axes.forEach((a, i) => {
        shape[a] = shape[a]! + pads[i]! + pads[i + axes.length]!;
      });
      return [{ elemType: X().elemType, shape }];
    }
    case 'Cast':
      return [{ elemType: attrInt(node, 'to', 0), shape: [...X().shape] }];
    case 'CastLike':
      return [{ elemType: ins[1]!.elemType, shape: [...X().shape] }];
    case 'Shape': {
      const r = X().shape.length;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = clamp(attrInt(node, 'start', 0));
      const end = clamp(attrInt(node, 'end', r));
      return [{ elemType: DataType.INT64, shape: [Math.max(0, end - start)] }];
    }
    case 'Size':
      return [{ elemType: DataType.INT64, shape: [] }];
    case 'ConstantOfShape': {
      const t = attrTensor(node, 'value');
      return [{ elemType: t?.dataType ?? DataType.FLOAT, shape: need(cs[0], 'shape').data }];
    }
    case 'Constant': {
      const t = attrTensor(node, 'value');
      if (t) return [{ elemType: t.dataType ?? 0, shape: [...(t.dims ?? [])] }];
      const c = constantValue(node);
      return [{ elemType: c.elemType, shape: c.shape }];
    }
    case 'Range': {
      const [s, l, d] = [
        need(cs[0], 'start').data[0]!,
        need(cs[1], 'limit').data[0]!,
        need(cs[2], 'delta').data[0]!,
      ];
      return [{ elemType: X().elemType, shape: [Math.max(Math.ceil((l - s) / d), 0)] }];
    }
    case 'ArgMax':
    case 'ArgMin': {
      const r = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      const keep = attrInt(node, 'keepdims', 1);
      const shape = X().shape.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d]));
      return [{ elemType: DataType.INT64, shape }];
    }
    case 'TopK': {
      const r = X().shape.length;
      const axis = normAxis(attrInt(node, 'axis', -1), r);
      const shape = [...X().shape];
      shape[axis] = need(cs[1], 'K').data[0]!;
      return [
        { elemType: X().elemType, shape },
        { elemType: DataType.INT64, shape: [...shape] },
      ];
    }
    case 'Resize': {
      const sizes = node.input?.[3] ? cs[3] : undefined;
      if (sizes) return [{ elemType: X().elemType, shape: sizes.data }];
      const scales = need(cs[2], 'scales').data;
      return [{ elemType: X().elemType, shape: X().shape.map((d, i) => Math.floor(d * scales[i]!)) }];
    }
    case 'Einsum': {
      const eq = parseEinsum(attrString(node, 'equation', ''), ins.length);
      const dims = new Map<string, number>();
      eq.inputs.forEach((spec, i) => {
        [...spec].forEach((l, k) => {
          const d = ins[i]!.shape[k]!;
          if (dims.has(l) && dims.get(l) !== d && d !== 1 && dims.get(l) !== 1) {
            throw new Error(`Einsum index ${l} has sizes ${dims.get(l)} and ${d}`);
          }
          if (!dims.has(l) || dims.get(l) === 1) dims.set(l, d);
        });
      });
      return [{ elemType: X().elemType, shape: [...eq.output].map((l) => dims.get(l)!) }];
    }
    default:
      throw new UnknownOp(`no shape rule for operator ${op}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Constant folding on small tensors

function strides(shape: number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1]!;
  return s;
}

/** For each output element of shape `out`, the flat index into a broadcast input of `shape`. */
function broadcastIndex(shape: number[], out: number[]): number[] {
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

function castValue(v: number, et: number): number {
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

const BIN: Record<string, (a: number, b: number, isInt: boolean) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b, i) => (i ? Math.trunc(a / b) : a / b),
  Pow: (a, b) => a ** b,
  Mod: (a, b) => a - b * Math.floor(a / b),
  Max: (a, b) => Math.max(a, b),
  Min: (a, b) => Math.min(a, b),
  Equal: (a, b) => +(a === b),
  Less: (a, b) => +(a < b),
  Greater: (a, b) => +(a > b),
  LessOrEqual: (a, b) => +(a <= b),
  GreaterOrEqual: (a, b) => +(a >= b),
  And: (a, b) => +(!!a && !!b),
  Or: (a, b) => +(!!a || !!b),
  Xor: (a, b) => +(!!a !== !!b),
};
const UN: Record<string, (a: number) => number> = {
  Identity: (a) => a,
  Neg: (a) => -a,
  Abs: (a) => Math.abs(a),
  Sqrt: (a) => Math.sqrt(a),
  Reciprocal: (a) => 1 / a,
  Floor: (a) => Math.floor(a),
  Ceil: (a) => Math.ceil(a),
  Exp: (a) => Math.exp(a),
  Log: (a) => Math.log(a),
  Sign: (a) => Math.sign(a),
  Not: (a) => +!a,
  Relu: (a) => Math.max(a, 0),
};

/** The folded value of a node whose inputs are constants, or undefined. */
function foldNode(
  node: NodeProto,
  ins: (ValueType | undefined)[],
  cs: (Const | undefined)[],
  out: ValueType,
  _opset: number,
): Const | undefined {
  const op = node.opType ?? '';
  const n = (node.input ?? []).length;
  const make = (data: number[]): Const => ({
    elemType: out.elemType,
    shape: out.shape,
    data: data.map((v) => castValue(v, out.elemType)),
  });
  if (op === 'Shape') {
    const r = ins[0]!.shape.length;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
    return make(ins[0]!.shape.slice(clamp(attrInt(node, 'start', 0)), clamp(attrInt(node, 'end', r))));
  }
  if (op === 'Size') return make([numElements(ins[0]!.shape)]);
  if (op === 'Constant') return constantValue(node);
  if (op === 'ConstantOfShape') {
    const t = attrTensor(node, 'value');
    const v = t ? tensorToNumbers(t)[0]! : 0;
    return make(new Array(numElements(out.shape)).fill(v));
  }
  // everything below needs its (non-optional) inputs constant
  for (let i = 0; i < n; i++) if (node.input![i] && !cs[i]) return undefined;
  const c0 = cs[0]!;
  if (Object.hasOwn(UN, op)) return make(c0.data.map(UN[op]!));
  if (Object.hasOwn(BIN, op)) {
    const c1 = cs[1]!;
    const ia = broadcastIndex(c0.shape, out.shape);
    const ib = broadcastIndex(c1.shape, out.shape);
    const f = BIN[op]!;
    const intIn = !isFloatType(c0.elemType);
    return make(ia.map((a, i) => f(c0.data[a]!, c1.data[ib[i]!]!, intIn)));
  }
  switch (op) {
    case 'Cast':
    case 'CastLike':
    case 'Reshape':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Flatten':
      return make(c0.data);
    case 'Where': {
      const [c1, c2] = [cs[1]!, cs[2]!];
      const ic = broadcastIndex(c0.shape, out.shape);
      const ia = broadcastIndex(c1.shape, out.shape);
      const ib = broadcastIndex(c2.shape, out.shape);
      return make(ic.map((c, i) => (c0.data[c] ? c1.data[ia[i]!]! : c2.data[ib[i]!]!)));
    }
    case 'Expand':
      return make(broadcastIndex(c0.shape, out.shape).map((i) => c0.data[i]!));
    case 'Range': {
      const [s, d] = [c0.data[0]!, cs[2]!.data[0]!];
      return make(Array.from({ length: out.shape[0]! }, (_, i) => s + i * d));
    }
    case 'Concat': {
      const r = out.shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      const outer = numElements(out.shape.slice(0, axis));
      const res: number[] = [];
      for (let o = 0; o < outer; o++) {
        for (const c of cs) {
          if (!c) continue;
          const inner = numElements(c.shape.slice(axis));
          for (let k = 0; k < inner; k++) res.push(c.data[o * inner + k]!);
        }
      }
      return make(res);
    }
    case 'Gather': {
      const r = c0.shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r);
      const idx = cs[1]!.data.map((v) => (v < 0 ? v + c0.shape[axis]! : v));
      const outer = numElements(c0.shape.slice(0, axis));
      const inner = numElements(c0.shape.slice(axis + 1));
      const res: number[] = [];
      for (let o = 0; o < outer; o++) {
        for (const j of idx)
          for (let k = 0; k < inner; k++) res.push(c0.data[(o * c0.shape[axis]! + j) * inner + k]!);
      }
      return make(res);
    }
    case 'Slice': {
      const spec = sliceSpec(node, cs, c0.shape);
      const st = strides(c0.shape);
      const os = strides(spec.outShape);
      const total = numElements(spec.outShape);
      const res: number[] = [];
      for (let i = 0; i < total; i++) {
        let rem = i;
        let idx = 0;
        for (let a = 0; a < os.length; a++) {
          const c = Math.floor(rem / os[a]!);
          rem -= c * os[a]!;
          idx += (spec.starts[a]! + c * spec.steps[a]!) * st[a]!;
        }
        res.push(c0.data[idx]!);
      }
      return make(res);
    }
    case 'Transpose': {
      const perm = attrInts(node, 'perm') ?? c0.shape.map((_, i) => c0.shape.length - 1 - i);
      const st = strides(c0.shape);
      const os = strides(out.shape);
      const res: number[] = [];
      for (let i = 0; i < numElements(out.shape); i++) {
        let rem = i;
        let idx = 0;
        for (let a = 0; a < os.length; a++) {
          const c = Math.floor(rem / os[a]!);
          rem -= c * os[a]!;
          idx += c * st[perm[a]!]!;
        }
        res.push(c0.data[idx]!);
      }
      return make(res);
    }
    case 'ReduceProd':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceMean': {
      const axes = reduceAxes(node, cs, c0.shape.length) ?? c0.shape.map((_, i) => i);
      const keepShape = c0.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const ks = strides(keepShape);
      const st = strides(c0.shape);
      const init =
        op === 'ReduceProd' ? 1 : op === 'ReduceMax' ? -Infinity : op === 'ReduceMin' ? Infinity : 0;
      const acc = new Array(numElements(keepShape)).fill(init);
      for (let i = 0; i < c0.data.length; i++) {
        let rem = i;
        let o = 0;
        for (let a = 0; a < st.length; a++) {
          const c = Math.floor(rem / st[a]!);
          rem -= c * st[a]!;
          if (!axes.includes(a)) o += c * ks[a]!;
        }
        const v = c0.data[i]!;
        acc[o] =
          op === 'ReduceProd'
            ? acc[o] * v
            : op === 'ReduceMax'
              ? Math.max(acc[o], v)
              : op === 'ReduceMin'
                ? Math.min(acc[o], v)
                : acc[o] + v;
      }
      const count = c0.data.length / Math.max(1, acc.length);
      return make(op === 'ReduceMean' ? acc.map((v) => v / count) : acc);
    }
    case 'Tile': {
      const st = strides(c0.shape);
      const os = strides(out.shape);
      const res: number[] = [];
      for (let i = 0; i < numElements(out.shape); i++) {
        let rem = i;
        let idx = 0;
        for (let a = 0; a < os.length; a++) {
          const c = Math.floor(rem / os[a]!);
          rem -= c * os[a]!;
          idx += (c % c0.shape[a]!) * st[a]!;
        }
        res.push(c0.data[idx]!);
      }
      return make(res);
    }
    default:
      return undefined;
  }
}
