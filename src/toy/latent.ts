/**
 * The toy latent space: what each of the C = 14 latent channels means and how it is scaled, shared
 * by the toy encoder (TypeScript), the analytic latent geometry model, the VAE decoder and the
 * pretraining data. Every channel is normalised to roughly unit scale so flow matching with unit
 * Gaussian noise treats them alike.
 *
 * | channels | content | normalisation |
 * |---|---|---|
 * | 0 | log-depth (z along the optical axis) | (log d − 1.0) / 0.6 |
 * | 1–3 | RGB | (c − 0.5) / 0.25 |
 * | 4–6 | camera translation t of camera-from-world [R\|t] | (t − μ_t) / s_t per component |
 * | 7–10 | camera quaternion (x, y, z, w) of R, sign with x ≥ 0 | (q − μ_q) / s_q per component |
 * | 11–13 | world-frame scene flow to the next frame | flow / 0.1 |
 *
 * Depth and flow live at the geometry resolution h×w = 8×8 and are nearest-upsampled ×2 to the
 * latent grid H×W = 16×16 (so a 2×2 average recovers them exactly); RGB is at the latent grid;
 * camera channels are constant over each frame's grid. The camera channels are standardised by
 * the spread of the toy cameras (not just scaled to unit range): toy paths differ by a few hundredths
 * in most quaternion components, and a denoiser reaches only so many hundredths of absolute
 * precision per channel, so unit-range channels would decode to cameras far jerkier than any path.
 *
 * @example
 *   import { TOY, CH, NORM } from './latent.js';
 *   const n = TOY.channels * TOY.frames * TOY.height * TOY.width; // one sample's latent size
 */

/** Sizes of the toy world (all static in the fixture models except the batch). */
export const TOY = {
  /** Latent channels C. */
  channels: 14,
  /** Frames F (latent frames = geometry frames = video frames). */
  frames: 8,
  /** Latent grid H × W. */
  height: 16,
  width: 16,
  /** Geometry model output h × w (stride 2 of the connector). */
  geoHeight: 8,
  geoWidth: 8,
  /** Decoded RGB frames Hr × Wr (VAE decoder upsamples the latent grid ×2). */
  frameHeight: 32,
  frameWidth: 32,
  /** Vertical = horizontal field of view of every toy camera (radians). */
  fov: Math.PI / 3,
  /** Text context length L and width D. */
  contextLength: 32,
  contextDim: 32,
} as const;

/** First channel of each latent field. */
export const CH = { logDepth: 0, rgb: 1, translation: 4, quaternion: 7, flow: 11 } as const;

/** Normalisation constants of the latent fields (see the table above). */
export const NORM = {
  logDepthMean: 1.0,
  logDepthScale: 0.6,
  rgbMean: 0.5,
  rgbScale: 0.25,
  /** Mean and spread of toy cameras' t (world units) and quaternions (x ≥ 0 hemisphere). */
  translationMean: [0, 0.45, 3.55],
  translationScale: [0.5, 0.15, 0.25],
  quaternionMean: [0.97, 0.01, -0.08, -0.15],
  quaternionScale: [0.035, 0.035, 0.18, 0.025],
  flowScale: 0.1,
} as const;

/** Elements of one sample's latent [C, F, H, W]. */
export const LATENT_SIZE = TOY.channels * TOY.frames * TOY.height * TOY.width;

/** Latent shape [C, F, H, W] of one sample. */
export const LATENT_SHAPE: readonly number[] = [TOY.channels, TOY.frames, TOY.height, TOY.width];

/**
 * Focal length in pixels of the toy cameras at an image height `size` (square pixels, VGGT
 * convention fy = (h/2)/tan(fov_h/2)).
 *
 * @example
 *   toyFocal(8); // ≈ 6.93
 */
export function toyFocal(size: number): number {
  return size / 2 / Math.tan(TOY.fov / 2);
}
