/**
 * Sizes of the learned toy world (issue: stitching): RGB videos a person can watch, a VAE latent
 * space that holds only what the toy autoencoder learned from those videos, and the geometry
 * resolution every geometry model (the RGB model Φ and the stitched LGM) predicts at.
 *
 * | space | shape of one sample | made by |
 * |---|---|---|
 * | video | frames [F, 3, 64, 64] in [0, 1] (layout BF3HW) | `renderVideo` at 64×64, 60° field of view |
 * | latent | [C = 8, F' = 8, 16, 16] | `vae_encoder.onnx` (spatial ×4, temporal ×1) |
 * | geometry | depth [F', 8, 8], points [F', 8, 8, 3], … | `geometry_rgb.onnx` (Φ) or `lgm.onnx` |
 *
 * The analytic 14-channel latent space of `latent.ts` stays only as an exact-reference fixture.
 *
 * @example
 *   import { VIDEO, LATENT, GEOMETRY } from './spaces.js';
 *   const frameValues = VIDEO.frames * 3 * VIDEO.height * VIDEO.width;
 */

/** The toy world's RGB videos. */
export const VIDEO = {
  frames: 8,
  height: 64,
  width: 64,
  /** Vertical = horizontal field of view of every toy camera (radians). */
  fov: Math.PI / 3,
} as const;

/** The toy VAE's latent space (what `world` writes and the denoiser generates). */
export const LATENT = {
  channels: 8,
  /** Latent frames F' = 1 + (F − 1)/temporalCompression. */
  frames: 8,
  height: 16,
  width: 16,
  spatialCompression: 4,
  temporalCompression: 1,
} as const;

/** What every toy geometry model predicts per latent frame. */
export const GEOMETRY = {
  height: 8,
  width: 8,
} as const;

/** Elements of one latent sample [C, F', H, W]. */
export const LATENT_VALUES = LATENT.channels * LATENT.frames * LATENT.height * LATENT.width;

/** Elements of one video sample [F, 3, H, W]. */
export const VIDEO_VALUES = VIDEO.frames * 3 * VIDEO.height * VIDEO.width;
