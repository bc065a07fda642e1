/**
 * Camera paths through the toy room: smooth families (orbit, dolly, pan, arc) and the same paths
 * with seeded jitter of controlled amplitude, the "jittery camera" the motion reward penalises.
 * Paths stay inside the room of `makeScene` and look at its middle.
 */
import { lookAt } from '../geometry/cameras.js';
import { matMul3 } from '../geometry/mat3.js';
import { expSO3 } from '../geometry/so3.js';
import { Rng } from './random.js';

export const TRAJECTORY_FAMILIES = ['orbit', 'dolly', 'pan', 'arc'] as const;
export type TrajectoryFamily = (typeof TRAJECTORY_FAMILIES)[number];

export interface TrajectoryOptions {
  /** Number of frames (default 8). */
  frames?: number;
  /** Std of the per-frame position jitter, world units (default 0). */
  jitterPos?: number;
  /** Std of the per-frame rotation jitter per axis, radians, applied in the camera frame (default 0). */
  jitterRot?: number;
  /** Seed of the jitter (default 0). */
  seed?: number;
}

export interface Trajectory {
  family: TrajectoryFamily;
  frames: number;
  /** [F,3,4] camera-from-world, OpenCV axes. */
  extrinsics: Float64Array;
}

const TARGET = [0, 0.5, 0];

/** Eye and look-at point of a family at path parameter s ∈ [0, 1]. */
function smoothPose(family: TrajectoryFamily, s: number): { eye: number[]; target: number[] } {
  switch (family) {
    case 'orbit': {
      const a = -0.5 + 1.0 * s; // ~57° around the middle
      return { eye: [3.2 * Math.sin(a), 1.6, 3.2 * Math.cos(a)], target: TARGET };
    }
    case 'dolly': {
      // Straight push-in with a fixed viewing direction.
      const eye = [0.3, 1.5 - 0.2 * s, 3.6 - 1.0 * s];
      return { eye, target: [eye[0]! - 0.3, eye[1]! - 1.0, eye[2]! - 3.5] };
    }
    case 'pan': {
      const a = -0.45 + 0.9 * s; // yaw sweep from a fixed eye
      const eye = [0, 1.5, 3.4];
      return { eye, target: [eye[0]! + 3 * Math.sin(a), 0.6, eye[2]! - 3 * Math.cos(a)] };
    }
    case 'arc': {
      // Rising arc on one side while the look-at point slides: translation and rotation both curve.
      const a = 0.2 + 0.8 * s;
      return { eye: [3.4 * Math.sin(a), 1.1 + 0.8 * s, 3.4 * Math.cos(a)], target: [0.4 - 0.8 * s, 0.4, 0] };
    }
  }
}

/**
 * A camera path of `frames` poses; jitter perturbs each pose independently (position: isotropic
 * normal with std jitterPos; rotation: exp of a normal rotation vector with std jitterRot,
 * right-multiplied onto camera-to-world so it turns the camera about its own axes).
 *
 * @example
 *   const smooth = makeTrajectory('orbit', { frames: 8 });
 *   const shaky = makeTrajectory('orbit', { frames: 8, jitterPos: 0.02, jitterRot: 0.01, seed: 3 });
 */
export function makeTrajectory(family: TrajectoryFamily, options: TrajectoryOptions = {}): Trajectory {
  const frames = options.frames ?? 8;
  const jp = options.jitterPos ?? 0;
  const jr = options.jitterRot ?? 0;
  const rng = new Rng((options.seed ?? 0) * 7919 + 17);
  const extrinsics = new Float64Array(frames * 12);
  const rot = new Float64Array(9);
  const jit = new Float64Array(9);
  const w = new Float64Array(3);
  const tmp = new Float64Array(9);
  for (let f = 0; f < frames; f++) {
    const s = frames > 1 ? f / (frames - 1) : 0;
    const { eye, target } = smoothPose(family, s);
    const e = lookAt(eye, target);
    const c = [eye[0]!, eye[1]!, eye[2]!];
    for (let r = 0; r < 3; r++) for (let k = 0; k < 3; k++) rot[3 * r + k] = e[4 * r + k]!;
    if (jp > 0) for (let k = 0; k < 3; k++) c[k] = c[k]! + jp * rng.normal();
    if (jr > 0) {
      for (let k = 0; k < 3; k++) w[k] = jr * rng.normal();
      // Camera-to-world Rᵀ ← Rᵀ·J  ⇔  R ← Jᵀ·R.
      expSO3(w, jit);
      const jt = Float64Array.of(
        jit[0]!,
        jit[3]!,
        jit[6]!,
        jit[1]!,
        jit[4]!,
        jit[7]!,
        jit[2]!,
        jit[5]!,
        jit[8]!,
      );
      matMul3(jt, rot, tmp);
      rot.set(tmp);
    }
    const o = 12 * f;
    for (let r = 0; r < 3; r++) {
      let t = 0;
      for (let k = 0; k < 3; k++) {
        extrinsics[o + 4 * r + k] = rot[3 * r + k]!;
        t -= rot[3 * r + k]! * c[k]!;
      }
      extrinsics[o + 4 * r + 3] = t;
    }
  }
  return { family, frames, extrinsics };
}
