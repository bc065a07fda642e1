/**
 * Geometry reprojection consistency (docs/METHOD.md, Rewards): build the scene's point cloud from the
 * frames' world points, z-buffer render it into each view i to get D̂_i, take the error E_i of D̂_i
 * against the view's own depth D_i over its valid pixels, and score the worst views:
 * r_geo = −mean(top-k E_i) ('neg_mean', default, optimum 0) or 1/(1 + mean(top-k E_i)) ('inverse').
 *
 * Defaults and why:
 *  - leave-one-out: view i is rendered from every frame's points except its own; with its own
 *    points in, the z-buffer could only reveal errors in front of D_i.
 *  - dynamic scenes: points whose scene-flow magnitude exceeds τ·scale leave the cloud, and such
 *    pixels of view i are not scored (their surface has moved, D̂ cannot match). A model with a
 *    dynamic-mask output (`lgm_outputs.dynamic_mask`) can say so directly: dynamicMask 'exclude'
 *    also drops pixels whose mask exceeds dynamicMaskThreshold (off by default: the paper's
 *    reward reads scene flow only, and a mask the model gets wrong would hide inconsistency).
 *  - relative error |D̂ − D|/D: far surfaces do not dominate (pitfall 1); 'absolute' divides by the
 *    scene scale instead, and percentileCap clips each view's errors at that percentile.
 *  - scene scale = median valid depth of the video: τ and the absolute error are in its units,
 *    so the reward does not depend on the model's metric scale.
 *  - confidence: 'weight' (pixel errors weighted by confidence), 'mask' (pixels and points with
 *    confidence ≤ threshold dropped) or 'none'.
 *  - a view that other frames barely cover (under minCoverage of its valid pixels get a rendered
 *    depth) scores uncoveredError: geometry that flies off-screen must not look consistent.
 */

import { z } from 'zod';
import { InputError } from '../errors.js';
import { depthFromPoints } from '../geometry/unproject.js';
import { DepthSplatter, pointCloudFromFrames, type SplatOptions } from '../geometry/zbuffer.js';
import { resolveOptions } from './options.js';
import { kthSmallest, medianInPlace } from './scale.js';
import type { GeometrySample, Reward } from './types.js';

export interface ReprojectionOptions {
  /** Leave view i's own points out of its render. */
  leaveOneOut: boolean;
  /** D_i from the depth output ('depth') or as the z of the frame's own points in its camera ('points'). */
  depthSource: 'depth' | 'points';
  /** τ: points moving more than τ·scale per frame are dynamic. Infinity keeps all. */
  dynamicThreshold: number;
  /** 'exclude': pixels the model's dynamic mask marks (> dynamicMaskThreshold) are dropped like moving ones; 'ignore': the mask is not read. */
  dynamicMask: 'ignore' | 'exclude';
  dynamicMaskThreshold: number;
  confidence: 'weight' | 'mask' | 'none';
  /** For confidence 'mask': keep confidence > threshold. */
  confidenceThreshold: number;
  error: 'relative' | 'absolute';
  /** Percentile (0–100] at which each view's pixel errors are capped; null: no cap. */
  percentileCap: number | null;
  /** k of the worst-k views. */
  worstViews: number;
  form: 'neg_mean' | 'inverse';
  minCoverage: number;
  uncoveredError: number;
  /** Z-buffer splat footprint multiplier (see geometry/zbuffer.ts). */
  splatScale: number;
  /** Relative depth band of splat blending; 0 = plain nearest-point z-buffer. */
  blendTolerance: number;
  /** Relative depth step of the support (hole) test; 0 disables it. */
  holeTolerance: number;
  /** Largest splat half-width, pixels. */
  maxSplatRadius: number;
}

export const REPROJECTION_DEFAULTS: Readonly<ReprojectionOptions> = Object.freeze({
  leaveOneOut: true,
  depthSource: 'depth',
  dynamicThreshold: 0.01,
  dynamicMask: 'ignore',
  dynamicMaskThreshold: 0.5,
  confidence: 'weight',
  confidenceThreshold: 0,
  error: 'relative',
  percentileCap: null,
  worstViews: 3,
  form: 'neg_mean',
  minCoverage: 0.05,
  uncoveredError: 1,
  splatScale: 1,
  blendTolerance: 0.05,
  holeTolerance: 0.1,
  maxSplatRadius: 4,
} as ReprojectionOptions);

// Infinity is a meaningful dynamicThreshold ("keep all points"); everything else is finite.
const SPEC = z
  .object({
    leaveOneOut: z.boolean(),
    depthSource: z.enum(['depth', 'points']),
    dynamicThreshold: z.union([z.number().min(0), z.literal(Number.POSITIVE_INFINITY)]),
    dynamicMask: z.enum(['ignore', 'exclude']),
    dynamicMaskThreshold: z.number().min(0).max(1),
    confidence: z.enum(['weight', 'mask', 'none']),
    confidenceThreshold: z.number(),
    error: z.enum(['relative', 'absolute']),
    percentileCap: z.number().min(0).max(100).nullable(),
    worstViews: z.number().int().min(1),
    form: z.enum(['neg_mean', 'inverse']),
    minCoverage: z.number().min(0).max(1),
    uncoveredError: z.number().min(0),
    splatScale: z.number().min(0),
    blendTolerance: z.number().min(0),
    holeTolerance: z.number().min(0).max(1),
    maxSplatRadius: z.number().min(0.5),
  })
  .partial()
  .strict();

export interface ReprojectionDetail {
  reward: number;
  /** E_i per view. */
  viewErrors: Float64Array;
  /** Fraction of each view's valid pixels that the other frames cover. */
  coverage: Float64Array;
  /** Median valid depth. */
  scale: number;
}

/**
 * Per-view errors and the reward of one video.
 *
 * @example
 *   reprojectionConsistency(sample).viewErrors; // E_i, i = 0..F−1
 */
export function reprojectionConsistency(
  geom: GeometrySample,
  options: Partial<ReprojectionOptions> = {},
): ReprojectionDetail {
  const o = resolveOptions(REPROJECTION_DEFAULTS, SPEC, options, 'rewards.reprojection.options');
  const { frames: F, height: h, width: w } = geom;
  const hw = h * w;
  const n = F * hw;
  checkSizes(geom);
  // Non-finite cameras make every render meaningless: report NaN so the sample is flagged
  // (and given its group's worst reward) instead of silently scoring "uncovered".
  if (!allFinite(geom.extrinsics) || !allFinite(geom.intrinsics)) {
    const nan = new Float64Array(F).fill(Number.NaN);
    return { reward: Number.NaN, viewErrors: nan, coverage: new Float64Array(F), scale: Number.NaN };
  }
  const depth =
    o.depthSource === 'points' ? depthFromPoints(geom.points, geom.extrinsics, F, hw) : geom.depth;

  // Scene scale: median of the valid depths.
  const tmp = new Float64Array(n);
  let nv = 0;
  for (let p = 0; p < n; p++) {
    const d = depth[p]!;
    if (d > 0 && d < Number.POSITIVE_INFINITY) tmp[nv++] = d;
  }
  const scale = medianInPlace(tmp, nv);
  const viewErrors = new Float64Array(F);
  const coverage = new Float64Array(F);
  if (!(scale > 0)) {
    viewErrors.fill(o.uncoveredError);
    return { reward: finish(viewErrors, o), viewErrors, coverage, scale };
  }

  // Which pixels may be scored and which points enter the cloud.
  const usable = usableMask(geom, depth, o, scale);
  const conf = geom.confidence;
  const cloud = pointCloudFromFrames(geom.points, geom.extrinsics, geom.intrinsics, F, hw, usable);
  const splatter = new DepthSplatter(h, w);
  const splat: SplatOptions = {
    splatScale: o.splatScale,
    minRadius: 0.5,
    maxRadius: o.maxSplatRadius,
    blendTolerance: o.blendTolerance,
    holeTolerance: o.holeTolerance,
    near: 1e-6 * scale,
  };
  const dhat = new Float32Array(hw);
  const errs = new Float64Array(hw);
  const wts = new Float64Array(hw);
  const capBuf = o.percentileCap !== null ? new Float64Array(hw) : null;
  const useWeight = o.confidence === 'weight' && conf !== undefined;
  for (let i = 0; i < F; i++) {
    const from = o.leaveOneOut ? cloud.frameStart[i]! : 0;
    const to = o.leaveOneOut ? cloud.frameStart[i + 1]! : 0;
    splatter.render(cloud, geom.extrinsics, 12 * i, geom.intrinsics, 9 * i, dhat, splat, from, to);
    let valid = 0;
    let m = 0;
    for (let q = 0; q < hw; q++) {
      const p = i * hw + q;
      if (!usable[p]) continue;
      valid++;
      const r = dhat[q]!;
      if (r === 0) continue;
      const d = depth[p]!;
      errs[m] = Math.abs(r - d) / (o.error === 'relative' ? d : scale);
      wts[m] = useWeight ? Math.max(0, conf![p]!) : 1;
      m++;
    }
    coverage[i] = valid > 0 ? m / valid : 0;
    if (valid === 0 || m / valid < o.minCoverage) {
      viewErrors[i] = o.uncoveredError;
      continue;
    }
    if (capBuf) {
      capBuf.set(errs.subarray(0, m));
      const k = Math.min(m - 1, Math.max(0, Math.ceil((o.percentileCap! / 100) * m) - 1));
      const cap = kthSmallest(capBuf, m, k);
      for (let q = 0; q < m; q++) if (errs[q]! > cap) errs[q] = cap;
    }
    let se = 0;
    let sw = 0;
    for (let q = 0; q < m; q++) {
      se += wts[q]! * errs[q]!;
      sw += wts[q]!;
    }
    viewErrors[i] = sw > 0 ? se / sw : o.uncoveredError;
  }
  return { reward: finish(viewErrors, o), viewErrors, coverage, scale };
}

/**
 * The pixels a view may be scored on and that enter the point cloud: valid depth, confidence
 * above the threshold (with confidence 'mask'), not moving more than τ·scale (scene flow), and
 * with dynamicMask 'exclude' not marked dynamic by the model's mask.
 */
export function usableMask(
  geom: GeometrySample,
  depth: ArrayLike<number>,
  o: ReprojectionOptions,
  scale: number,
): Uint8Array {
  const n = depth.length;
  const usable = new Uint8Array(n);
  const conf = geom.confidence;
  const flow = geom.sceneFlow;
  const dyn = o.dynamicMask === 'exclude' ? geom.dynamicMask : undefined;
  const tau2 = (o.dynamicThreshold * scale) ** 2;
  for (let p = 0; p < n; p++) {
    const d = depth[p]!;
    if (!(d > 0 && d < Number.POSITIVE_INFINITY)) continue;
    if (o.confidence === 'mask' && conf && !(conf[p]! > o.confidenceThreshold)) continue;
    if (dyn && dyn[p]! > o.dynamicMaskThreshold) continue;
    if (flow) {
      const f0 = flow[3 * p]!;
      const f1 = flow[3 * p + 1]!;
      const f2 = flow[3 * p + 2]!;
      if (f0 * f0 + f1 * f1 + f2 * f2 > tau2) continue;
    }
    usable[p] = 1;
  }
  return usable;
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

/** Every array of a sample must match frames × height × width. */
export function checkSizes(geom: GeometrySample): void {
  const { frames: F, height: h, width: w } = geom;
  const n = F * h * w;
  const expect: [string, ArrayLike<number> | undefined, number][] = [
    ['depth', geom.depth, n],
    ['points', geom.points, 3 * n],
    ['confidence', geom.confidence, n],
    ['extrinsics', geom.extrinsics, 12 * F],
    ['intrinsics', geom.intrinsics, 9 * F],
    ['scene_flow', geom.sceneFlow, 3 * n],
  ];
  for (const [name, a, len] of expect) {
    if (a !== undefined && a.length !== len) {
      throw new InputError(name, `${a.length} values, expected ${len} for ${F} frames of ${h}×${w}`);
    }
  }
}

/** Mean of the k largest view errors, turned into the reward form. */
function finish(viewErrors: Float64Array, o: ReprojectionOptions): number {
  const sorted = Float64Array.from(viewErrors).sort();
  const k = Math.min(o.worstViews, sorted.length);
  let s = 0;
  for (let q = sorted.length - k; q < sorted.length; q++) s += sorted[q]!;
  const mean = k > 0 ? s / k : 0;
  return o.form === 'inverse' ? 1 / (1 + mean) : -mean;
}

/**
 * The geometry reprojection consistency reward of one video.
 *
 * @example
 *   reprojection.compute(sample); // ≤ 0, 0 = perfectly consistent ('neg_mean')
 */
export const reprojection: Reward<ReprojectionOptions> = {
  name: 'reprojection',
  description: 'geometry reprojection consistency: −mean of the worst-3 views’ relative depth errors',
  defaults: REPROJECTION_DEFAULTS,
  parseOptions: (raw, where = 'rewards.reprojection.options') =>
    resolveOptions(REPROJECTION_DEFAULTS, SPEC, raw, where),
  compute: (geom, options) => reprojectionConsistency(geom, options).reward,
};
