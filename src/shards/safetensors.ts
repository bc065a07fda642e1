/**
 * safetensors, read and written by the project itself: an 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets}} with an optional string map
 * `__metadata__`, then row-major little-endian tensor bytes, contiguous and gap-free.
 *
 * Reading validates the header, then reads each tensor at its offset into a buffer of its own
 * (no buffer holds the whole file, so shards may exceed 4 GiB). Writing streams the tensors one
 * after the other into a temp file that is renamed into place.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { InputError } from '../errors.js';
import { atomicWrite, atomicWriteAsync } from './atomic.js';
import { DTYPE_SIZE, type DType, numel, type Tensor, type TypedData } from './tensor.js';

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const DTYPES = new Set(Object.keys(DTYPE_SIZE));

/** The largest tensor one buffer can hold (Node 20: 4 GiB). */
const MAX_TENSOR_BYTES = 2 ** 32;

export interface ReadOptions {
  /** Read only the tensors this accepts (the header is still validated whole). */
  select?: (name: string) => boolean;
}

/**
 * Read a safetensors file; every fault is an InputError naming the file. The header is read
 * and validated first, then each tensor at its offset into a buffer of its own, so a file may
 * be larger than any one buffer (over 4 GiB) as long as each tensor fits in one.
 *
 * @example
 *   const { tensors, metadata } = readSafetensors('runs/x/trajectory/a.safetensors');
 *   const few = readSafetensors(path, { select: (n) => n === 'advantages' });
 */
export function readSafetensors(path: string, opts: ReadOptions = {}): SafetensorsFile {
  let fd: number;
  try {
    if (statSync(path).isDirectory()) throw new InputError(path, 'is a directory, not a safetensors file');
    fd = openSync(path, 'r');
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8)
      throw new InputError(path, size === 0 ? 'empty file' : `truncated: ${size} bytes, no header`);
    const lenBuf = new Uint8Array(8);
    read(fd, lenBuf, 0, path);
    const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (headerLen > MAX_HEADER_BYTES) throw new InputError(path, `header length ${headerLen} exceeds 100 MB`);
    if (8 + headerLen > size) {
      throw new InputError(
        path,
        `truncated: header length ${headerLen} larger than the file (${size} bytes)`,
      );
    }
    const headerBytes = new Uint8Array(headerLen);
    read(fd, headerBytes, 8, path);
    const dataStart = 8 + headerLen;
    const { entries, metadata } = parseHeader(headerBytes, size - dataStart, path);
    const tensors = new Map<string, Tensor>();
    for (const e of entries) {
      if (opts.select && !opts.select(e.name)) continue;
      const length = e.end - e.begin;
      if (length > MAX_TENSOR_BYTES)
        throw new InputError(path, `tensor '${e.name}': ${length} bytes is more than one buffer can hold`);
      const bytes = new Uint8Array(length);
      read(fd, bytes, dataStart + e.begin, path);
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: view(bytes, 0, length, e.dtype) });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** Fill `out` from `fd` at `position`; a short read means the file shrank while being read. */
function read(fd: number, out: Uint8Array, position: number, path: string): void {
  let got = 0;
  while (got < out.length) {
    const n = readSync(fd, out, got, out.length - got, position + got);
    if (n === 0) throw new InputError(path, `short read: the file ended at byte ${position + got}`);
    got += n;
  }
}

/** Parse safetensors bytes already in memory (views into `bytes`). */
export function parseSafetensors(bytes: Uint8Array, where = '<buffer>'): SafetensorsFile {
  if (bytes.length < 8)
    throw new InputError(
      where,
      bytes.length === 0 ? 'empty file' : `truncated: ${bytes.length} bytes, no header`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES) throw new InputError(where, `header length ${headerLen} exceeds 100 MB`);
  if (8 + headerLen > bytes.length) {
    throw new InputError(
      where,
      `truncated: header length ${headerLen} larger than the file (${bytes.length} bytes)`,
    );
  }
  const dataStart = 8 + headerLen;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, where);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: view(bytes, dataStart + e.begin, e.end - e.begin, e.dtype),
    });
  }
  return { tensors, metadata };
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** Validate the JSON header against a data section of `dataLen` bytes. */
function parseHeader(
  headerBytes: Uint8Array,
  dataLen: number,
  where: string,
): { entries: Entry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new InputError(where, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text, (key, value) => {
      if (key === '__proto__') throw new Error('forbidden key');
      return value;
    });
  } catch {
    throw new InputError(where, 'header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new InputError(where, 'header is not a JSON object');
  }
  if (hasDuplicateKeys(text)) throw new InputError(where, 'header has duplicate tensor names');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new InputError(where, '__metadata__ is not a string map');
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new InputError(where, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null)
      throw new InputError(where, `tensor '${name}': entry is not an object`);
    if (typeof info.dtype !== 'string' || !DTYPES.has(info.dtype)) {
      throw new InputError(where, `tensor '${name}': unknown dtype ${JSON.stringify(info.dtype)}`);
    }
    const dtype = info.dtype as DType;
    if (!Array.isArray(info.shape) || !info.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(where, `tensor '${name}': shape must be a list of non-negative integers`);
    }
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new InputError(where, `tensor '${name}': data_offsets must be two non-negative integers`);
    }
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataLen) {
      throw new InputError(
        where,
        `tensor '${name}': data_offsets [${begin}, ${end}] out of bounds (data is ${dataLen} bytes)`,
      );
    }
    const shape = info.shape as number[];
    const expected = numel(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== expected) {
      throw new InputError(
        where,
        `tensor '${name}': ${end - begin} bytes but shape [${shape.join(', ')}] × ${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // Offsets must tile the data exactly: sorted, no overlap, no gap, nothing trailing.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin < pos) throw new InputError(where, `tensor '${e.name}': data overlaps the previous tensor`);
    if (e.begin > pos)
      throw new InputError(where, `tensor '${e.name}': gap of ${e.begin - pos} bytes before its data`);
    pos = e.end;
  }
  if (pos !== dataLen) throw new InputError(where, `${dataLen - pos} trailing bytes after the last tensor`);
  return { entries, metadata };
}

function view(bytes: Uint8Array, offset: number, length: number, dtype: DType): TypedData {
  const size = DTYPE_SIZE[dtype];
  const abs = bytes.byteOffset + offset;
  const n = length / size;
  // Typed arrays need aligned offsets; copy only when the file's layout does not allow a view.
  const buf = abs % size === 0 ? bytes.buffer : bytes.slice(offset, offset + length).buffer;
  const at = abs % size === 0 ? abs : 0;
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf, at, n);
    case 'F32':
      return new Float32Array(buf, at, n);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf, at, n);
    case 'I64':
      return new BigInt64Array(buf, at, n);
    case 'I32':
      return new Int32Array(buf, at, n);
    case 'I16':
      return new Int16Array(buf, at, n);
    case 'I8':
      return new Int8Array(buf, at, n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf, at, n);
  }
}

/** Detects `"name": … "name":` at the top level of the header, which JSON.parse silently merges. */
function hasDuplicateKeys(text: string): boolean {
  const seen = new Set<string>();
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const str = text.slice(i, j + 1);
      let k = j + 1;
      while (k < text.length && /\s/.test(text[k]!)) k++;
      if (depth === 1 && text[k] === ':') {
        const key = JSON.parse(str) as string;
        if (seen.has(key)) return true;
        seen.add(key);
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    i++;
  }
  return false;
}

/**
 * Serialise tensors in the reference layout: tensors in the given order, contiguous, header
 * JSON padded with spaces to a multiple of 8 bytes.
 */
export function encodeSafetensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new Error("a tensor cannot be named '__metadata__'");
    const len = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== len)
      throw new Error(`tensor '${name}': ${t.data.byteLength} bytes for shape [${t.shape}]`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(head.length), true);
  const parts: Uint8Array[] = [len, head];
  for (const [, t] of list) parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return parts;
}

/**
 * Write a safetensors file atomically (temp file in the same folder, fsync, rename).
 *
 * @example
 *   writeSafetensors('out.safetensors', { x: f32([2], [1, 2]) }, { 'vggrpo.kind': 'rewards' });
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  atomicWrite(path, encodeSafetensors(tensors, metadata));
}

/** writeSafetensors with the writing off the main thread (atomicWriteAsync); tensors must not change until it settles. */
export function writeSafetensorsAsync(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  return atomicWriteAsync(path, encodeSafetensors(tensors, metadata));
}
