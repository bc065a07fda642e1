/**
 * The exact vector–Jacobian product of camera motion smoothness r_motion (src/rewards/motion.ts,
 * docs/METHOD.md, Rewards) with respect to the geometry model's camera output, the VGGT pose
 * encoding [F,9], in float64: through quaternion normalisation, R(q), the centres c = −Rᵀt, the
 * relative rotations (as quaternion products) and their logarithm, the norms and ratios of
 * S_trans and S_rot. With epsUnit 'scene' the translation eps is eps × the median valid depth,
 * so the depth output gets a gradient too (on the median pixel or the two middle ones).
 *
 * Where r is not differentiable (an acceleration or a step exactly zero, a relative rotation of
 * exactly 180°, two depths tied at the median) the one-sided choice made is: ‖0‖' = 0, and the
 * median pixel picked by a stable sort.
 */
import {
  poseEncodingVjp,
  poseFrames,
  quatLog,
  quatLogVjp,
  quatMul,
  quatMulVjp,
} from '../geometry/pose-vjp.js';
import { belowNoiseFloor, type MotionOptions, motion } from './motion.js';

export interface MotionGradient {
  reward: number;
  sTrans: number;
  sRot: number;
  /** ∂(cotangent·r)/∂pose, [F,9]. */
  pose: Float64Array;
  /** ∂(cotangent·r)/∂depth, [F·h·w] (non-zero only at the median pixels), or null without depth. */
  depth: Float64Array | null;
}

/**
 * Indices of the median of the valid (finite, > 0) depths, with their weights (1, or ½ and ½),
 * and the median itself; null without any valid depth.
 *
 * @example
 *   medianPixels(Float32Array.of(3, 1, 2)); // { value: 2, index: [2], weight: [1] }
 */
export function medianPixels(
  depth: ArrayLike<number>,
): { value: number; index: number[]; weight: number[] } | null {
  const idx: number[] = [];
  for (let i = 0; i < depth.length; i++) {
    const d = depth[i]!;
    if (d > 0 && d < Number.POSITIVE_INFINITY) idx.push(i);
  }
  if (idx.length === 0) return null;
  idx.sort((a, b) => depth[a]! - depth[b]! || a - b);
  const n = idx.length;
  const hi = idx[n >> 1]!;
  if (n & 1) return { value: depth[hi]!, index: [hi], weight: [1] };
  const lo = idx[(n >> 1) - 1]!;
  return { value: (depth[lo]! + depth[hi]!) / 2, index: [lo, hi], weight: [0.5, 0.5] };
}

/** ‖a‖/d and its partials, for one ratio term of S. */
interface Ratio {
  value: number;
  /** ∂/∂a (3), ∂/∂v1 (3), ∂/∂v0 (3) and ∂/∂eps. */
  ga: number[];
  g1: number[];
  g0: number[];
  geps: number;
}

function ratio(v1: number[], v0: number[], eps: number): Ratio {
  const a = [v1[0]! - v0[0]!, v1[1]! - v0[1]!, v1[2]! - v0[2]!];
  const n = Math.hypot(a[0]!, a[1]!, a[2]!);
  const n1 = Math.hypot(v1[0]!, v1[1]!, v1[2]!);
  const n0 = Math.hypot(v0[0]!, v0[1]!, v0[2]!);
  const d = n1 + n0 + eps;
  const q = -n / (d * d);
  return {
    value: n / d,
    ga: a.map((x) => (n > 0 ? x / n / d : 0)),
    g1: v1.map((x) => (n1 > 0 ? (q * x) / n1 : 0)),
    g0: v0.map((x) => (n0 > 0 ? (q * x) / n0 : 0)),
    geps: q,
  };
}

/**
 * r_motion of one video's pose encoding [F,9] and its gradient times `cotangent`. `depth`
 * ([F·h·w]) gives the scene scale for epsUnit 'scene' (as motion.compute does).
 *
 * @example
 *   const g = motionVjp(poseEnc, depth); // g.reward, g.pose [F*9], g.depth
 */
export function motionVjp(
  pose: ArrayLike<number>,
  depth: ArrayLike<number> | undefined,
  options: Partial<MotionOptions> = {},
  cotangent = 1,
): MotionGradient {
  const o = motion.parseOptions(options as Record<string, unknown>);
  const p = poseFrames(pose);
  const F = p.frames;
  const gPose = new Float64Array(9 * F);
  const gDepth = depth ? new Float64Array(depth.length) : null;
  if (F < 3) return { reward: 1, sTrans: 0, sRot: 0, pose: gPose, depth: gDepth };

  // Forward: centres, relative quaternions and their logs (frame as motion.ts documents).
  const E = p.extrinsics;
  const c: number[][] = [];
  for (let f = 0; f < F; f++) {
    const t = [E[12 * f + 3]!, E[12 * f + 7]!, E[12 * f + 11]!];
    c.push(
      [0, 1, 2].map(
        (k) => -(E[12 * f + k]! * t[0]! + E[12 * f + 4 + k]! * t[1]! + E[12 * f + 8 + k]! * t[2]!),
      ),
    );
  }
  const qf = (f: number) => p.q.subarray(4 * f, 4 * f + 4);
  const conj = (q: ArrayLike<number>) => Float64Array.of(-q[0]!, -q[1]!, -q[2]!, q[3]!);
  const rel: Float64Array[] = [];
  const om: number[][] = [];
  for (let f = 0; f + 1 < F; f++) {
    // 'camera': R_i R_{i+1}ᵀ ↔ q_i ⊗ q̄_{i+1};  'world': R_iᵀ R_{i+1} ↔ q̄_i ⊗ q_{i+1}.
    const r =
      o.rotationFrame === 'camera' ? quatMul(qf(f), conj(qf(f + 1))) : quatMul(conj(qf(f)), qf(f + 1));
    rel.push(r);
    om.push(Array.from(quatLog(r)));
  }
  const median = depth && o.epsUnit === 'scene' ? medianPixels(depth) : null;
  // Without any valid depth motion.ts falls back to the mean step length (scale-free too).
  const stepScale = o.epsUnit === 'scene' && !(median && median.value > 0);
  const scale = o.epsUnit === 'absolute' ? 1 : stepScale ? meanStep(c) : median!.value;

  let sT = 0;
  let sR = 0;
  const trans: Ratio[] = [];
  const rots: Ratio[] = [];
  for (let i = 1; i + 1 < F; i++) {
    const v1 = sub(c[i + 1]!, c[i]!);
    const v0 = sub(c[i]!, c[i - 1]!);
    const rt = ratio(v1, v0, o.eps * scale);
    const rr = ratio(om[i]!, om[i - 1]!, o.epsRot);
    trans.push(rt);
    rots.push(rr);
    sT += rt.value;
    sR += rr.value;
  }
  sT /= F - 2;
  sR /= F - 2;
  // An axis still under the noise floor scores S = 0 and passes no gradient (motion.ts).
  const noise = o.poseNoise;
  const stillT = !!noise && belowNoiseFloor(meanStepLength(c), noise.translation * scale, o.noiseFloorFactor);
  const stillR = !!noise && belowNoiseFloor(meanLength(om), noise.rotation, o.noiseFloorFactor);
  if (stillT) sT = 0;
  if (stillR) sR = 0;
  const reward = 0.5 * (1 / (1 + sT) + 1 / (1 + sR));

  // Backward.
  const gT = stillT ? 0 : (cotangent * -0.5) / (1 + sT) ** 2 / (F - 2);
  const gR = stillR ? 0 : (cotangent * -0.5) / (1 + sR) ** 2 / (F - 2);
  const gc = c.map(() => [0, 0, 0]);
  const gom = om.map(() => [0, 0, 0]);
  let gScale = 0;
  for (let i = 1; i + 1 < F; i++) {
    const rt = trans[i - 1]!;
    const rr = rots[i - 1]!;
    for (let k = 0; k < 3; k++) {
      // a = v1 − v0, v1 = c_{i+1} − c_i, v0 = c_i − c_{i−1}.
      const g1 = gT * (rt.ga[k]! + rt.g1[k]!);
      const g0 = gT * (-rt.ga[k]! + rt.g0[k]!);
      gc[i + 1]![k]! += g1;
      gc[i]![k]! += g0 - g1;
      gc[i - 1]![k]! -= g0;
      gom[i]![k]! += gR * (rr.ga[k]! + rr.g1[k]!);
      gom[i - 1]![k]! += gR * (-rr.ga[k]! + rr.g0[k]!);
    }
    gScale += gT * rt.geps * o.eps;
  }
  if (stepScale) addMeanStepVjp(c, gScale, gc);

  // c = −Rᵀt: ∂/∂t = −R·gc, ∂/∂R_jk = −t_j·gc_k.
  const gE = new Float64Array(12 * F);
  for (let f = 0; f < F; f++) {
    for (let j = 0; j < 3; j++) {
      const t = E[12 * f + 4 * j + 3]!;
      let gt = 0;
      for (let k = 0; k < 3; k++) {
        gt -= E[12 * f + 4 * j + k]! * gc[f]![k]!;
        gE[12 * f + 4 * j + k] = -t * gc[f]![k]!;
      }
      gE[12 * f + 4 * j + 3] = gt;
    }
  }
  const gQ = new Float64Array(4 * F);
  for (let f = 0; f + 1 < F; f++) {
    const gRel = new Float64Array(4);
    quatLogVjp(rel[f]!, gom[f]!, gRel);
    const ga = new Float64Array(4);
    const gb = new Float64Array(4);
    if (o.rotationFrame === 'camera') {
      quatMulVjp(qf(f), conj(qf(f + 1)), gRel, ga, gb);
      for (let k = 0; k < 4; k++) {
        gQ[4 * f + k]! += ga[k]!;
        gQ[4 * (f + 1) + k]! += k < 3 ? -gb[k]! : gb[k]!;
      }
    } else {
      quatMulVjp(conj(qf(f)), qf(f + 1), gRel, ga, gb);
      for (let k = 0; k < 4; k++) {
        gQ[4 * f + k]! += k < 3 ? -ga[k]! : ga[k]!;
        gQ[4 * (f + 1) + k]! += gb[k]!;
      }
    }
  }
  poseEncodingVjp(p, gE, gQ, gPose);
  if (gDepth && median && median.value > 0 && o.epsUnit === 'scene') {
    median.index.forEach((ix, m) => {
      gDepth[ix]! += gScale * median.weight[m]!;
    });
  }
  return { reward, sTrans: sT, sRot: sR, pose: gPose, depth: gDepth };
}

function sub(a: number[], b: number[]): number[] {
  return [a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!];
}

function dist(a: number[], b: number[]): number {
  return Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);
}

/** motion.ts's fallback scale without valid depth: the mean step length (1 for a still camera). */
function meanStep(c: number[][]): number {
  const m = meanStepLength(c);
  return m > 0 ? m : 1;
}

/** Mean distance between consecutive camera centres (0 for a still camera). */
function meanStepLength(c: number[][]): number {
  let sum = 0;
  for (let f = 0; f + 1 < c.length; f++) sum += dist(c[f + 1]!, c[f]!);
  return c.length > 1 ? sum / (c.length - 1) : 0;
}

/** Mean length of the angular steps ω_i (for the noise floor). */
function meanLength(om: number[][]): number {
  return om.reduce((a, w) => a + Math.hypot(w[0]!, w[1]!, w[2]!), 0) / om.length;
}

function addMeanStepVjp(c: number[][], g: number, gc: number[][]): void {
  const n = c.length - 1;
  for (let f = 0; f < n; f++) {
    const d = dist(c[f + 1]!, c[f]!);
    if (!(d > 0)) continue;
    for (let k = 0; k < 3; k++) {
      const u = (g * (c[f + 1]![k]! - c[f]![k]!)) / d / n;
      gc[f + 1]![k]! += u;
      gc[f]![k]! -= u;
    }
  }
}
