/**
 * Two-view geometry for the epipolar metric: the Sampson distance, Hartley's normalised
 * 8-point fundamental matrix and a RANSAC around it. opencv.js ships no findFundamentalMat,
 * so this is the whole estimator. Points are flat [N, 2] pixel coordinates (u, v).
 */
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { check } from '../errors.js';
import { type Mat3, matMul3, matMulT3, matTMul3 } from '../geometry/mat3.js';

export type Points2 = Float64Array | Float32Array | readonly number[];

/**
 * Sampson distance of the correspondence x₁ ↔ x₂ under F (pixels):
 * d = sqrt((x₂ᵀFx₁)² / ((Fx₁)₁² + (Fx₁)₂² + (Fᵀx₂)₁² + (Fᵀx₂)₂²)).
 * Invariant to the scale of F.
 *
 * @example
 *   sampsonDistance(F, 10, 20, 12, 21);
 */
export function sampsonDistance(
  F: ArrayLike<number>,
  u1: number,
  v1: number,
  u2: number,
  v2: number,
): number {
  const fx0 = F[0]! * u1 + F[1]! * v1 + F[2]!;
  const fx1 = F[3]! * u1 + F[4]! * v1 + F[5]!;
  const fx2 = F[6]! * u1 + F[7]! * v1 + F[8]!;
  const ftx0 = F[0]! * u2 + F[3]! * v2 + F[6]!;
  const ftx1 = F[1]! * u2 + F[4]! * v2 + F[7]!;
  const r = u2 * fx0 + v2 * fx1 + fx2;
  const den = fx0 * fx0 + fx1 * fx1 + ftx0 * ftx0 + ftx1 * ftx1;
  return den > 0 ? Math.sqrt((r * r) / den) : r === 0 ? 0 : Number.POSITIVE_INFINITY;
}

/** Sampson distances of all correspondences. */
export function sampsonDistances(F: ArrayLike<number>, p1: Points2, p2: Points2): Float64Array {
  const n = p1.length / 2;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++)
    out[i] = sampsonDistance(F, p1[2 * i]!, p1[2 * i + 1]!, p2[2 * i]!, p2[2 * i + 1]!);
  return out;
}

/** Hartley normalisation: centroid to the origin, mean distance √2. Returns T with x̂ = T·x. */
function normaliser(p: Points2, idx: ArrayLike<number>): Mat3 {
  let cx = 0;
  let cy = 0;
  for (let k = 0; k < idx.length; k++) {
    cx += p[2 * idx[k]!]!;
    cy += p[2 * idx[k]! + 1]!;
  }
  cx /= idx.length;
  cy /= idx.length;
  let dist = 0;
  for (let k = 0; k < idx.length; k++) dist += Math.hypot(p[2 * idx[k]!]! - cx, p[2 * idx[k]! + 1]! - cy);
  dist /= idx.length;
  const s = dist > 0 ? Math.SQRT2 / dist : 1;
  return Float64Array.of(s, 0, -s * cx, 0, s, -s * cy, 0, 0, 1);
}

function svd3(m: readonly number[]): { U: number[]; d: number[]; V: number[] } {
  const svd = new SingularValueDecomposition(new Matrix([m.slice(0, 3), m.slice(3, 6), m.slice(6, 9)]));
  return { U: svd.leftSingularVectors.to1DArray(), d: svd.diagonal, V: svd.rightSingularVectors.to1DArray() };
}

/**
 * Normalised 8-point algorithm (Hartley 1997) on the correspondences `idx` (all when omitted):
 * least-squares F of x₂ᵀFx₁ = 0 in normalised coordinates, rank 2 enforced, denormalised and
 * scaled to unit Frobenius norm. Returns null for fewer than 8 points or a degenerate system.
 *
 * @example
 *   const F = eightPoint(pts1, pts2); // Float64Array(9) row-major, or null
 */
export function eightPoint(p1: Points2, p2: Points2, idx?: ArrayLike<number>): Mat3 | null {
  check(p1.length === p2.length && p1.length % 2 === 0, 'eightPoint', 'expected two [N, 2] point sets');
  const ids = idx ?? Array.from({ length: p1.length / 2 }, (_, i) => i);
  if (ids.length < 8) return null;
  const T1 = normaliser(p1, ids);
  const T2 = normaliser(p2, ids);
  // Normal equations AᵀA (9×9): its eigenvector of the smallest eigenvalue minimises ‖A·f‖.
  // Conditioning is fine after Hartley normalisation, and it keeps every sample a fixed 9×9 SVD.
  const ata = new Float64Array(81);
  const row = new Float64Array(9);
  for (let k = 0; k < ids.length; k++) {
    const i = ids[k]!;
    const u1 = T1[0]! * p1[2 * i]! + T1[2]!;
    const v1 = T1[4]! * p1[2 * i + 1]! + T1[5]!;
    const u2 = T2[0]! * p2[2 * i]! + T2[2]!;
    const v2 = T2[4]! * p2[2 * i + 1]! + T2[5]!;
    row.set([u2 * u1, u2 * v1, u2, v2 * u1, v2 * v1, v2, u1, v1, 1]);
    for (let a = 0; a < 9; a++) {
      const ra = row[a]!;
      for (let b = a; b < 9; b++) ata[9 * a + b]! += ra * row[b]!;
    }
  }
  const rows: number[][] = [];
  for (let a = 0; a < 9; a++) {
    rows.push(Array.from({ length: 9 }, (_, b) => (b >= a ? ata[9 * a + b]! : ata[9 * b + a]!)));
  }
  if (!rows.every((r) => r.every(Number.isFinite))) return null;
  const svd = new SingularValueDecomposition(new Matrix(rows));
  const d = svd.diagonal;
  let min = 0;
  for (let k = 1; k < 9; k++) if (d[k]! < d[min]!) min = k;
  const f = svd.rightSingularVectors.getColumn(min);
  // Rank 2: zero the smallest singular value, so all epipolar lines meet in one epipole.
  const { U, d: s, V } = svd3(f);
  const order = [0, 1, 2].sort((a, b) => s[b]! - s[a]!);
  const S = [0, 0, 0];
  S[order[0]!] = s[order[0]!]!;
  S[order[1]!] = s[order[1]!]!;
  const US = U.map((u, k) => u * S[k % 3]!);
  const Fn = matMulT3(US, V);
  const F = matMul3(matTMul3(T2, Fn), T1);
  const norm = Math.hypot(...F);
  if (!(norm > 0) || !Number.isFinite(norm)) return null;
  return F.map((v) => v / norm);
}

export interface RansacOptions {
  /** Inlier threshold on the Sampson distance, pixels. Default 1. */
  threshold?: number;
  /** Upper bound on hypotheses. Default 2000. */
  maxIterations?: number;
  /** Stop once a better set is this unlikely to exist. Default 0.999. */
  confidence?: number;
  /** Seed of the sample choice, so the metric is deterministic. Default 0. */
  seed?: number;
}

export interface RansacResult {
  F: Mat3;
  inliers: Uint8Array;
  inlierCount: number;
  iterations: number;
}

/** mulberry32: a small seeded PRNG so RANSAC draws the same samples every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * RANSAC over minimal 8-point samples, scored by inlier count under the Sampson threshold, with
 * the adaptive iteration bound log(1 − p)/log(1 − w⁸); the winner is refitted on its inliers.
 * Returns null for fewer than 8 correspondences or no usable hypothesis.
 *
 * @example
 *   const fit = ransacFundamental(pts1, pts2, { threshold: 1 });
 */
export function ransacFundamental(p1: Points2, p2: Points2, opts: RansacOptions = {}): RansacResult | null {
  check(
    p1.length === p2.length && p1.length % 2 === 0,
    'ransacFundamental',
    'expected two [N, 2] point sets',
  );
  const n = p1.length / 2;
  if (n < 8) return null;
  const threshold = opts.threshold ?? 1;
  const maxIterations = opts.maxIterations ?? 2000;
  const confidence = opts.confidence ?? 0.999;
  const rand = seededRandom(opts.seed ?? 0);
  let best: Mat3 | null = null;
  let bestCount = -1;
  let bestErr = Number.POSITIVE_INFINITY;
  let needed = maxIterations;
  let it = 0;
  const sample = new Int32Array(8);
  for (; it < Math.min(needed, maxIterations); it++) {
    for (let k = 0; k < 8; k++) {
      let j: number;
      do j = Math.floor(rand() * n);
      while (sample.subarray(0, k).includes(j));
      sample[k] = j;
    }
    const F = eightPoint(p1, p2, sample);
    if (!F) continue;
    let count = 0;
    let err = 0;
    for (let i = 0; i < n; i++) {
      const d = sampsonDistance(F, p1[2 * i]!, p1[2 * i + 1]!, p2[2 * i]!, p2[2 * i + 1]!);
      if (d < threshold) {
        count++;
        err += d;
      }
    }
    // Ties in count (common with exact data) go to the smaller summed inlier error.
    if (count > bestCount || (count === bestCount && err < bestErr)) {
      best = F;
      bestCount = count;
      bestErr = err;
      const w = count / n;
      const miss = 1 - w ** 8;
      needed =
        miss <= 0 ? 0 : miss >= 1 ? maxIterations : Math.ceil(Math.log(1 - confidence) / Math.log(miss));
    }
  }
  if (!best) return null;
  let F = best;
  let inliers = mark(F, p1, p2, threshold);
  // Refit on the consensus set (least squares over all of it), keeping the refit only if it holds as many.
  const ids = indices(inliers);
  const refit = ids.length >= 8 ? eightPoint(p1, p2, ids) : null;
  if (refit) {
    const again = mark(refit, p1, p2, threshold);
    if (indices(again).length >= ids.length) {
      F = refit;
      inliers = again;
    }
  }
  return { F, inliers, inlierCount: indices(inliers).length, iterations: it };
}

function mark(F: ArrayLike<number>, p1: Points2, p2: Points2, threshold: number): Uint8Array {
  const d = sampsonDistances(F, p1, p2);
  return Uint8Array.from(d, (v) => (v < threshold ? 1 : 0));
}

function indices(mask: Uint8Array): number[] {
  const out: number[] = [];
  mask.forEach((m, i) => {
    if (m) out.push(i);
  });
  return out;
}
