/**
 * The RGB reward path (`decode-geometry --via rgb`): final latents → VAE decoder (`models.vae_decoder`,
 * `vae.*` conventions) → frames in [0, 1] → the RGB geometry model Φ (`models.geometry`,
 * `geometry_outputs.*`) → the same geometry-shard form as the latent path. It is the baseline
 * the latent geometry model replaces (docs/METHOD.md): same rewards, one decode and the whole Φ
 * more per batch.
 *
 * With Wan's temporal compression t > 1 the decoder gives 1 + t·(F − 1) frames for F latent
 * frames; Φ sees the frames at the latent frames' positions 0, t, 2t, … so the geometry has one
 * entry per latent frame, as the LGM's does.
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { resizeBilinear } from '../media/resize.js';
import { VaeDecoder } from '../media/vae.js';
import { runtimeOptions } from '../rl/policy.js';
import { checkFeedShape } from '../runtime/contract.js';
import { ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';
import {
  checkGeometryOutputs,
  GEOMETRY_BATCH,
  type GeometryBatch,
  geometryFetch,
  readGeometryOutputs,
  runBatched,
} from './geometry-outputs.js';

export interface RgbPath {
  vae: VaeDecoder;
  phi: ModelSession;
  release(): Promise<void>;
}

/**
 * Open the VAE decoder and Φ, checking the contract first: both keys set and files present, Φ's
 * frames input and every mapped output there. Exit 2 naming the key or file.
 *
 * @example
 *   const rgb = await openRgbPath(config);
 */
export async function openRgbPath(config: Config): Promise<RgbPath> {
  for (const key of ['vae_decoder', 'geometry'] as const) {
    const path = config.models[key];
    if (!path)
      throw new InputError(
        `models.${key}`,
        `is not set; --via rgb needs the VAE decoder and the RGB geometry model Φ (give it in --config${key === 'geometry' ? ' or --geometry-model' : ''})`,
      );
    if (!existsSync(path)) throw new InputError(path, `model file not found (models.${key})`);
  }
  const vae = await VaeDecoder.open(config);
  if (!vae) throw new InputError(config.models.vae_decoder!, 'cannot open the VAE decoder');
  let phi: ModelSession | undefined;
  try {
    phi = await ModelSession.open(config.models.geometry!, runtimeOptions(config));
    const o = config.geometry_outputs;
    if (!phi.inputNames.includes(o.frames_input))
      throw new InputError(
        phi.source,
        `geometry model has no input '${o.frames_input}' (geometry_outputs.frames_input); it has ${phi.inputNames.join(', ')}`,
      );
    checkGeometryOutputs(phi, o, 'geometry_outputs');
  } catch (err) {
    await phi?.release();
    await vae.release();
    throw err;
  }
  const p = phi;
  return {
    vae,
    phi: p,
    release: async () => {
      await p.release();
      await vae.release();
    },
  };
}

/**
 * Frames [B, F_v, 3, H, W] → the F frames at latent positions 0, t, 2t, … ([B, F, 3, H, W]).
 *
 * @example
 *   atLatentFrames(frames, 4, 21); // Wan: 81 frames → 21
 */
export function atLatentFrames(frames: Tensor, t: number, latentFrames: number): Tensor {
  if (t === 1) return frames;
  const [B, Fv, C, H, W] = frames.shape as [number, number, number, number, number];
  const per = C * H * W;
  const out = new Float32Array(B * latentFrames * per);
  const src = frames.data as Float32Array;
  for (let b = 0; b < B; b++)
    for (let k = 0; k < latentFrames; k++) {
      const from = (b * Fv + k * t) * per;
      out.set(src.subarray(from, from + per), (b * latentFrames + k) * per);
    }
  return f32([B, latentFrames, C, H, W], out);
}

/**
 * Frames [B, F, 3, H, W] at `size` [H', W'] (bilinear, half-pixel centres), or as they are when
 * `size` is null (`geometry_outputs.frames_size`): VGGT-style models want their own input size.
 *
 * @example
 *   fitFrames(frames, [64, 64]);
 */
export function fitFrames(frames: Tensor, size: readonly number[] | null): Tensor {
  const [B, F, C, H, W] = frames.shape as [number, number, number, number, number];
  if (!size || (size[0] === H && size[1] === W)) return frames;
  const [h, w] = size as [number, number];
  return f32([B, F, C, h, w], resizeBilinear(frames.data as Float32Array, frames.shape, h, w));
}

/**
 * Final latents [B, C, F, H, W] → geometry via decode + Φ, in micro-batches (memory grows with
 * the batch, results do not depend on it).
 *
 * @example
 *   const g = await decodeViaRgb(rgb, config, finalLatents, 'shard-0000.safetensors');
 */
export async function decodeViaRgb(
  rgb: RgbPath,
  config: Config,
  latents: Tensor,
  from = 'final_latents',
  batch = GEOMETRY_BATCH,
): Promise<GeometryBatch> {
  const o = config.geometry_outputs;
  const F = latents.shape[2]!;
  const fetch = geometryFetch(rgb.phi, o);
  const outs = await runBatched(
    latents,
    batch,
    async (xb) => {
      const frames = fitFrames(
        atLatentFrames(await rgb.vae.decodeFrames(xb, from), config.vae.temporal_compression, F),
        o.frames_size,
      );
      checkFeedShape(
        rgb.phi.inputs,
        rgb.phi.source,
        o.frames_input,
        frames.shape,
        rgb.vae.source,
        'decoded frames at latent positions',
      );
      return rgb.phi.run({ [o.frames_input]: frames }, fetch);
    },
    fetch,
    rgb.phi.source,
  );
  return readGeometryOutputs(outs, o, 'geometry_outputs', rgb.phi.source);
}
