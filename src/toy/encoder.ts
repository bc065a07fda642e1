/**
 * The toy "VAE encoder": a rendered toy-world video → latents [C, F, H, W] of the toy latent
 * space (`latent.ts`). Geometry (log-depth, scene flow) comes from a render at the geometry
 * resolution h×w and is nearest-upsampled ×2, so the latent geometry model's 2×2 average gives
 * it back exactly; colour comes from a render at the latent resolution; cameras are written as
 * constant channels.
 *
 * @example
 *   const { latents } = encodeScene(makeScene(3), makeTrajectory('orbit', { frames: 8 }));
 */

import { InputError } from '../errors.js';
import { matrixToQuat } from '../geometry/so3.js';
import { type RenderedVideo, renderVideo } from '../world/render.js';
import type { Scene } from '../world/scene.js';
import type { Trajectory } from '../world/trajectory.js';
import { CH, LATENT_SIZE, NORM, TOY } from './latent.js';

export interface EncodedVideo {
  /** [C, F, H, W] toy latents. */
  latents: Float32Array;
  /** Ground truth at the geometry model's resolution h×w (what the LGM should output). */
  geometry: RenderedVideo;
  /** The colour render at the latent resolution H×W. */
  colour: RenderedVideo;
}

/**
 * Unit quaternion (x, y, z, w) of a rotation, on the hemisphere x ≥ 0. Toy cameras are all near
 * a half-turn about the world x axis (OpenCV y-down looking at the room), where w is near 0 and
 * would flip sign between frames; x stays far from 0, so fixing its sign keeps the channels smooth.
 *
 * @example
 *   toyQuaternion(Float64Array.of(1, 0, 0, 0, -1, 0, 0, 0, -1)); // [1, 0, 0, 0]
 */
export function toyQuaternion(rotation: ArrayLike<number>): Float64Array {
  const q = matrixToQuat(rotation);
  if (q[0]! < 0 || (q[0] === 0 && q[3]! < 0)) for (let k = 0; k < 4; k++) q[k] = -q[k]!;
  return q;
}

/**
 * Latents [C, F, H, W] from a geometry render (h×w = 8×8) and a colour render (H×W = 16×16) of
 * the same scene and camera path.
 *
 * @example
 *   const latents = encodeRendered(renderVideo(scene, traj, { height: 8 }), renderVideo(scene, traj, { height: 16 }));
 */
export function encodeRendered(geometry: RenderedVideo, colour: RenderedVideo): Float32Array {
  const { frames: F, height: H, width: W, geoHeight: h, geoWidth: w } = TOY;
  if (geometry.frames !== F || colour.frames !== F) {
    throw new InputError('toy encoder', `expected ${F} frames, got ${geometry.frames} and ${colour.frames}`);
  }
  if (geometry.height !== h || geometry.width !== w) {
    throw new InputError(
      'toy encoder',
      `geometry render must be ${h}×${w}, got ${geometry.height}×${geometry.width}`,
    );
  }
  if (colour.height !== H || colour.width !== W) {
    throw new InputError(
      'toy encoder',
      `colour render must be ${H}×${W}, got ${colour.height}×${colour.width}`,
    );
  }
  const out = new Float32Array(LATENT_SIZE);
  const plane = H * W;
  const at = (c: number, f: number) => (c * F + f) * plane;
  const rot = new Float64Array(9);
  for (let f = 0; f < F; f++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const g = f * h * w + (i >> 1) * w + (j >> 1);
        const p = i * W + j;
        out[at(CH.logDepth, f) + p] = (Math.log(geometry.depth[g]!) - NORM.logDepthMean) / NORM.logDepthScale;
        for (let k = 0; k < 3; k++) {
          out[at(CH.flow + k, f) + p] = geometry.sceneFlow[3 * g + k]! / NORM.flowScale;
          const c = colour.rgb[3 * (f * plane + p) + k]! / 255;
          out[at(CH.rgb + k, f) + p] = (c - NORM.rgbMean) / NORM.rgbScale;
        }
      }
    }
    const e = geometry.extrinsics;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) rot[3 * r + c] = e[12 * f + 4 * r + c]!;
    const q = toyQuaternion(rot);
    for (let k = 0; k < 3; k++) {
      const t = (e[12 * f + 4 * k + 3]! - NORM.translationMean[k]!) / NORM.translationScale[k]!;
      out.fill(t, at(CH.translation + k, f), at(CH.translation + k, f) + plane);
    }
    for (let k = 0; k < 4; k++) {
      const qn = (q[k]! - NORM.quaternionMean[k]!) / NORM.quaternionScale[k]!;
      out.fill(qn, at(CH.quaternion + k, f), at(CH.quaternion + k, f) + plane);
    }
  }
  return out;
}

/**
 * Render `scene` along `traj` at both toy resolutions (toy field of view) and encode it.
 *
 * @example
 *   const { latents, geometry } = encodeScene(makeScene(1, { dynamic: true }), makeTrajectory('arc'));
 */
export function encodeScene(scene: Scene, traj: Trajectory): EncodedVideo {
  const geometry = renderVideo(scene, traj, { height: TOY.geoHeight, width: TOY.geoWidth, fov: TOY.fov });
  const colour = renderVideo(scene, traj, { height: TOY.height, width: TOY.width, fov: TOY.fov });
  return { latents: encodeRendered(geometry, colour), geometry, colour };
}
