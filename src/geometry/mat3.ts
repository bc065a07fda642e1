/**
 * Row-major 3×3 matrices and 3-vectors in float64: products, transpose, determinant, trace.
 * Inputs are any ArrayLike<number> (plain arrays, Float32Array shard data, Float64Array), outputs
 * Float64Array; the optional `out` lets hot loops reuse a buffer.
 *
 * @example
 *   const m = matTMul3(a, b); // aᵀb
 */

/** A row-major 3×3 matrix: m[3*r + c]. */
export type Mat3 = Float64Array;
/** A 3-vector. */
export type Vec3 = Float64Array;

/** The identity, as a read-only input (copy it with Float64Array.from before writing). */
export const IDENTITY3: readonly number[] = Object.freeze([1, 0, 0, 0, 1, 0, 0, 0, 1]);

/** a·b for row-major 3×3 matrices. */
export function matMul3(a: ArrayLike<number>, b: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  for (let r = 0; r < 3; r++) {
    const a0 = a[3 * r]!;
    const a1 = a[3 * r + 1]!;
    const a2 = a[3 * r + 2]!;
    out[3 * r] = a0 * b[0]! + a1 * b[3]! + a2 * b[6]!;
    out[3 * r + 1] = a0 * b[1]! + a1 * b[4]! + a2 * b[7]!;
    out[3 * r + 2] = a0 * b[2]! + a1 * b[5]! + a2 * b[8]!;
  }
  return out;
}

/** aᵀ·b for row-major 3×3 matrices. */
export function matTMul3(a: ArrayLike<number>, b: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  for (let r = 0; r < 3; r++) {
    const a0 = a[r]!;
    const a1 = a[3 + r]!;
    const a2 = a[6 + r]!;
    out[3 * r] = a0 * b[0]! + a1 * b[3]! + a2 * b[6]!;
    out[3 * r + 1] = a0 * b[1]! + a1 * b[4]! + a2 * b[7]!;
    out[3 * r + 2] = a0 * b[2]! + a1 * b[5]! + a2 * b[8]!;
  }
  return out;
}

/** a·bᵀ for row-major 3×3 matrices. */
export function matMulT3(a: ArrayLike<number>, b: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  for (let r = 0; r < 3; r++) {
    const a0 = a[3 * r]!;
    const a1 = a[3 * r + 1]!;
    const a2 = a[3 * r + 2]!;
    for (let c = 0; c < 3; c++) out[3 * r + c] = a0 * b[3 * c]! + a1 * b[3 * c + 1]! + a2 * b[3 * c + 2]!;
  }
  return out;
}

/** Transpose of a row-major 3×3 matrix (`out` may be `a`). */
export function transpose3(a: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const t = Float64Array.of(a[0]!, a[3]!, a[6]!, a[1]!, a[4]!, a[7]!, a[2]!, a[5]!, a[8]!);
  out.set(t);
  return out;
}

/** a·v for a row-major 3×3 matrix and a 3-vector. */
export function mulVec3(a: ArrayLike<number>, v: ArrayLike<number>, out: Vec3 = new Float64Array(3)): Vec3 {
  const v0 = v[0]!;
  const v1 = v[1]!;
  const v2 = v[2]!;
  for (let r = 0; r < 3; r++) out[r] = a[3 * r]! * v0 + a[3 * r + 1]! * v1 + a[3 * r + 2]! * v2;
  return out;
}

/** a − b for 3-vectors. */
export function sub3(a: ArrayLike<number>, b: ArrayLike<number>, out: Vec3 = new Float64Array(3)): Vec3 {
  for (let k = 0; k < 3; k++) out[k] = a[k]! - b[k]!;
  return out;
}

/** Euclidean length of a 3-vector. */
export function norm3(v: ArrayLike<number>): number {
  return Math.hypot(v[0]!, v[1]!, v[2]!);
}

export function det3(a: ArrayLike<number>): number {
  return (
    a[0]! * (a[4]! * a[8]! - a[5]! * a[7]!) -
    a[1]! * (a[3]! * a[8]! - a[5]! * a[6]!) +
    a[2]! * (a[3]! * a[7]! - a[4]! * a[6]!)
  );
}

export function trace3(a: ArrayLike<number>): number {
  return a[0]! + a[4]! + a[8]!;
}
