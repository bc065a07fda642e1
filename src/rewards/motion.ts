/**
 * Camera motion smoothness (docs/METHOD.md, Rewards): with camera centres c_i = −R_iᵀt_i,
 *   v_i = c_{i+1} − c_i,  a_i = v_i − v_{i−1},  S_trans = mean_i ‖a_i‖ / (‖v_i‖ + ‖v_{i−1}‖ + eps),
 * S_rot likewise with the angular steps ω_i, and r_motion = ½·[1/(1+S_trans) + 1/(1+S_rot)] ∈ [½, 1].
 *
 * Which frame ω_i is expressed in (its norm does not depend on it, ω_i − ω_{i−1} does):
 *  - 'camera' (default): ω_i = log(C_iᵀ C_{i+1}) with C = Rᵀ the camera-to-world rotation, i.e.
 *    log(R_i R_{i+1}ᵀ) for our camera-from-world R — the step from camera i to camera i+1 in
 *    camera i's own axes. This is docs/METHOD.md's log_SO3(R_iᵀR_{i+1}) read with camera-to-world R.
 *  - 'world': ω_i = log(R_iᵀ R_{i+1}) taken literally with camera-from-world R: the (inverse)
 *    step expressed in world axes.
 * Both are invariant to moving the whole scene and camera rigidly; for a camera turning at a
 * constant rate about a fixed axis both give constant ω and S_rot = 0.
 *
 * eps: for translation it is eps × scene scale (median valid depth) by default, so the reward is
 * scale-free and a camera that does not translate (a pan: v ≈ float noise) scores S_trans ≈ 0
 * instead of noise/noise; epsUnit 'absolute' uses eps as it is. epsRot is in radians.
 *
 * The noise floor (option poseNoise, off by default — the paper's form): a learned geometry model's
 * cameras carry estimation noise, so an axis the camera does not move along (a dolly does not turn,
 * a pan does not translate) scores noise/noise, S ≈ 0.7, where exact poses give S ≈ 0 — and that
 * noise, not the camera, then decides the ranking. With poseNoise = {translation σ_t, rotation σ_r}
 * (the model's per-frame pose error std, per component: translation in eps's unit, rotation in
 * radians) an axis whose mean step is below noiseFloorFactor·√6·σ — √6·σ is the expected length
 * of a step made of noise alone (the difference of two 3-D errors) — counts as still: its S = 0,
 * as exact poses would give. Motion above the floor, jitter included, is scored as before.
 */

import { z } from 'zod';
import { InputError } from '../errors.js';
import { cameraCentre, cameraRotation } from '../geometry/cameras.js';
import { matMulT3, matTMul3 } from '../geometry/mat3.js';
import { logSO3 } from '../geometry/so3.js';
import { resolveOptions } from './options.js';
import { sceneScale } from './scale.js';
import type { GeometrySample, Reward } from './types.js';

export interface MotionOptions {
  /** Added to the translation denominators (in scene-scale units unless epsUnit = 'absolute'). */
  eps: number;
  epsUnit: 'scene' | 'absolute';
  /** Added to the rotation denominators, radians. */
  epsRot: number;
  rotationFrame: 'camera' | 'world';
  /** The geometry model's per-frame pose noise (std per component); null: no floor. */
  poseNoise: { translation: number; rotation: number } | null;
  /** An axis is still when its mean step is below this many noise-only steps (√6·σ). */
  noiseFloorFactor: number;
}

export const MOTION_DEFAULTS: Readonly<MotionOptions> = Object.freeze({
  eps: 1e-4,
  epsUnit: 'scene',
  epsRot: 1e-4,
  rotationFrame: 'camera',
  poseNoise: null,
  noiseFloorFactor: 2,
});

/**
 * Whether an axis whose mean step length is `meanStep` is still under the noise floor (see the
 * module comment); never with poseNoise null.
 *
 * @example
 *   belowNoiseFloor(0.001, 0.002, 2); // true: 0.001 < 2·√6·0.002
 */
export function belowNoiseFloor(meanStep: number, sigma: number | undefined, factor: number): boolean {
  return sigma !== undefined && meanStep < factor * Math.SQRT2 * Math.sqrt(3) * sigma;
}

export interface Smoothness {
  sTrans: number;
  sRot: number;
  reward: number;
}

/**
 * S_trans, S_rot and r_motion of F cameras (extrinsics [F,3,4], camera-from-world). Fewer than 3
 * frames have no acceleration: S = 0, r = 1. `scale` multiplies eps (pass 1 for absolute eps).
 *
 * @example
 *   cameraSmoothness(extrinsics, 8, MOTION_DEFAULTS, 1).reward; // 1 for a straight dolly
 */
export function cameraSmoothness(
  extrinsics: ArrayLike<number>,
  frames: number,
  options: MotionOptions = { ...MOTION_DEFAULTS },
  scale = 1,
): Smoothness {
  if (frames < 3) return { sTrans: 0, sRot: 0, reward: 1 };
  const c = new Float64Array(3 * frames);
  const w = new Float64Array(3 * (frames - 1));
  const ra = new Float64Array(9);
  const rb = new Float64Array(9);
  const rel = new Float64Array(9);
  const om = new Float64Array(3);
  const cf = new Float64Array(3);
  for (let f = 0; f < frames; f++) {
    cameraCentre(extrinsics, f, cf);
    c.set(cf, 3 * f);
  }
  for (let f = 0; f + 1 < frames; f++) {
    cameraRotation(extrinsics, f, ra);
    cameraRotation(extrinsics, f + 1, rb);
    if (options.rotationFrame === 'camera') matMulT3(ra, rb, rel);
    else matTMul3(ra, rb, rel);
    logSO3(rel, om);
    w.set(om, 3 * f);
  }
  const epsT = options.eps * scale;
  let sT = 0;
  let sR = 0;
  let stepT = 0;
  let stepR = 0;
  for (let i = 1; i + 1 < frames; i++) {
    // v_i = c_{i+1} − c_i and v_{i−1}; a_i = v_i − v_{i−1}.
    let vn = 0;
    let vp = 0;
    let an = 0;
    let wn = 0;
    let wp = 0;
    let dn = 0;
    for (let k = 0; k < 3; k++) {
      const v1 = c[3 * (i + 1) + k]! - c[3 * i + k]!;
      const v0 = c[3 * i + k]! - c[3 * (i - 1) + k]!;
      vn += v1 * v1;
      vp += v0 * v0;
      an += (v1 - v0) * (v1 - v0);
      const w1 = w[3 * i + k]!;
      const w0 = w[3 * (i - 1) + k]!;
      wn += w1 * w1;
      wp += w0 * w0;
      dn += (w1 - w0) * (w1 - w0);
    }
    sT += Math.sqrt(an) / (Math.sqrt(vn) + Math.sqrt(vp) + epsT);
    sR += Math.sqrt(dn) / (Math.sqrt(wn) + Math.sqrt(wp) + options.epsRot);
    if (i === 1) {
      stepT += Math.sqrt(vp);
      stepR += Math.sqrt(wp);
    }
    stepT += Math.sqrt(vn);
    stepR += Math.sqrt(wn);
  }
  sT /= frames - 2;
  sR /= frames - 2;
  const noise = options.poseNoise;
  const k = options.noiseFloorFactor;
  if (noise && belowNoiseFloor(stepT / (frames - 1), noise.translation * scale, k)) sT = 0;
  if (noise && belowNoiseFloor(stepR / (frames - 1), noise.rotation, k)) sR = 0;
  return { sTrans: sT, sRot: sR, reward: 0.5 * (1 / (1 + sT) + 1 / (1 + sR)) };
}

const SPEC = z
  .object({
    eps: z.number().min(0),
    epsUnit: z.enum(['scene', 'absolute']),
    epsRot: z.number().min(0),
    rotationFrame: z.enum(['camera', 'world']),
    poseNoise: z
      .object({ translation: z.number().nonnegative(), rotation: z.number().nonnegative() })
      .strict()
      .nullable(),
    noiseFloorFactor: z.number().positive(),
  })
  .partial()
  .strict();

/**
 * The camera motion smoothness reward of one video.
 *
 * @example
 *   motion.compute(sample); // in [0.5, 1]
 */
export const motion: Reward<MotionOptions> = {
  name: 'motion',
  description: 'camera motion smoothness ½[1/(1+S_trans) + 1/(1+S_rot)] ∈ [½, 1]',
  defaults: MOTION_DEFAULTS,
  parseOptions: (raw, where = 'rewards.motion.options') => resolveOptions(MOTION_DEFAULTS, SPEC, raw, where),
  compute(geom: GeometrySample, options?: Partial<MotionOptions>): number {
    const o = resolveOptions(MOTION_DEFAULTS, SPEC, options, 'rewards.motion.options');
    if (geom.extrinsics.length !== 12 * geom.frames) {
      throw new InputError('extrinsics', `${geom.extrinsics.length} values, expected ${12 * geom.frames}`);
    }
    let scale = 1;
    if (o.epsUnit === 'scene') {
      const s = sceneScale(geom.depth);
      // Without any valid depth fall back to the typical step length, which is scale-free too.
      scale = Number.isFinite(s) && s > 0 ? s : meanStep(geom.extrinsics, geom.frames);
    }
    return cameraSmoothness(geom.extrinsics, geom.frames, o, scale).reward;
  },
};

function meanStep(extrinsics: ArrayLike<number>, frames: number): number {
  const a = new Float64Array(3);
  const b = new Float64Array(3);
  let sum = 0;
  for (let f = 0; f + 1 < frames; f++) {
    cameraCentre(extrinsics, f, a);
    cameraCentre(extrinsics, f + 1, b);
    sum += Math.hypot(b[0]! - a[0]!, b[1]! - a[1]!, b[2]! - a[2]!);
  }
  return frames > 1 && sum > 0 ? sum / (frames - 1) : 1;
}
