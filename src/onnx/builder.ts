/**
 * A small builder for writing ONNX graphs in code: fixture models, the LoRA branches and the
 * gradient graphs. Ops return the names of their outputs, so graphs read like the maths.
 *
 * @example
 *   const g = new GraphBuilder('mlp', 18);
 *   const x = g.input('x', 'float32', [2, 3]);
 *   const w = g.init('w', new Float32Array(12), [3, 4]);
 *   const y = g.op('Relu', [g.op('MatMul', [x, w])]);
 *   g.output(y, 'y');
 *   const model = g.toModel();
 */
import { floatTensor } from './half.js';
import { makeTensor, type TensorArray } from './model.js';
import {
  type AttributeProto,
  AttributeType,
  DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

export type DTypeName =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int8'
  | 'uint8'
  | 'bool';

export const ELEM_TYPE: Record<DTypeName, number> = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  float16: DataType.FLOAT16,
  bfloat16: DataType.BFLOAT16,
  int64: DataType.INT64,
  int32: DataType.INT32,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  bool: DataType.BOOL,
};

/** A float attribute written explicitly (`{ alpha: float(1) }`), for integral float values. */
export interface FloatAttr {
  readonly float: number;
}
export const float = (v: number): FloatAttr => ({ float: v });

export type AttrValue = number | number[] | string | FloatAttr | TensorProto | GraphProto | AttributeProto;

/** Attribute names that are floats in the standard ops, so `{ alpha: 1 }` encodes as FLOAT. */
const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'epsilon',
  'gamma',
  'lambd',
  'bias',
  'ratio',
  'scale',
  'momentum',
  'spatial_scale',
  'extrapolation_value',
  'cubic_coeff_a',
  'value_float',
  'value_floats',
]);

/** Encode one attribute the way the standard ops expect it. */
export function attr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') {
    return FLOAT_ATTRS.has(name) || !Number.isInteger(v)
      ? { name, type: AttributeType.FLOAT, f: v }
      : { name, type: AttributeType.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    return FLOAT_ATTRS.has(name) || v.some((x) => !Number.isInteger(x))
      ? { name, type: AttributeType.FLOATS, floats: v }
      : { name, type: AttributeType.INTS, ints: v };
  }
  if ('float' in v) return { name, type: AttributeType.FLOAT, f: v.float };
  if ('dataType' in v || 'rawData' in v || 'dims' in v) return { name, type: AttributeType.TENSOR, t: v };
  if ('node' in v) return { name, type: AttributeType.GRAPH, g: v as GraphProto };
  return { ...(v as AttributeProto), name };
}

export function valueInfo(
  name: string,
  elemType: number,
  shape?: readonly (number | string)[],
): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        ...(shape
          ? { shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } }
          : {}),
      },
    },
  };
}

export interface OpOptions {
  /** Output names, or how many outputs to create. */
  outputs?: number | string[];
  name?: string;
  domain?: string;
  /** Allow output names that already exist (when rewiring: the old producer was renamed). */
  rewire?: boolean;
}

/**
 * Appends nodes to a graph (a new one, or an existing model's via `GraphBuilder.extend`).
 * Every generated name is unique within the graph.
 */
export class GraphBuilder {
  readonly graph: GraphProto;
  readonly opset: number;
  private readonly used = new Set<string>();
  private counter = 0;
  private model?: ModelProto;

  constructor(name: string, opset = 18, graph?: GraphProto) {
    this.opset = opset;
    this.graph = graph ?? { name, node: [], initializer: [], input: [], output: [], valueInfo: [] };
    const g = this.graph;
    g.node ??= [];
    g.initializer ??= [];
    g.input ??= [];
    g.output ??= [];
    for (const v of [...g.input, ...g.output, ...(g.valueInfo ?? [])]) this.used.add(v.name ?? '');
    for (const t of g.initializer) this.used.add(t.name ?? '');
    for (const n of g.node) {
      for (const o of n.output ?? []) this.used.add(o);
      if (n.name) this.used.add(n.name);
    }
  }

  /** A builder that appends to `model`'s main graph in place. */
  static extend(model: ModelProto): GraphBuilder {
    const opset = model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 18;
    model.graph ??= {};
    const b = new GraphBuilder(model.graph.name ?? 'main', opset, model.graph);
    b.model = model;
    return b;
  }

  /** A name not yet used in the graph, starting with `prefix`. */
  fresh(prefix: string): string {
    let name = prefix;
    while (this.used.has(name)) name = `${prefix}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  has(name: string): boolean {
    return this.used.has(name);
  }

  /** Declare a graph input. Dims may be numbers or symbolic names. */
  input(name: string, dtype: DTypeName | number, shape: readonly (number | string)[]): string {
    this.claim(name);
    this.graph.input!.push(valueInfo(name, typeof dtype === 'number' ? dtype : ELEM_TYPE[dtype], shape));
    return name;
  }

  /**
   * Add an initializer. `data` is a typed array or its constructor (then filled with zeros, or
   * by `fill(i)`).
   *
   * @example
   *   g.init('w', Float32Array, [3, 4], (i) => Math.sin(i));
   */
  init(
    name: string,
    data: TensorArray | (new (n: number) => TensorArray),
    shape: readonly number[],
    fill?: (i: number) => number,
    dataType?: number,
  ): string {
    this.claim(name);
    let arr: TensorArray;
    if (typeof data === 'function') {
      let n = 1;
      for (const d of shape) n *= d;
      arr = new data(n);
      if (fill) {
        for (let i = 0; i < n; i++) {
          (arr as any)[i] = arr instanceof BigInt64Array ? BigInt(Math.trunc(fill(i))) : fill(i);
        }
      }
    } else arr = data;
    this.graph.initializer!.push(makeTensor(name, [...shape], arr, dataType));
    return name;
  }

  /** Add an existing TensorProto as an initializer under a fresh name derived from `prefix`. */
  initTensor(prefix: string, t: TensorProto): string {
    const name = this.fresh(prefix);
    this.graph.initializer!.push({ ...t, name });
    return name;
  }

  /**
   * A constant initializer: float values in `elemType` (FLOAT by default), or int64 with
   * `'int64'`. A scalar when `shape` is omitted and one value is given, else 1-D.
   *
   * @example
   *   const half = g.const([0.5]);          // float32 scalar
   *   const axes = g.const([0, 2], 'int64'); // int64 [2]
   *   const eps = g.const([1e-5], 'float16'); // float16 scalar (values rounded to nearest)
   */
  const(values: readonly number[], dtype: DTypeName | number = 'float32', shape?: readonly number[]): string {
    const et = typeof dtype === 'number' ? dtype : ELEM_TYPE[dtype];
    const dims = shape ? [...shape] : values.length === 1 ? [] : [values.length];
    let arr: TensorArray;
    if (et === DataType.INT64) arr = BigInt64Array.from(values, (v) => BigInt(v));
    else if (et === DataType.DOUBLE) arr = Float64Array.from(values);
    else if (et === DataType.INT32) arr = Int32Array.from(values);
    else if (et === DataType.BOOL || et === DataType.UINT8) arr = Uint8Array.from(values);
    else if (et === DataType.FLOAT) arr = Float32Array.from(values);
    else if (et === DataType.FLOAT16 || et === DataType.BFLOAT16) {
      const name = this.fresh('const');
      this.graph.initializer!.push(floatTensor(name, dims, values, et));
      return name;
    } else throw new Error(`GraphBuilder.const: unsupported element type ${et}`);
    const name = this.fresh('const');
    this.graph.initializer!.push(makeTensor(name, dims, arr, et));
    return name;
  }

  /**
   * A 1-D int64 constant (axes, shapes, starts/ends), also for a single value.
   *
   * @example
   *   g.op('Unsqueeze', [x, g.ints([0])]);
   */
  ints(values: readonly number[]): string {
    return this.const(values, 'int64', [values.length]);
  }

  /** Append a single-output node; returns the output's name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    opts: OpOptions = {},
  ): string {
    return this.opN(opType, inputs, attrs, opts)[0]!;
  }

  /**
   * Append a node with several outputs; returns their names.
   *
   * @example
   *   const [a, b] = g.opN('Split', [x, g.const([2, 2], 'int64')], { axis: 1 }, { outputs: 2 });
   */
  opN(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    opts: OpOptions = {},
  ): string[] {
    const base = opts.name ?? this.fresh(opType);
    if (opts.name) this.claim(opts.name);
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs.map((o) => {
          if (o !== '' && !opts.rewire) this.claim(o);
          return o;
        })
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${base}_out${i}`));
    const node: NodeProto = {
      name: base,
      opType,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => attr(k, v)),
    };
    if (opts.domain) node.domain = opts.domain;
    this.graph.node!.push(node);
    return outs;
  }

  /**
   * Declare `value` a graph output named `name` (renaming the producing node's output when it
   * can, otherwise through an Identity). Types are optional: onnxruntime infers them.
   */
  output(
    value: string,
    name = value,
    dtype?: DTypeName | number,
    shape?: readonly (number | string)[],
  ): string {
    if (name !== value) {
      const producer = this.graph.node!.find((n) => n.output?.includes(value));
      const isGraphOutput = this.graph.output!.some((o) => o.name === value);
      const consumed = this.graph.node!.some((n) => n.input?.includes(value));
      this.claim(name);
      if (producer && !isGraphOutput && !consumed) {
        producer.output = producer.output!.map((o) => (o === value ? name : o));
      } else {
        this.graph.node!.push({
          name: this.fresh('Identity'),
          opType: 'Identity',
          input: [value],
          output: [name],
        });
      }
    }
    const et = dtype === undefined ? undefined : typeof dtype === 'number' ? dtype : ELEM_TYPE[dtype];
    this.graph.output!.push(et === undefined ? { name } : valueInfo(name, et, shape));
    return name;
  }

  /** The model around the graph (the extended model itself for `GraphBuilder.extend`). */
  toModel(producer = 'vggrpo'): ModelProto {
    if (this.model) return this.model;
    return {
      irVersion: this.opset >= 21 ? 10 : this.opset >= 19 ? 9 : 8,
      opsetImport: [{ domain: '', version: this.opset }],
      producerName: producer,
      graph: this.graph,
    };
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`GraphBuilder: name '${name}' already used`);
    this.used.add(name);
  }
}
