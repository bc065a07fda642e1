/**
 * Derivatives of the VGGT pose encoding → camera conversion (src/geometry/cameras.ts), in float64:
 * the chain a reward's cotangent on camera-from-world extrinsics takes back to the geometry
 * model's 9-d camera output t(3), q(4) (x, y, z, w), fov_h, fov_w (docs/METHOD.md, Geometry
 * conventions). Quaternions are normalised before use, so the gradient of a raw q is the unit
 * quaternion's gradient projected off q (scale-invariance) and divided by ‖q‖.
 *
 * Rotations enter the rewards either as matrix entries (R in c = −Rᵀt, in R·X + t) or as
 * relative rotations whose logarithm is taken; the second is written with quaternion products
 * here (`quatMul`, `quatLog`), which is the same function as logSO3 of the matrix product on
 * SO(3) but differentiable everywhere except at exactly 180°.
 */
import { quatToMatrix } from './so3.js';

/** Unit quaternions (x, y, z, w) of the frames' raw q, their norms, and their rotations. */
export interface PoseFrames {
  frames: number;
  /** [F,4] unit quaternions. */
  q: Float64Array;
  /** [F] ‖q_raw‖. */
  norm: Float64Array;
  /** [F,3,4] camera-from-world extrinsics [R|t], float64. */
  extrinsics: Float64Array;
}

/**
 * Pose encoding [F,9] → unit quaternions and float64 extrinsics (the same R and t as
 * poseEncodingToCameras, without the float32 rounding).
 *
 * @example
 *   const p = poseFrames(poseEnc); // p.extrinsics: Float64Array [F*12]
 */
export function poseFrames(pose: ArrayLike<number>): PoseFrames {
  const frames = Math.floor(pose.length / 9);
  const q = new Float64Array(4 * frames);
  const norm = new Float64Array(frames);
  const extrinsics = new Float64Array(12 * frames);
  const r = new Float64Array(9);
  for (let f = 0; f < frames; f++) {
    const o = 9 * f;
    const n = Math.hypot(pose[o + 3]!, pose[o + 4]!, pose[o + 5]!, pose[o + 6]!);
    norm[f] = n;
    for (let k = 0; k < 4; k++) q[4 * f + k] = pose[o + 3 + k]! / n;
    quatToMatrix(q.subarray(4 * f, 4 * f + 4), r);
    for (let row = 0; row < 3; row++) {
      for (let c = 0; c < 3; c++) extrinsics[12 * f + 4 * row + c] = r[3 * row + c]!;
      extrinsics[12 * f + 4 * row + 3] = pose[o + row]!;
    }
  }
  return { frames, q, norm, extrinsics };
}

/**
 * VJP of quatToMatrix at a unit quaternion: gR (row-major 3×3 cotangent) → g on (x, y, z, w),
 * added into `out`.
 */
export function quatToMatrixVjp(
  q: ArrayLike<number>,
  gR: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  const x = q[0]!;
  const y = q[1]!;
  const z = q[2]!;
  const w = q[3]!;
  const [g0, g1, g2, g3, g4, g5, g6, g7, g8] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) => gR[k]!) as number[];
  // R00 = 1−2(y²+z²), R01 = 2(xy−zw), R02 = 2(xz+yw), R10 = 2(xy+zw), R11 = 1−2(x²+z²),
  // R12 = 2(yz−xw), R20 = 2(xz−yw), R21 = 2(yz+xw), R22 = 1−2(x²+y²).
  out[0]! += 2 * (y * g1! + z * g2! + y * g3! - 2 * x * g4! - w * g5! + z * g6! + w * g7! - 2 * x * g8!);
  out[1]! += 2 * (-2 * y * g0! + x * g1! + w * g2! + x * g3! + z * g5! - w * g6! + z * g7! - 2 * y * g8!);
  out[2]! += 2 * (-2 * z * g0! - w * g1! + x * g2! + w * g3! - 2 * z * g4! + y * g5! + x * g6! + y * g7!);
  out[3]! += 2 * (-z * g1! + y * g2! + z * g3! - x * g5! - y * g6! + x * g7!);
  return out;
}

/**
 * VJP of q̂ = q/‖q‖: the gradient of the raw quaternion from that of the unit one,
 * (g − q̂(q̂·g))/‖q‖.
 */
export function normalizeVjp(
  qUnit: ArrayLike<number>,
  norm: number,
  g: ArrayLike<number>,
  out: Float64Array,
): void {
  let dot = 0;
  for (let k = 0; k < 4; k++) dot += qUnit[k]! * g[k]!;
  for (let k = 0; k < 4; k++) out[k] = (g[k]! - qUnit[k]! * dot) / norm;
}

/**
 * Cotangents on the extrinsics [F,3,4] and on the unit quaternions [F,4] (from terms that read
 * the rotation as a quaternion) → cotangent on the pose encoding [F,9]. The fovs get none: no
 * reward here reads the intrinsics except through visibility, which is held fixed.
 *
 * @example
 *   const gPose = poseEncodingVjp(poseFrames(pose), gExtrinsics);
 */
export function poseEncodingVjp(
  p: PoseFrames,
  gExtrinsics: ArrayLike<number> | null,
  gQuat: ArrayLike<number> | null = null,
  out: Float64Array = new Float64Array(9 * p.frames),
): Float64Array {
  const gR = new Float64Array(9);
  const gq = new Float64Array(4);
  const graw = new Float64Array(4);
  for (let f = 0; f < p.frames; f++) {
    gq.fill(0);
    if (gExtrinsics) {
      for (let row = 0; row < 3; row++) {
        for (let c = 0; c < 3; c++) gR[3 * row + c] = gExtrinsics[12 * f + 4 * row + c]!;
        out[9 * f + row]! += gExtrinsics[12 * f + 4 * row + 3]!;
      }
      quatToMatrixVjp(p.q.subarray(4 * f, 4 * f + 4), gR, gq);
    }
    if (gQuat) for (let k = 0; k < 4; k++) gq[k]! += gQuat[4 * f + k]!;
    normalizeVjp(p.q.subarray(4 * f, 4 * f + 4), p.norm[f]!, gq, graw);
    for (let k = 0; k < 4; k++) out[9 * f + 3 + k]! += graw[k]!;
  }
  return out;
}

/** Hamilton product a ⊗ b of quaternions (x, y, z, w): R(a⊗b) = R(a)·R(b). */
export function quatMul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  out: Float64Array = new Float64Array(4),
): Float64Array {
  const [ax, ay, az, aw] = [a[0]!, a[1]!, a[2]!, a[3]!];
  const [bx, by, bz, bw] = [b[0]!, b[1]!, b[2]!, b[3]!];
  out[0] = aw * bx + bw * ax + (ay * bz - az * by);
  out[1] = aw * by + bw * ay + (az * bx - ax * bz);
  out[2] = aw * bz + bw * az + (ax * by - ay * bx);
  out[3] = aw * bw - (ax * bx + ay * by + az * bz);
  return out;
}

/** VJP of p = a ⊗ b: gp → ga, gb (added into them). */
export function quatMulVjp(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  gp: ArrayLike<number>,
  ga: Float64Array,
  gb: Float64Array,
): void {
  const [ax, ay, az, aw] = [a[0]!, a[1]!, a[2]!, a[3]!];
  const [bx, by, bz, bw] = [b[0]!, b[1]!, b[2]!, b[3]!];
  const [gx, gy, gz, gw] = [gp[0]!, gp[1]!, gp[2]!, gp[3]!];
  // p.v = aw·bv + bw·av + av×bv, p.w = aw·bw − av·bv; (av×bv)·g = av·(bv×g) = bv·(g×av).
  ga[0]! += -gw * bx + bw * gx + (by * gz - bz * gy);
  ga[1]! += -gw * by + bw * gy + (bz * gx - bx * gz);
  ga[2]! += -gw * bz + bw * gz + (bx * gy - by * gx);
  ga[3]! += gw * bw + (gx * bx + gy * by + gz * bz);
  gb[0]! += -gw * ax + aw * gx + (gy * az - gz * ay);
  gb[1]! += -gw * ay + aw * gy + (gz * ax - gx * az);
  gb[2]! += -gw * az + aw * gz + (gx * ay - gy * ax);
  gb[3]! += gw * aw + (gx * ax + gy * ay + gz * az);
}

/**
 * Rotation vector of a unit quaternion, as logSO3 gives it (angle in [0, π]: q and −q are the
 * same rotation, the one with w ≥ 0 is used): ω = k(s, w)·v with s = ‖v‖, k = 2·atan2(s, w)/s.
 */
export function quatLog(q: ArrayLike<number>, out: Float64Array = new Float64Array(3)): Float64Array {
  const sg = q[3]! < 0 ? -1 : 1;
  const x = sg * q[0]!;
  const y = sg * q[1]!;
  const z = sg * q[2]!;
  const k = logFactor(Math.hypot(x, y, z), sg * q[3]!).k;
  out[0] = k * x;
  out[1] = k * y;
  out[2] = k * z;
  return out;
}

/**
 * k = 2·atan2(s, w)/s and the derivatives ∂k/∂w and (∂k/∂s)/s. For small s/w the closed forms
 * cancel catastrophically, so Taylor series in u = s/w are used there (u < 1e-2, error O(u⁶)).
 */
function logFactor(s: number, w: number): { k: number; kw: number; ksOverS: number } {
  const s2w2 = s * s + w * w;
  const kw = -2 / s2w2;
  const u = s / w;
  if (w > 0 && u < 1e-2) {
    const u2 = u * u;
    return {
      k: (2 / w) * (1 - u2 / 3 + (u2 * u2) / 5 - (u2 * u2 * u2) / 7),
      kw,
      ksOverS: (1 / (w * w * w)) * (-4 / 3 + (8 / 5) * u2 - (12 / 7) * u2 * u2),
    };
  }
  const at = Math.atan2(s, w);
  return { k: (2 * at) / s, kw, ksOverS: (2 / (s * s * s)) * ((s * w) / s2w2 - at) };
}

/** VJP of quatLog: gω → g on q (added into `out`). */
export function quatLogVjp(q: ArrayLike<number>, gw: ArrayLike<number>, out: Float64Array): void {
  const sg = q[3]! < 0 ? -1 : 1;
  const x = sg * q[0]!;
  const y = sg * q[1]!;
  const z = sg * q[2]!;
  const { k, kw, ksOverS } = logFactor(Math.hypot(x, y, z), sg * q[3]!);
  // ω_a = k·v_a: ∂ω_a/∂v_b = k·δ_ab + v_a·v_b·(∂k/∂s)/s, ∂ω_a/∂w = v_a·∂k/∂w.
  const vg = x * gw[0]! + y * gw[1]! + z * gw[2]!;
  out[0]! += sg * (k * gw[0]! + x * ksOverS * vg);
  out[1]! += sg * (k * gw[1]! + y * ksOverS * vg);
  out[2]! += sg * (k * gw[2]! + z * ksOverS * vg);
  out[3]! += sg * kw * vg;
}
