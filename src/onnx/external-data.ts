/**
 * External data of ONNX models: each tensor's `location`/`offset`/`length` fields resolved and
 * validated before anything is allocated, and tensors read by offset only when their values are
 * needed (a 5 GB denoiser's .onnx is a few MB; its weights stay on disk until onnxruntime maps them).
 *
 * A validated tensor keeps `data_location = EXTERNAL` in memory with its `location` rewritten to
 * the data file's real path and `offset`/`length` normalised. Such absolute locations are only
 * honoured for files this module validated (the `validated` registry), so a model decoded from
 * untrusted bytes cannot make `readExternal` open an arbitrary path.
 *
 * The rule matches onnxruntime 1.30's: the data file, with symlinks followed, must lie inside
 * the model's folder.
 *
 * @example
 *   const resolver = new ExternalDataResolver('models/wan.onnx');
 *   for (const t of allTensors(model)) if (t.dataLocation === 1) resolver.resolve(t);
 *   const w = readExternal(t); // bytes of one tensor, read at its offset
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, sep } from 'node:path';
import { InputError } from '../errors.js';
import { DataType, type TensorProto } from './proto.js';

/** Bytes per element of the ONNX types vggrpo handles. */
export const ELEM_SIZE: Readonly<Record<number, number>> = {
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

/** The largest tensor one buffer can hold (Node 20: 4 GiB); larger ones are left to onnxruntime. */
const MAX_TENSOR_BYTES = 2 ** 32;

/** Where one tensor's bytes lie. `offset + length` never exceeds the file (checked). */
export interface ExternalRef {
  /** Real path of the data file (symlinks resolved). */
  file: string;
  offset: number;
  length: number;
}

/** Data files validated in this process: real path → the model that named it (for messages). */
const validated = new Map<string, string>();

/**
 * The tensor's byte size from its dims and type, refusing negative, fractional or absurd dims
 * before anything is allocated.
 *
 * @example
 *   tensorByteSize({ name: 'w', dims: [4, 4], dataType: 1 }, 'm.onnx'); // 64
 */
export function tensorByteSize(t: TensorProto, where: string): number {
  const size = ELEM_SIZE[t.dataType ?? 0];
  if (!size) throw new InputError(where, `tensor '${t.name ?? ''}': unsupported data type ${t.dataType}`);
  let n = size;
  for (const d of t.dims ?? []) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new InputError(where, `tensor '${t.name ?? ''}': bad dim ${d} in [${(t.dims ?? []).join(', ')}]`);
    n *= d;
  }
  if (!Number.isSafeInteger(n))
    throw new InputError(
      where,
      `tensor '${t.name ?? ''}': dims [${(t.dims ?? []).join(', ')}] are absurdly large`,
    );
  return n;
}

/** A non-negative decimal integer field (onnxruntime parses these with stoll). */
function intField(value: string, key: string, t: TensorProto, where: string): number {
  const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new InputError(
      where,
      `tensor '${t.name ?? ''}': external data ${key} '${value}' is not a non-negative integer`,
    );
  return n;
}

/** Resolves and validates the external data of one model file's tensors. */
export class ExternalDataResolver {
  private readonly dir: string;
  private dirReal?: string;

  constructor(private readonly model: string) {
    this.dir = dirname(model);
  }

  /**
   * Validate `t`'s external-data fields and rewrite them to the normalised absolute form.
   * Every fault is an InputError naming the model and the tensor.
   */
  resolve(t: TensorProto): ExternalRef {
    const where = this.model;
    const name = t.name ?? '';
    const fault = (msg: string) => new InputError(where, `tensor '${name}': ${msg}`);
    const expected = tensorByteSize(t, where);
    if (t.dataType === DataType.STRING) throw fault('string tensors cannot have external data');
    const kv = new Map<string, string>();
    for (const e of t.externalData ?? []) {
      const key = e.key ?? '';
      if (!['location', 'offset', 'length', 'checksum'].includes(key))
        throw fault(`unknown external data key '${key}'`);
      if (kv.has(key)) throw fault(`external data key '${key}' given twice`);
      kv.set(key, e.value ?? '');
    }
    // `checksum` is optional in the spec and ignored by onnxruntime; vggrpo ignores it too.
    const location = kv.get('location');
    if (!location) throw fault('external data has no location');
    if (location.includes('\0') || isAbsolute(location))
      throw fault(`external data location '${location}' must be a path relative to the model's folder`);
    const offset = kv.has('offset') ? intField(kv.get('offset')!, 'offset', t, where) : 0;
    const length = kv.has('length') ? intField(kv.get('length')!, 'length', t, where) : expected;
    if (length !== expected)
      throw fault(
        `external data length ${length} ≠ ${expected} bytes for dims [${(t.dims ?? []).join(', ')}]`,
      );
    const file = this.realFile(location, fault);
    const size = statSync(file).size;
    if (offset + length > size)
      throw fault(
        `external data [${offset}, ${offset + length}) lies beyond the end of '${location}' (${size} bytes)`,
      );
    validated.set(file, this.model);
    t.dataLocation = 1;
    t.externalData = [
      { key: 'location', value: file },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ];
    return { file, offset, length };
  }

  /** The data file's real path, which must be a regular file inside the model's real folder. */
  private realFile(location: string, fault: (msg: string) => InputError): string {
    this.dirReal ??= realpathSync(this.dir);
    let file: string;
    try {
      file = realpathSync(join(this.dir, location));
    } catch (err) {
      throw fault(`cannot open external data '${location}' (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    if (!file.startsWith(this.dirReal + sep) && file !== this.dirReal)
      throw fault(
        `external data '${location}' resolves to ${file}, outside the model's folder ${this.dirReal}; ` +
          "onnxruntime refuses such files too (even a Hugging Face cache's symlinks into blobs/): " +
          'copy the model and its data files into one folder',
      );
    if (!statSync(file).isFile()) throw fault(`external data '${location}' is not a regular file`);
    return file;
  }
}

/**
 * The validated location of a tensor `ExternalDataResolver.resolve` rewrote, or undefined for a
 * tensor whose data is in the model itself.
 */
export function externalRef(t: TensorProto): ExternalRef | undefined {
  if (t.dataLocation !== 1) return undefined;
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const file = kv.get('location') ?? '';
  if (!isAbsolute(file) || !validated.has(file))
    throw new InputError(
      'model',
      `tensor '${t.name ?? ''}': external data '${file}' was not loaded through loadModel (its folder is unknown)`,
    );
  return { file, offset: Number(kv.get('offset')), length: Number(kv.get('length')) };
}

/**
 * One tensor's bytes, read at its offset into a buffer of its own (aligned for any typed array).
 *
 * @example
 *   const bytes = readExternal(init); // Uint8Array of init's byte length
 */
export function readExternal(t: TensorProto): Uint8Array {
  const ref = externalRef(t);
  if (!ref) throw new Error(`readExternal: tensor '${t.name}' is not external`);
  const where = validated.get(ref.file) ?? ref.file;
  // onnxruntime maps any size; only a value vggrpo itself needs must fit one buffer.
  if (ref.length > MAX_TENSOR_BYTES)
    throw new InputError(
      where,
      `tensor '${t.name ?? ''}': ${ref.length} bytes is more than one buffer can hold`,
    );
  const out = new Uint8Array(ref.length);
  const fd = openSync(ref.file, 'r');
  try {
    if (ref.offset + ref.length > fstatSync(fd).size)
      throw new InputError(
        where,
        `tensor '${t.name ?? ''}': external data '${ref.file}' shrank since it was opened`,
      );
    readRange(fd, out, ref.offset);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Fill `out` from `fd` at `position`, looping over short reads. */
function readRange(fd: number, out: Uint8Array, position: number): void {
  let got = 0;
  while (got < out.length) {
    const n = readSync(fd, out, got, out.length - got, position + got);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + got}`);
    got += n;
  }
}
