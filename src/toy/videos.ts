/**
 * Training and held-out videos of the learned toy world, shared by every toy model's trainer (the
 * VAE, the RGB geometry model Φ, the stitch, the denoiser) and by the fidelity tests, so they all
 * see one distribution and never train on a held-out scene.
 *
 * A video is a procedural scene (`src/world/scene.ts`) seen along one camera-path family, smooth or
 * jittered: the mixture covers both the small jitter of `vggrpo world` groups (≤ 0.04 world units,
 * 0.03 rad) and the strong jitter of the denoiser's pretraining videos (up to 0.35, 0.14), because
 * the geometry models must score both. Frames come at 64×64 (`VIDEO`), ground truth at the
 * geometry resolution 8×8 (`GEOMETRY`).
 *
 * @example
 *   const rng = new Rng(1);
 *   const v = sampleVideo(rng, 'train');           // frames [8,3,64,64] in [0,1] + ground truth
 */

import { rgb8ToUnitFrames } from '../media/vae.js';
import type { RenderedVideo, Scene, Trajectory, TrajectoryFamily } from '../world/index.js';
import { makeScene, makeTrajectory, Rng, renderVideo, TRAJECTORY_FAMILIES } from '../world/index.js';
import { GEOMETRY, VIDEO } from './spaces.js';

/** Scene seeds at or above this are held out: no toy model trains on them. */
export const HELD_OUT_SEED = 900_000;

export type Split = 'train' | 'heldout';

export interface JitterLevel {
  pos: number;
  rot: number;
}

export interface ToyVideo {
  scene: Scene;
  trajectory: Trajectory;
  family: TrajectoryFamily;
  dynamic: boolean;
  jitter: JitterLevel;
  /** [F, 3, H, W] float frames in [0, 1] (layout BF3HW without the batch). */
  frames: Float32Array;
  /** The 64×64 render (rgb [F,H,W,3] and ground truth at 64×64). */
  video: RenderedVideo;
  /** Ground truth at the geometry resolution 8×8 (depth, points, extrinsics, scene flow, …). */
  geometry: RenderedVideo;
}

/** RGB [F, H, W, 3] bytes → frames [F, 3, H, W] in [0, 1]. */
export function framesOf(v: RenderedVideo): Float32Array {
  return rgb8ToUnitFrames(v.rgb, v.frames, v.height, v.width);
}

/**
 * Render one scene along one trajectory at both toy resolutions; undefined when a camera lands
 * outside the room (non-finite or non-positive depth), so callers draw again.
 */
export function renderToyVideo(
  scene: Scene,
  trajectory: Trajectory,
  jitter: JitterLevel,
  dynamic: boolean,
): ToyVideo | undefined {
  const video = renderVideo(scene, trajectory, { height: VIDEO.height, width: VIDEO.width, fov: VIDEO.fov });
  const geometry = renderVideo(scene, trajectory, {
    height: GEOMETRY.height,
    width: GEOMETRY.width,
    fov: VIDEO.fov,
  });
  for (const d of geometry.depth) if (!(Number.isFinite(d) && d > 0)) return undefined;
  for (const d of video.depth) if (!(Number.isFinite(d) && d > 0)) return undefined;
  return {
    scene,
    trajectory,
    family: trajectory.family,
    dynamic,
    jitter,
    frames: framesOf(video),
    video,
    geometry,
  };
}

/**
 * A random video of the split: a fresh scene (train seeds below HELD_OUT_SEED, held-out seeds
 * above), a random family, dynamic with probability 1/2, and a camera that is smooth (30%), jittered
 * like `world` groups (40%, amplitude uniform up to 0.06 / 0.045 rad) or like pretraining videos
 * (30%, 25–100% of 0.35 / 0.14 rad).
 */
export function sampleVideo(rng: Rng, split: Split): ToyVideo {
  for (;;) {
    const seed = split === 'train' ? rng.int(0, HELD_OUT_SEED - 1) : HELD_OUT_SEED + rng.int(0, 1 << 24);
    const dynamic = rng.next() < 0.5;
    const scene = makeScene(seed, { dynamic });
    const family = TRAJECTORY_FAMILIES[rng.int(0, TRAJECTORY_FAMILIES.length - 1)]!;
    const u = rng.next();
    let jitter: JitterLevel = { pos: 0, rot: 0 };
    if (u >= 0.3 && u < 0.7) {
      const a = rng.next();
      jitter = { pos: 0.06 * a, rot: 0.045 * a };
    } else if (u >= 0.7) {
      const a = rng.uniform(0.25, 1);
      jitter = { pos: 0.35 * a, rot: 0.14 * a };
    }
    const trajectory = makeTrajectory(family, {
      frames: VIDEO.frames,
      jitterPos: jitter.pos,
      jitterRot: jitter.rot,
      seed: rng.int(0, 1 << 30),
    });
    const v = renderToyVideo(scene, trajectory, jitter, dynamic);
    if (v) return v;
  }
}

/**
 * Held-out fidelity groups, like `vggrpo world`'s: group g is one held-out scene and one family
 * (cycling through the four) seen with jitter rising linearly from 0 (the smooth member) to
 * `maxJitter` in `size` steps. Deterministic in `seed`.
 */
export function heldOutGroups(
  groups: number,
  size: number,
  seed = 0,
  maxJitter: JitterLevel = { pos: 0.04, rot: 0.03 },
): ToyVideo[][] {
  const out: ToyVideo[][] = [];
  const rng = new Rng(seed * 104_729 + 7);
  for (let g = 0; out.length < groups; g++) {
    const dynamic = g % 2 === 1;
    const scene = makeScene(HELD_OUT_SEED + rng.int(0, 1 << 24), { dynamic });
    const family = TRAJECTORY_FAMILIES[out.length % TRAJECTORY_FAMILIES.length]!;
    const members: ToyVideo[] = [];
    for (let m = 0; m < size; m++) {
      const level = m / (size - 1);
      const jitter = { pos: level * maxJitter.pos, rot: level * maxJitter.rot };
      const trajectory = makeTrajectory(family, {
        frames: VIDEO.frames,
        jitterPos: jitter.pos,
        jitterRot: jitter.rot,
        seed: seed * 7919 + g * 31 + m,
      });
      const v = renderToyVideo(scene, trajectory, jitter, dynamic);
      if (!v) break;
      members.push(v);
    }
    if (members.length === size) out.push(members);
  }
  return out;
}

export { Rng };
