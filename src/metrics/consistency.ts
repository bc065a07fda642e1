/**
 * Per-video world-consistency metrics read from geometry: camera jitter (S_trans, S_rot),
 * reprojection error (mean and worst-3 views) and, when ground truth travels with the shard,
 * trajectory errors (ATE after Sim(3) alignment, RPE, rotation) and depth error.
 */

import { cameraRotation } from '../geometry/cameras.js';
import { matMulT3 } from '../geometry/mat3.js';
import { geodesicAngle } from '../geometry/so3.js';
import { cameraSmoothness, MOTION_DEFAULTS } from '../rewards/motion.js';
import { REPROJECTION_DEFAULTS, reprojectionConsistency } from '../rewards/reprojection.js';
import { sceneScale } from '../rewards/scale.js';
import type { GeometrySample } from '../rewards/types.js';
import { absoluteTrajectoryError, relativePoseError } from './trajectory.js';

/**
 * Mean geodesic angle (degrees) between estimated and reference rotations relative to the first
 * frame (R_f·R_0ᵀ). Gauge-free: it needs no alignment, which camera centres alone cannot fix
 * when they barely move (a pan).
 */
export function relativeRotationErrorDeg(
  est: ArrayLike<number>,
  ref: ArrayLike<number>,
  frames: number,
): number {
  const e0 = cameraRotation(est, 0);
  const r0 = cameraRotation(ref, 0);
  let sum = 0;
  for (let f = 1; f < frames; f++) {
    sum += geodesicAngle(matMulT3(cameraRotation(est, f), e0), matMulT3(cameraRotation(ref, f), r0));
  }
  return frames > 1 ? ((sum / (frames - 1)) * 180) / Math.PI : 0;
}

export interface VideoMetrics {
  sTrans: number;
  sRot: number;
  reprojMean: number;
  reprojWorst3: number;
  /** Share of each view's valid pixels the reprojection scores, averaged over views. */
  coverage: number;
  /** Against ground truth (null without it). */
  ate: number | null;
  rpeTrans: number | null;
  rpeRotDeg: number | null;
  rotErrDeg: number | null;
  depthRelErr: number | null;
}

export interface GroundTruth {
  extrinsics: Float32Array;
  depth: Float32Array;
}

/**
 * @example
 *   const m = videoMetrics(sliceGeometry(batch, 0, F, h, w));
 */
export function videoMetrics(g: GeometrySample, gt?: GroundTruth): VideoMetrics {
  const scale = sceneScale(g.depth);
  const sm = cameraSmoothness(
    g.extrinsics,
    g.frames,
    MOTION_DEFAULTS,
    Number.isFinite(scale) && scale > 0 ? scale : 1,
  );
  let reprojMean = Number.NaN;
  let reprojWorst3 = Number.NaN;
  let coverage = Number.NaN;
  try {
    const r = reprojectionConsistency(g, REPROJECTION_DEFAULTS);
    coverage = r.coverage.reduce((a, b) => a + b, 0) / Math.max(1, r.coverage.length);
    const e = [...r.viewErrors].filter(Number.isFinite).sort((a, b) => b - a);
    if (e.length) {
      reprojMean = e.reduce((a, b) => a + b, 0) / e.length;
      const k = Math.min(REPROJECTION_DEFAULTS.worstViews, e.length);
      reprojWorst3 = e.slice(0, k).reduce((a, b) => a + b, 0) / k;
    }
  } catch {
    // degenerate geometry: metrics stay NaN
  }
  const out: VideoMetrics = {
    sTrans: sm.sTrans,
    sRot: sm.sRot,
    reprojMean,
    reprojWorst3,
    coverage,
    ate: null,
    rpeTrans: null,
    rpeRotDeg: null,
    rotErrDeg: null,
    depthRelErr: null,
  };
  if (gt) {
    try {
      const ate = absoluteTrajectoryError(g.extrinsics as Float32Array, gt.extrinsics);
      const rpe = relativePoseError(g.extrinsics as Float32Array, gt.extrinsics, {
        scale: ate.alignment.scale,
      });
      out.ate = ate.rmse;
      out.rotErrDeg = relativeRotationErrorDeg(g.extrinsics, gt.extrinsics, g.frames);
      out.rpeTrans = rpe.translationRmse;
      out.rpeRotDeg = rpe.rotationMeanDeg;
    } catch {
      // non-finite cameras: no trajectory metrics
    }
    let s = 0;
    let n = 0;
    for (let i = 0; i < gt.depth.length; i++) {
      const d = gt.depth[i]!;
      const e = g.depth[i]!;
      if (d > 0 && Number.isFinite(e)) {
        s += Math.abs(e - d) / d;
        n++;
      }
    }
    out.depthRelErr = n ? s / n : null;
  }
  return out;
}
