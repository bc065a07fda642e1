/**
 * ONNX model files: decode/encode through the protobufjs schema, external data files for models
 * over 2 GB, and tensor <-> typed-array helpers.
 *
 * @example
 *   const model = loadModel('onnx/fixtures/toy-denoiser.onnx');
 *   saveModel(model, 'out/copy.onnx', { externalDataThreshold: 1024 });
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { InputError } from '../errors.js';
import { atomicWrite } from '../shards/atomic.js';
import { DataType, type ModelProto, ModelProtoType, type TensorProto, TO_OBJECT } from './proto.js';

export type { ModelProto } from './proto.js';

/**
 * Decode ONNX bytes into plain proto objects. Byte fields are views into `bytes`.
 *
 * @example
 *   const m = decodeModel(readFileSync('a.onnx'));
 */
export function decodeModel(bytes: Uint8Array, where = 'model'): ModelProto {
  try {
    return ModelProtoType.toObject(ModelProtoType.decode(bytes), TO_OBJECT) as ModelProto;
  } catch (err) {
    throw new InputError(where, `not a valid ONNX model (${(err as Error).message})`);
  }
}

/**
 * Encode plain proto objects to ONNX bytes (no external data handling; see saveModel).
 *
 * @example
 *   const bytes = encodeModel(model);
 */
export function encodeModel(model: ModelProto): Uint8Array {
  return ModelProtoType.encode(ModelProtoType.fromObject(model)).finish();
}

/**
 * Read a model file and pull every external-data tensor into `rawData`, so the model in memory
 * is self-contained (a 1.3B-parameter model then needs its weights' size in RAM).
 *
 * @example
 *   const model = loadModel('models/wan-1.3b.onnx'); // reads wan-1.3b.onnx.data beside it
 */
export function loadModel(path: string): ModelProto {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new InputError(path, `cannot read model (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const model = decodeModel(bytes, path);
  const dir = dirname(path);
  for (const t of allTensors(model)) {
    if (t.dataLocation === 1) loadExternal(t, dir, path);
  }
  return model;
}

export interface SaveOptions {
  /** Tensors with at least this many bytes go to the external data file. Default: only when the
   * model would exceed protobuf's 2 GB limit, then 1024. */
  externalDataThreshold?: number;
  /** External data file name, relative to the model's folder. Default `<model file>.data`. */
  externalDataFile?: string;
}

const PROTO_LIMIT = 2_000_000_000;

/**
 * Write a model atomically (temp file, fsync, rename), moving large tensors into an external
 * data file when asked or when the model would not fit protobuf's 2 GB limit. The caller's
 * model is not modified.
 *
 * @example
 *   saveModel(model, 'out/grad.onnx');
 *   saveModel(model, 'out/big.onnx', { externalDataThreshold: 1024 });
 */
export function saveModel(model: ModelProto, path: string, opts: SaveOptions = {}): void {
  let threshold = opts.externalDataThreshold;
  if (threshold === undefined) {
    let total = 0;
    for (const t of allTensors(model)) total += t.rawData?.length ?? 0;
    if (total > PROTO_LIMIT * 0.9) threshold = 1024;
  }
  if (threshold === undefined) {
    atomicWrite(path, [encodeModel(model)]);
    return;
  }
  const dataName = opts.externalDataFile ?? `${basename(path)}.data`;
  const parts: Uint8Array[] = [];
  let offset = 0;
  const copy = mapTensors(model, (t) => {
    const raw = t.rawData ?? typedFieldsToRaw(t);
    if (!raw || raw.length < threshold!) return t;
    const align = raw.length >= 1 << 20 ? 4096 : 16;
    const pad = (align - (offset % align)) % align;
    if (pad) parts.push(new Uint8Array(pad));
    offset += pad;
    parts.push(raw);
    const entry: TensorProto = {
      ...t,
      rawData: undefined,
      floatData: undefined,
      doubleData: undefined,
      int32Data: undefined,
      int64Data: undefined,
      uint64Data: undefined,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: dataName },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ],
    };
    offset += raw.length;
    return entry;
  });
  atomicWrite(join(dirname(path), dataName), parts);
  atomicWrite(path, [encodeModel(copy)]);
}

/** Every TensorProto of the model: initializers, Constant attributes, subgraphs, functions. */
export function* allTensors(model: ModelProto): Generator<TensorProto> {
  const seen: TensorProto[] = [];
  mapTensors(model, (t) => {
    seen.push(t);
    return t;
  });
  yield* seen;
}

/** A copy of the model's object tree down to its tensors, with `fn` applied to each tensor. */
function mapTensors(model: ModelProto, fn: (t: TensorProto) => TensorProto): ModelProto {
  const graph = (g: any): any => {
    if (!g) return g;
    return {
      ...g,
      initializer: g.initializer?.map(fn),
      node: g.node?.map(node),
      sparseInitializer: g.sparseInitializer?.map((s: any) => ({
        ...s,
        values: s.values && fn(s.values),
        indices: s.indices && fn(s.indices),
      })),
    };
  };
  const node = (n: any): any =>
    n.attribute?.length
      ? {
          ...n,
          attribute: n.attribute.map((a: any) => ({
            ...a,
            t: a.t && fn(a.t),
            tensors: a.tensors?.map(fn),
            g: graph(a.g),
            graphs: a.graphs?.map(graph),
          })),
        }
      : n;
  return {
    ...model,
    graph: graph(model.graph),
    functions: model.functions?.map((fp) => ({ ...fp, node: fp.node?.map(node) })),
    trainingInfo: model.trainingInfo?.map((ti) => ({
      ...ti,
      initialization: graph(ti.initialization),
      algorithm: graph(ti.algorithm),
    })),
  };
}

function loadExternal(t: TensorProto, dir: string, where: string): void {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location || isAbsolute(location) || normalize(location).startsWith('..')) {
    throw new InputError(where, `tensor '${t.name}': bad external data location '${location ?? ''}'`);
  }
  const file = join(dir, location);
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : numElements(t.dims ?? []) * elemSize(t);
  const buf = Buffer.allocUnsafe(length);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    throw new InputError(where, `tensor '${t.name}': cannot open external data '${file}'`);
  }
  try {
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new InputError(where, `tensor '${t.name}': external data '${file}' is truncated`);
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  t.rawData = buf;
  t.externalData = undefined;
  t.dataLocation = undefined;
}

export function numElements(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

const ELEM_SIZE: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.BFLOAT16]: 2,
};

function elemSize(t: TensorProto): number {
  const s = ELEM_SIZE[t.dataType ?? 0];
  if (!s) throw new InputError('model', `tensor '${t.name}': unsupported data type ${t.dataType}`);
  return s;
}

/** Typed array constructors by ONNX element type, for the numeric types we compute with. */
export type TensorArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

function ctorOf(dataType: number): { new (n: number): TensorArray; new (b: ArrayBuffer): TensorArray } {
  switch (dataType) {
    case DataType.FLOAT:
      return Float32Array as any;
    case DataType.DOUBLE:
      return Float64Array as any;
    case DataType.INT64:
      return BigInt64Array as any;
    case DataType.UINT64:
      return BigUint64Array as any;
    case DataType.INT32:
      return Int32Array as any;
    case DataType.UINT32:
      return Uint32Array as any;
    case DataType.INT16:
      return Int16Array as any;
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return Uint16Array as any;
    case DataType.INT8:
      return Int8Array as any;
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array as any;
    default:
      throw new InputError('model', `unsupported tensor data type ${dataType}`);
  }
}

/**
 * The tensor's values as a typed array (a copy; float16/bfloat16 as raw Uint16 bits, bool as Uint8).
 *
 * @example
 *   const w = tensorToArray(init) as Float32Array;
 */
export function tensorToArray(t: TensorProto): TensorArray {
  const dt = t.dataType ?? 0;
  const C = ctorOf(dt);
  const n = numElements(t.dims ?? []);
  if (t.dataLocation === 1) throw new InputError('model', `tensor '${t.name}': external data not loaded`);
  if (t.rawData && t.rawData.length > 0) {
    const raw = t.rawData;
    const copy = new Uint8Array(raw.length);
    copy.set(raw);
    return new C(copy.buffer);
  }
  const out = new C(n);
  const src: ArrayLike<number> | undefined =
    dt === DataType.FLOAT
      ? t.floatData
      : dt === DataType.DOUBLE
        ? t.doubleData
        : dt === DataType.INT64
          ? t.int64Data
          : dt === DataType.UINT64 || dt === DataType.UINT32
            ? t.uint64Data
            : t.int32Data;
  if (!src || src.length === 0) return out;
  if (out instanceof BigInt64Array) {
    // int64 fields decode to numbers; the ±2^63 sentinels must not wrap around
    for (let i = 0; i < n; i++) {
      const v = src[i] ?? 0;
      out[i] =
        v >= 2 ** 63 ? 9223372036854775807n : v <= -(2 ** 63) ? -9223372036854775808n : BigInt(Math.trunc(v));
    }
  } else if (out instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(src[i] ?? 0));
  } else {
    for (let i = 0; i < n; i++) (out as Float64Array)[i] = src[i] ?? 0;
  }
  return out;
}

/** The tensor's values as plain numbers (int64 beyond 2^53 lose precision). */
export function tensorToNumbers(t: TensorProto): number[] {
  const a = tensorToArray(t);
  return Array.from(a as ArrayLike<number | bigint>, (v) => Number(v));
}

const DTYPE_OF_ARRAY = new Map<unknown, number>([
  [Float32Array, DataType.FLOAT],
  [Float64Array, DataType.DOUBLE],
  [BigInt64Array, DataType.INT64],
  [BigUint64Array, DataType.UINT64],
  [Int32Array, DataType.INT32],
  [Uint32Array, DataType.UINT32],
  [Int16Array, DataType.INT16],
  [Int8Array, DataType.INT8],
  [Uint8Array, DataType.UINT8],
]);

/**
 * A TensorProto holding `data` as raw_data. The element type follows the array unless given
 * (pass DataType.BOOL for a Uint8Array of 0/1, DataType.FLOAT16 for Uint16 bits).
 *
 * @example
 *   const w = makeTensor('w', [3, 4], new Float32Array(12));
 */
export function makeTensor(name: string, dims: number[], data: TensorArray, dataType?: number): TensorProto {
  const dt = dataType ?? DTYPE_OF_ARRAY.get(data.constructor);
  if (dt === undefined) throw new Error(`makeTensor: no ONNX type for ${data.constructor.name}`);
  if (data.length !== numElements(dims)) {
    throw new Error(`makeTensor '${name}': ${data.length} values for dims [${dims.join(', ')}]`);
  }
  return {
    name,
    dims: [...dims],
    dataType: dt,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

function typedFieldsToRaw(t: TensorProto): Uint8Array | undefined {
  const dt = t.dataType ?? 0;
  const has =
    (t.floatData?.length ?? 0) +
    (t.doubleData?.length ?? 0) +
    (t.int64Data?.length ?? 0) +
    (t.int32Data?.length ?? 0) +
    (t.uint64Data?.length ?? 0);
  if (!has || dt === DataType.STRING) return undefined;
  const a = tensorToArray(t);
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
