/**
 * Rotations: unit quaternions (x, y, z, w — scalar last, as VGGT writes them) and row-major 3×3
 * matrices, the SO(3) exponential and logarithm, and the geodesic angle between two rotations.
 * Everything is float64; matrices are length-9 arrays (src/geometry/mat3.ts) so callers can keep
 * them in typed buffers without allocation (`out` arguments).
 */

import { type Mat3, matTMul3, type Vec3 } from './mat3.js';

/** Rotation matrix of a quaternion (x, y, z, w); the quaternion is normalised first. */
export function quatToMatrix(q: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  let x = q[0]!;
  let y = q[1]!;
  let z = q[2]!;
  let w = q[3]!;
  const n = Math.hypot(x, y, z, w);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError('quatToMatrix: zero or non-finite quaternion');
  x /= n;
  y /= n;
  z /= n;
  w /= n;
  out[0] = 1 - 2 * (y * y + z * z);
  out[1] = 2 * (x * y - z * w);
  out[2] = 2 * (x * z + y * w);
  out[3] = 2 * (x * y + z * w);
  out[4] = 1 - 2 * (x * x + z * z);
  out[5] = 2 * (y * z - x * w);
  out[6] = 2 * (x * z - y * w);
  out[7] = 2 * (y * z + x * w);
  out[8] = 1 - 2 * (x * x + y * y);
  return out;
}

/**
 * Quaternion (x, y, z, w) of a rotation matrix, with w ≥ 0 (the sign VGGT's encoder picks too).
 * Shepperd's method: divide by the largest of the four candidates so it stays accurate near 180°.
 *
 * @example
 *   matrixToQuat(Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1)); // [0, 0, 0, 1]
 */
export function matrixToQuat(m: ArrayLike<number>, out: Float64Array = new Float64Array(4)): Float64Array {
  const m00 = m[0]!;
  const m11 = m[4]!;
  const m22 = m[8]!;
  const tr = m00 + m11 + m22;
  let x: number;
  let y: number;
  let z: number;
  let w: number;
  if (tr >= m00 && tr >= m11 && tr >= m22) {
    const s = 2 * Math.sqrt(Math.max(0, 1 + tr));
    w = s / 4;
    x = (m[7]! - m[5]!) / s;
    y = (m[2]! - m[6]!) / s;
    z = (m[3]! - m[1]!) / s;
  } else if (m00 >= m11 && m00 >= m22) {
    const s = 2 * Math.sqrt(Math.max(0, 1 + m00 - m11 - m22));
    x = s / 4;
    w = (m[7]! - m[5]!) / s;
    y = (m[1]! + m[3]!) / s;
    z = (m[2]! + m[6]!) / s;
  } else if (m11 >= m22) {
    const s = 2 * Math.sqrt(Math.max(0, 1 - m00 + m11 - m22));
    y = s / 4;
    w = (m[2]! - m[6]!) / s;
    x = (m[1]! + m[3]!) / s;
    z = (m[5]! + m[7]!) / s;
  } else {
    const s = 2 * Math.sqrt(Math.max(0, 1 - m00 - m11 + m22));
    z = s / 4;
    w = (m[3]! - m[1]!) / s;
    x = (m[2]! + m[6]!) / s;
    y = (m[5]! + m[7]!) / s;
  }
  if (w < 0) {
    x = -x;
    y = -y;
    z = -z;
    w = -w;
  }
  const n = Math.hypot(x, y, z, w);
  out[0] = x / n;
  out[1] = y / n;
  out[2] = z / n;
  out[3] = w / n;
  return out;
}

/**
 * Rodrigues: the rotation by angle ‖ω‖ about ω/‖ω‖.
 *
 * @example
 *   expSO3(Float64Array.of(0, 0, Math.PI / 2)); // maps x to y
 */
export function expSO3(omega: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const wx = omega[0]!;
  const wy = omega[1]!;
  const wz = omega[2]!;
  const th2 = wx * wx + wy * wy + wz * wz;
  const th = Math.sqrt(th2);
  // Taylor series below 1e-4 rad keep A = sin θ/θ and B = (1−cos θ)/θ² accurate.
  const a = th < 1e-4 ? 1 - th2 / 6 : Math.sin(th) / th;
  const b = th < 1e-4 ? 0.5 - th2 / 24 : (1 - Math.cos(th)) / th2;
  out[0] = 1 - b * (wy * wy + wz * wz);
  out[1] = -a * wz + b * wx * wy;
  out[2] = a * wy + b * wx * wz;
  out[3] = a * wz + b * wx * wy;
  out[4] = 1 - b * (wx * wx + wz * wz);
  out[5] = -a * wx + b * wy * wz;
  out[6] = -a * wy + b * wx * wz;
  out[7] = a * wx + b * wy * wz;
  out[8] = 1 - b * (wx * wx + wy * wy);
  return out;
}

/**
 * The rotation by `angle` radians about `axis` (any non-zero length): exp(angle·axis/‖axis‖).
 *
 * @example
 *   axisAngle([0, 1, 0], Math.PI / 2); // maps z to x
 */
export function axisAngle(axis: ArrayLike<number>, angle: number, out: Mat3 = new Float64Array(9)): Mat3 {
  const k = angle / Math.hypot(axis[0]!, axis[1]!, axis[2]!);
  return expSO3([axis[0]! * k, axis[1]! * k, axis[2]! * k], out);
}

const scratchQ = new Float64Array(4);

/**
 * The rotation vector ω (axis·angle, angle in [0, π]) with exp(ω) = R. Goes through the
 * quaternion so it is accurate at small angles and near π alike, where arccos-based formulas lose
 * half their digits.
 *
 * @example
 *   logSO3(expSO3(Float64Array.of(0.1, -0.2, 0.3))); // ≈ [0.1, -0.2, 0.3]
 */
export function logSO3(m: ArrayLike<number>, out: Vec3 = new Float64Array(3)): Vec3 {
  const q = matrixToQuat(m, scratchQ);
  const s = Math.hypot(q[0]!, q[1]!, q[2]!);
  const w = q[3]!;
  // angle = 2·atan2(s, w); ω = angle·v/s, written so that s → 0 has the limit 2/w.
  const k = s < 1e-12 ? 2 / w : (2 * Math.atan2(s, w)) / s;
  out[0] = q[0]! * k;
  out[1] = q[1]! * k;
  out[2] = q[2]! * k;
  return out;
}

const scratchRel = new Float64Array(9);
const scratchLog = new Float64Array(3);

/**
 * Geodesic angle (radians, in [0, π]) between two rotations: arccos((tr(R₁ᵀR₂) − 1)/2), computed
 * as ‖log(R₁ᵀR₂)‖ for accuracy near 0 and π.
 *
 * @example
 *   geodesicAngle(expSO3([0, 0, 0.3]), expSO3([0, 0, 0.1])); // 0.2
 */
export function geodesicAngle(r1: ArrayLike<number>, r2: ArrayLike<number>): number {
  const w = logSO3(matTMul3(r1, r2, scratchRel), scratchLog);
  return Math.hypot(w[0]!, w[1]!, w[2]!);
}
