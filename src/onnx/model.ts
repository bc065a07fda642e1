/**
 * ONNX model files: decode/encode through the protobufjs schema, external data files for models
 * over 2 GB (validated and read lazily, see external-data.ts), and tensor <-> typed-array helpers.
 *
 * @example
 *   const model = loadModel('onnx/fixtures/toy-denoiser.onnx');
 *   saveModel(model, 'out/copy.onnx', { externalDataThreshold: 1024 });
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { atomicWrite, type WritePart } from '../shards/atomic.js';
import {
  ELEM_SIZE,
  ExternalDataResolver,
  externalRef,
  readExternal,
  tensorByteSize,
} from './external-data.js';
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
 * Read a model file and validate every external-data tensor (location inside the model's folder,
 * offset and length within the file, length matching the dims). Tensors of 1 KB or more are not
 * read: their values are read by offset when asked for (tensorToArray) and copied range by range
 * when saved, so a model with 5 GB of external data costs little more than its .onnx in memory.
 *
 * @example
 *   const model = loadModel('models/wan-1.3b.onnx'); // checks wan-1.3b.onnx.data beside it
 */
export function loadModel(path: string): ModelProto {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new InputError(path, `cannot read model (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const model = decodeModel(bytes, path);
  const resolver = new ExternalDataResolver(path);
  for (const t of allTensors(model)) {
    if (t.dataLocation === 1) {
      // Small tensors (shape constants, scalars) are read now: graph analysis needs their values,
      // and so do onnxruntime's optimisers in the models vggrpo derives (they skip external ones).
      if (resolver.resolve(t).length < INLINE_BELOW) {
        t.rawData = readExternal(t);
        t.dataLocation = undefined;
        t.externalData = undefined;
      }
    } else if (t.dataLocation !== undefined && t.dataLocation !== 0)
      throw new InputError(path, `tensor '${t.name ?? ''}': unknown data_location ${t.dataLocation}`);
  }
  return model;
}

/** External tensors smaller than this are read at load (exporters keep them inline anyway: torch.onnx's threshold is 1 KB). */
const INLINE_BELOW = 1024;

export interface SaveOptions {
  /** Tensors with at least this many bytes go to the external data file. Default: only when the
   * model would exceed protobuf's 2 GB limit, then 1024. */
  externalDataThreshold?: number;
  /** External data file name, relative to the model's folder. Default `<model file>.data`. */
  externalDataFile?: string;
  /** Keep tensors that are already in an external file where they are: this returns the name
   * (in the model's folder) under which that file is reachable, e.g. a hard link. Offsets stay. */
  keepExternal?: (file: string) => string;
}

const PROTO_LIMIT = 2_000_000_000;

/** Byte size of a tensor's data, wherever it lies. */
function dataBytes(t: TensorProto): number {
  return externalRef(t)?.length ?? t.rawData?.length ?? 0;
}

/**
 * Write a model atomically (temp file, fsync, rename), moving large tensors into an external
 * data file when asked or when the model would not fit protobuf's 2 GB limit. Tensors loaded from
 * external data are copied range by range, never whole. The caller's model is not modified.
 *
 * @example
 *   saveModel(model, 'out/grad.onnx');
 *   saveModel(model, 'out/big.onnx', { externalDataThreshold: 1024 });
 */
export function saveModel(model: ModelProto, path: string, opts: SaveOptions = {}): void {
  let threshold = opts.externalDataThreshold;
  if (threshold === undefined) {
    let total = 0;
    for (const t of allTensors(model)) total += dataBytes(t);
    if (total > PROTO_LIMIT * 0.9) threshold = 1024;
  }
  const limit = threshold ?? Number.POSITIVE_INFINITY;
  const dataName = opts.externalDataFile ?? `${basename(path)}.data`;
  const parts: WritePart[] = [];
  let offset = 0;
  const copy = mapTensors(model, (t) => {
    const ref = externalRef(t);
    if (ref && opts.keepExternal) return external(t, opts.keepExternal(ref.file), ref.offset, ref.length);
    const length = ref ? ref.length : (t.rawData ?? typedFieldsToRaw(t))?.length;
    if (length === undefined || length < limit) {
      // Small enough to live in the model itself.
      return ref ? { ...t, dataLocation: undefined, externalData: undefined, rawData: readExternal(t) } : t;
    }
    const align = length >= 1 << 20 ? 4096 : 16;
    const pad = (align - (offset % align)) % align;
    if (pad) parts.push(new Uint8Array(pad));
    offset += pad;
    parts.push(ref ?? (t.rawData ?? typedFieldsToRaw(t))!);
    const entry = external(t, dataName, offset, length);
    offset += length;
    return entry;
  });
  if (parts.length) atomicWrite(join(dirname(path), dataName), parts);
  atomicWrite(path, [encodeModel(copy)]);
}

/** `t` with its data in `location` at `offset` (and no data of its own). */
function external(t: TensorProto, location: string, offset: number, length: number): TensorProto {
  return {
    ...t,
    rawData: undefined,
    floatData: undefined,
    doubleData: undefined,
    int32Data: undefined,
    int64Data: undefined,
    uint64Data: undefined,
    dataLocation: 1,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
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

export function numElements(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
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
  const bytes = tensorByteSize(t, 'model');
  const n = bytes / (ELEM_SIZE[dt] ?? 1);
  // External data is read now, at its offset, into a buffer of its own.
  if (t.dataLocation === 1) return new C(readExternal(t).buffer as ArrayBuffer);
  if (t.rawData && t.rawData.length > 0) {
    const raw = t.rawData;
    if (raw.length !== bytes)
      throw new InputError('model', `tensor '${t.name ?? ''}': ${raw.length} bytes of raw data for ${bytes}`);
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
