/**
 * The in-memory tensor every module passes around: a dtype name as safetensors spells it,
 * a row-major shape and a typed array (a view into the file's buffer when read from a shard).
 *
 * @example
 *   const t = tensor('F32', [2, 3], new Float32Array(6));
 */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type TypedData =
  | Float64Array
  | Float32Array
  | Uint16Array // F16 and BF16 keep their raw bits
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array; // U8 and BOOL

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

export const DTYPE_SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Build a tensor, checking that the data length matches the shape. */
export function tensor(dtype: DType, shape: number[], data: TypedData): Tensor {
  if (data.length !== numel(shape)) {
    throw new Error(`tensor: ${data.length} elements for shape [${shape.join(', ')}]`);
  }
  return { dtype, shape, data };
}

export function f32(shape: number[], data?: Float32Array | number[]): Tensor {
  const d =
    data instanceof Float32Array ? data : data ? new Float32Array(data) : new Float32Array(numel(shape));
  return tensor('F32', shape, d);
}

export function i64(shape: number[], data: ArrayLike<number | bigint>): Tensor {
  const d = new BigInt64Array(numel(shape));
  for (let i = 0; i < d.length; i++) d[i] = BigInt(data[i] as number);
  return tensor('I64', shape, d);
}

/** Float32 copy (or the same array when already F32) of any numeric tensor. */
export function toFloat32(t: Tensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  const out = new Float32Array(t.data.length);
  if (t.dtype === 'F16') {
    const u = t.data as Uint16Array;
    for (let i = 0; i < u.length; i++) out[i] = halfToFloat(u[i]!);
  } else if (t.dtype === 'BF16') {
    const u = t.data as Uint16Array;
    const tmp = new Uint32Array(1);
    const f = new Float32Array(tmp.buffer);
    for (let i = 0; i < u.length; i++) {
      tmp[0] = u[i]! << 16;
      out[i] = f[0]!;
    }
  } else if (t.data instanceof BigInt64Array) {
    for (let i = 0; i < t.data.length; i++) out[i] = Number(t.data[i]);
  } else {
    const d = t.data as ArrayLike<number>;
    for (let i = 0; i < d.length; i++) out[i] = d[i]!;
  }
  return out;
}

/** Plain numbers of an integer tensor (I64 included). */
export function toNumbers(t: Tensor): number[] {
  const out: number[] = new Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = Number(t.data[i]);
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}
