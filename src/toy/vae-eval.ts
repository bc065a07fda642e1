/**
 * Measurements of the toy VAE (src/toy/vae.ts) shared by its trainer and its tests: the
 * reconstruction PSNR over videos and the per-channel statistics of its latents.
 *
 * @example
 *   const psnr = await heldOutPsnr(vaeModelsOf(weights), videos, 1);
 */
import { encodeModel } from '../onnx/model.js';
import { ModelSession } from '../runtime/session.js';
import { f32 } from '../shards/tensor.js';
import { LATENT, VIDEO, VIDEO_VALUES } from './spaces.js';
import { buildLearnedVaeDecoder, buildVaeEncoder } from './vae.js';

const { channels: C, frames: F, height: HL, width: WL } = LATENT;
const LATENT_FRAME = HL * WL;

/** The two models, as paths (the committed fixtures) or bytes. */
export interface VaeModels {
  encoder: string | Uint8Array;
  decoder: string | Uint8Array;
}

/**
 * The encoder and learned decoder built from `weights`, as model bytes.
 *
 * @example
 *   const models = vaeModelsOf(weights);
 */
export function vaeModelsOf(weights: ReadonlyMap<string, Float32Array>): VaeModels {
  return {
    encoder: encodeModel(buildVaeEncoder({ weights }).model),
    decoder: encodeModel(buildLearnedVaeDecoder({ weights }).model),
  };
}

/** Videos per encoder/decoder run (bounds memory). */
const CHUNK = 8;

/**
 * Latents [n, C, F, 16, 16] of `videos` (each [F, 3, 64, 64]) through the encoder built from
 * `weights`, concatenated.
 *
 * @example
 *   const z = await encodeVideos('onnx/fixtures/vae_encoder.onnx', videos, 1);
 */
export async function encodeVideos(
  encoder: string | Uint8Array,
  videos: Float32Array[],
  threads: number,
): Promise<Float32Array> {
  const s = await ModelSession.open(encoder, { threads });
  const per = C * F * LATENT_FRAME;
  const out = new Float32Array(videos.length * per);
  for (let i = 0; i < videos.length; i += CHUNK) {
    const part = videos.slice(i, i + CHUNK);
    const x = new Float32Array(part.length * VIDEO_VALUES);
    for (const [k, v] of part.entries()) x.set(v, k * VIDEO_VALUES);
    const res = await s.run({ frames: f32([part.length, F, 3, VIDEO.height, VIDEO.width], x) });
    out.set(res.latents!.data as Float32Array, i * per);
  }
  await s.release();
  return out;
}

/**
 * Frames [n, F, 3, 64, 64] decoded from latents [n, C, F, 16, 16] by the learned decoder.
 *
 * @example
 *   const frames = await decodeLatents('onnx/fixtures/vae_decoder_learned.onnx', z, n, 1);
 */
export async function decodeLatents(
  decoder: string | Uint8Array,
  latents: Float32Array,
  n: number,
  threads: number,
): Promise<Float32Array> {
  const s = await ModelSession.open(decoder, { threads });
  const per = C * F * LATENT_FRAME;
  const out = new Float32Array(n * VIDEO_VALUES);
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    const z = latents.subarray(i * per, (i + m) * per);
    const res = await s.run({ latents: f32([m, C, F, HL, WL], z) });
    out.set(res.frames!.data as Float32Array, i * VIDEO_VALUES);
  }
  await s.release();
  return out;
}

/**
 * Mean PSNR (dB, peak 1) over `videos` of encode → decode, each video's PSNR from its own MSE.
 *
 * @example
 *   const db = await heldOutPsnr(vaeModelsOf(weights), videos, 1);
 */
export async function heldOutPsnr(
  models: VaeModels,
  videos: Float32Array[],
  threads: number,
): Promise<number> {
  const z = await encodeVideos(models.encoder, videos, threads);
  return meanPsnr(videos, await decodeLatents(models.decoder, z, videos.length, threads));
}

/**
 * Mean over videos of each video's PSNR (dB, peak 1) of `recon` [n, F, 3, 64, 64] against it.
 *
 * @example
 *   meanPsnr(videos, recon);
 */
export function meanPsnr(videos: Float32Array[], rec: Float32Array): number {
  let sum = 0;
  videos.forEach((v, k) => {
    let se = 0;
    for (let i = 0; i < VIDEO_VALUES; i++) se += (rec[k * VIDEO_VALUES + i]! - v[i]!) ** 2;
    sum += -10 * Math.log10(se / VIDEO_VALUES);
  });
  return sum / videos.length;
}

/**
 * Per-channel mean and std of latents [n, C, F, H, W] over every video, frame and position.
 *
 * @example
 *   const { mean, std } = channelStats(z, n);
 */
export function channelStats(latents: Float32Array, n: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(C);
  const std = new Float64Array(C);
  const block = F * LATENT_FRAME;
  for (let c = 0; c < C; c++) {
    let s = 0;
    let s2 = 0;
    for (let v = 0; v < n; v++) {
      const o = (v * C + c) * block;
      for (let i = 0; i < block; i++) {
        const x = latents[o + i]!;
        s += x;
        s2 += x * x;
      }
    }
    const m = s / (n * block);
    mean[c] = m;
    std[c] = Math.sqrt(Math.max(s2 / (n * block) - m * m, 0));
  }
  return { mean, std };
}

/**
 * Per-channel latent mean and std of `videos` through the encoder of `weights`.
 *
 * @example
 *   const { mean, std } = await latentStats(vaeModelsOf(weights).encoder, videos, 1);
 */
export async function latentStats(
  encoder: string | Uint8Array,
  videos: Float32Array[],
  threads: number,
): Promise<{ mean: Float64Array; std: Float64Array }> {
  return channelStats(await encodeVideos(encoder, videos, threads), videos.length);
}
