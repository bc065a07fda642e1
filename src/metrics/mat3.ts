/**
 * The few 3×3 and 3-vector operations the metrics need, row-major in plain number arrays.
 * Kept local so the metrics do not wait on src/geometry; doubles throughout because the
 * metrics compare small differences of float32 inputs.
 *
 * @example
 *   const r = mul3(transpose3(a), b); // aᵀb
 */
export type Mat3 = number[]; // 9 entries, row-major
export type Vec3 = [number, number, number];

export const IDENTITY3: readonly number[] = [1, 0, 0, 0, 1, 0, 0, 0, 1];

export function mul3(a: ArrayLike<number>, b: ArrayLike<number>): Mat3 {
  const out = new Array<number>(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[3 * i + j] = a[3 * i]! * b[j]! + a[3 * i + 1]! * b[3 + j]! + a[3 * i + 2]! * b[6 + j]!;
    }
  }
  return out;
}

export function transpose3(a: ArrayLike<number>): Mat3 {
  return [a[0]!, a[3]!, a[6]!, a[1]!, a[4]!, a[7]!, a[2]!, a[5]!, a[8]!];
}

export function mulVec3(a: ArrayLike<number>, v: ArrayLike<number>): Vec3 {
  return [
    a[0]! * v[0]! + a[1]! * v[1]! + a[2]! * v[2]!,
    a[3]! * v[0]! + a[4]! * v[1]! + a[5]! * v[2]!,
    a[6]! * v[0]! + a[7]! * v[1]! + a[8]! * v[2]!,
  ];
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

export function sub3(a: ArrayLike<number>, b: ArrayLike<number>): Vec3 {
  return [a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!];
}

export function norm3(v: ArrayLike<number>): number {
  return Math.hypot(v[0]!, v[1]!, v[2]!);
}

/** Rotation about a unit axis by `angle` radians (Rodrigues); used by tests and synthetic data. */
export function axisAngle(axis: ArrayLike<number>, angle: number): Mat3 {
  const n = norm3(axis);
  const [x, y, z] = [axis[0]! / n, axis[1]! / n, axis[2]! / n];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const C = 1 - c;
  return [
    c + x * x * C,
    x * y * C - z * s,
    x * z * C + y * s,
    y * x * C + z * s,
    c + y * y * C,
    y * z * C - x * s,
    z * x * C - y * s,
    z * y * C + x * s,
    c + z * z * C,
  ];
}
