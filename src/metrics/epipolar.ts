/**
 * The paper's epipolar (Sampson) error on decoded RGB frames (Epipolar-DPO's metric; lower is
 * better): features matched between frame pairs with ratio test 0.75, a fundamental matrix per
 * pair, the mean Sampson distance of the pair's matches, then the mean over pairs. A pair with
 * fewer than 20 matches has no defined error (null), and so has a clip without any such pair:
 * a missing number is reported as missing, never as 0.
 *
 * Choices here (each an option): ORB instead of SIFT (opencv.js has no SIFT); F by RANSAC over
 * normalised 8-point samples, refitted on the inliers; the mean over *all* ratio-test matches,
 * so content that breaks a single rigid two-view geometry (the inconsistency being measured)
 * raises the error, while RANSAC keeps such matches from bending F itself. Distances are in
 * pixels of the original frames.
 */
import { check } from '../errors.js';
import type { Mat3 } from '../geometry/mat3.js';
import { type Detector, loadOpenCv, type MatchOptions, matchFeatures, rgbToGrey } from './features.js';
import {
  eightPoint,
  type Points2,
  type RansacOptions,
  ransacFundamental,
  sampsonDistances,
} from './fundamental.js';

export interface EpipolarOptions extends MatchOptions {
  /** Frames between the two of a pair; default from the clip length (see `defaultStride`). */
  stride?: number;
  /** Fewer ratio-test matches than this leaves a pair undefined. Default 20. */
  minMatches?: number;
  /** 'ransac' (default) or 'all': plain normalised 8-point over every match, as kornia's find_fundamental. */
  fit?: 'ransac' | 'all';
  /** Average the Sampson distance over 'all' matches (default) or the RANSAC 'inliers' only. */
  average?: 'all' | 'inliers';
  ransac?: RansacOptions;
}

export interface PairError {
  frames: [number, number];
  matches: number;
  /** RANSAC inliers (null when F came from all matches or could not be fitted). */
  inliers: number | null;
  /** Mean Sampson distance in pixels, or null when undefined for this pair. */
  error: number | null;
  /** Why `error` is null. */
  reason?: string;
}

export interface EpipolarResult {
  /** Mean over the defined pairs, in pixels; null when no pair is defined. */
  error: number | null;
  pairs: PairError[];
  validPairs: number;
  detector: Detector;
  stride: number;
  upsample: number;
  ratio: number;
  minMatches: number;
  fit: 'ransac' | 'all';
  average: 'all' | 'inliers';
}

/**
 * The paper samples frames every 15 in 81-frame clips (about 5 pairs per clip); shorter clips
 * keep that proportion: stride = round(15·(F − 1)/80), clamped to [1, 15].
 *
 * @example
 *   defaultStride(81); // 15
 *   defaultStride(9); // 2
 */
export function defaultStride(frameCount: number): number {
  return Math.min(15, Math.max(1, Math.round((15 * (frameCount - 1)) / 80)));
}

/** Pairs (0, s), (s, 2s), … of frames spaced by `stride` inside a clip of `frameCount` frames. */
export function framePairs(frameCount: number, stride: number): [number, number][] {
  check(
    Number.isInteger(stride) && stride >= 1,
    'framePairs',
    `stride must be a positive integer, got ${stride}`,
  );
  const out: [number, number][] = [];
  for (let a = 0; a + stride < frameCount; a += stride) out.push([a, a + stride]);
  return out;
}

/**
 * Epipolar error of one pair from its matches; pure (no opencv), so it is testable on synthetic
 * correspondences.
 *
 * @example
 *   const { error } = pairSampsonError(p1, p2); // null when fewer than 20 matches
 */
export function pairSampsonError(
  p1: Points2,
  p2: Points2,
  opts: Pick<EpipolarOptions, 'minMatches' | 'fit' | 'average' | 'ransac'> = {},
): { error: number | null; inliers: number | null; reason?: string } {
  const n = p1.length / 2;
  const minMatches = opts.minMatches ?? 20;
  if (n < Math.max(8, minMatches))
    return { error: null, inliers: null, reason: `${n} matches < ${minMatches}` };
  let F: Mat3 | null;
  let inlierMask: Uint8Array | null = null;
  if ((opts.fit ?? 'ransac') === 'ransac') {
    const fit = ransacFundamental(p1, p2, opts.ransac);
    F = fit?.F ?? null;
    inlierMask = fit?.inliers ?? null;
  } else {
    F = eightPoint(p1, p2);
  }
  if (!F) return { error: null, inliers: null, reason: 'degenerate matches: no fundamental matrix' };
  const d = sampsonDistances(F, p1, p2);
  const inliers = inlierMask ? inlierMask.reduce((s, v) => s + v, 0) : null;
  let sum = 0;
  let count = 0;
  d.forEach((v, i) => {
    if ((opts.average ?? 'all') === 'all' || !inlierMask || inlierMask[i]) {
      sum += v;
      count++;
    }
  });
  if (count === 0 || !Number.isFinite(sum)) return { error: null, inliers, reason: 'no finite distances' };
  return { error: sum / count, inliers };
}

/**
 * Epipolar error of a decoded clip, RGB bytes [F, H, W, 3].
 *
 * @example
 *   const r = await epipolarError(rgb, { frames: 16, height: 64, width: 64 });
 *   console.log(r.detector, r.error ?? 'undefined');
 */
export async function epipolarError(
  rgb: Uint8Array,
  dims: { frames: number; height: number; width: number },
  opts: EpipolarOptions = {},
): Promise<EpipolarResult> {
  const { frames, height, width } = dims;
  check(
    rgb.length === frames * height * width * 3,
    'epipolarError',
    `expected RGB [${frames}, ${height}, ${width}, 3] = ${frames * height * width * 3} bytes, got ${rgb.length}`,
  );
  const stride = opts.stride ?? defaultStride(frames);
  const minMatches = opts.minMatches ?? 20;
  const detector = opts.detector ?? 'ORB';
  const pairs = framePairs(frames, stride);
  const { cv } = await loadOpenCv();
  const grey = new Map<number, ReturnType<typeof rgbToGrey>>();
  const frame = (f: number) => {
    let g = grey.get(f);
    if (!g) grey.set(f, (g = rgbToGrey(rgb, width, height, f * height * width * 3)));
    return g;
  };
  const results: PairError[] = [];
  let upsample = 1;
  for (const [a, b] of pairs) {
    const m = matchFeatures(cv, frame(a), frame(b), { ...opts, detector });
    upsample = m.upsample;
    const e = pairSampsonError(m.p1, m.p2, { ...opts, minMatches });
    results.push({
      frames: [a, b],
      matches: m.count,
      inliers: e.inliers,
      error: e.error,
      ...(e.reason ? { reason: e.reason } : {}),
    });
  }
  const valid = results.filter((p) => p.error !== null);
  return {
    error: valid.length ? valid.reduce((s, p) => s + p.error!, 0) / valid.length : null,
    pairs: results,
    validPairs: valid.length,
    detector,
    stride,
    upsample,
    ratio: opts.ratio ?? 0.75,
    minMatches,
    fit: opts.fit ?? 'ransac',
    average: opts.average ?? 'all',
  };
}
