/**
 * The VAE, both ways, with the conventions of `config.vae` (onnx/README.md, VAE decoder): latents
 * de-normalised per channel (x·std + mean) before decoding and normalised ((z − mean)/std) after
 * encoding, the pixel range and axis order of frames, and the latent ↔ video frame count
 * (1 + t·(F − 1)). Everything that decodes latents to RGB or encodes RGB to latents goes through
 * here; the defaults are the toy VAE's.
 *
 * @example
 *   const vae = await VaeDecoder.open(config);
 *   const video = await vae?.decode(latents, [16, 5, 20, 36]); // rgb [F, H, W, 3] u8
 *   const enc = await VaeEncoder.open(config);
 *   const z = await enc.encode(frames, [2, 8, 64, 64]);       // latents [B, C, F', H', W']
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { runtimeOptions } from '../rl/policy.js';
import { checkFeedShape } from '../runtime/contract.js';
import { ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';

export type VaeConventions = Config['vae'];
export type FrameLayout = VaeConventions['layout'];

/** RGB frames [F, H, W, 3], one byte per channel. */
export interface DecodedVideo {
  rgb: Uint8Array;
  frames: number;
  height: number;
  width: number;
}

/**
 * latents [C, F, H, W] → latents·std[c] + mean[c] (a copy; the input when there is neither).
 *
 * @example
 *   denormalise(x, 16, WAN_MEAN, WAN_STD);
 */
export function denormalise(
  latents: Float32Array,
  channels: number,
  mean: readonly number[] | null,
  std: readonly number[] | null,
): Float32Array {
  return perChannelAffine(latents, channels, mean, std, 'denormalise');
}

/**
 * Encoder latents [C, F, H, W] → (z − mean[c])/std[c], the inverse of `denormalise`.
 *
 * @example
 *   normalise(z, 16, WAN_MEAN, WAN_STD);
 */
export function normalise(
  latents: Float32Array,
  channels: number,
  mean: readonly number[] | null,
  std: readonly number[] | null,
): Float32Array {
  return perChannelAffine(latents, channels, mean, std, 'normalise');
}

function perChannelAffine(
  latents: Float32Array,
  channels: number,
  mean: readonly number[] | null,
  std: readonly number[] | null,
  direction: 'normalise' | 'denormalise',
): Float32Array {
  if (!mean && !std) return latents;
  for (const [key, v] of [
    ['vae.latents_mean', mean],
    ['vae.latents_std', std],
  ] as const)
    if (v && v.length !== channels)
      throw new InputError(key, `has ${v.length} values; the latents have ${channels} channels`);
  const per = latents.length / channels;
  const out = new Float32Array(latents.length);
  for (let c = 0; c < channels; c++) {
    const s = std?.[c] ?? 1;
    const m = mean?.[c] ?? 0;
    if (direction === 'denormalise')
      for (let i = c * per; i < (c + 1) * per; i++) out[i] = latents[i]! * s + m;
    else for (let i = c * per; i < (c + 1) * per; i++) out[i] = (latents[i]! - m) / s;
  }
  return out;
}

/** Where frame f, channel c, pixel i sits in a decoder output of one video, per layout. */
function indexer(layout: FrameLayout, F: number, HW: number): (f: number, c: number, i: number) => number {
  if (layout === 'B3FHW') return (f, c, i) => (c * F + f) * HW + i;
  if (layout === 'BFHW3') return (f, c, i) => (f * HW + i) * 3 + c;
  return (f, c, i) => (f * 3 + c) * HW + i;
}

const LAYOUT_DIMS: Record<FrameLayout, string> = {
  BF3HW: '[B, F, 3, H, W]',
  B3FHW: '[B, 3, F, H, W]',
  BFHW3: '[B, F, H, W, 3]',
};

/** [F, H, W] of a one-video output in `layout`, or undefined when its channel axis is not 3. */
function framesShape(shape: readonly number[], layout: FrameLayout): [number, number, number] | undefined {
  if (shape.length !== 5 || shape[0] !== 1) return undefined;
  const [, a, b, c, d] = shape as [number, number, number, number, number];
  if (layout === 'BF3HW') return b === 3 ? [a, c, d] : undefined;
  if (layout === 'B3FHW') return a === 3 ? [b, c, d] : undefined;
  return d === 3 ? [a, b, c] : undefined;
}

/**
 * A decoder output of one video → RGB bytes: (v − lo)/(hi − lo), clipped to [0, 1], ×255, rounded.
 *
 * @example
 *   toRgb8(out.data, out.shape, { layout: 'B3FHW', output_range: [-1, 1] }, 'vae.onnx');
 */
export function toRgb8(
  data: Float32Array,
  shape: readonly number[],
  conv: Pick<VaeConventions, 'layout' | 'output_range'>,
  source: string,
): DecodedVideo {
  const dims = framesShape(shape, conv.layout);
  if (!dims)
    throw new InputError(
      source,
      `decoder output is [${shape.join(', ')}]; vae.layout ${conv.layout} expects ${LAYOUT_DIMS[conv.layout]} with B = 1`,
    );
  const [F, H, W] = dims;
  const [lo, hi] = conv.output_range;
  const at = indexer(conv.layout, F, H * W);
  const rgb = new Uint8Array(F * H * W * 3);
  for (let f = 0; f < F; f++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < H * W; i++) {
        const u = (data[at(f, c, i)]! - lo) / (hi - lo);
        rgb[(f * H * W + i) * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, u)));
      }
  return { rgb, frames: F, height: H, width: W };
}

/**
 * A decoder output of B videos → frames [B, F, 3, H, W] in [0, 1] ((v − lo)/(hi − lo), clipped):
 * the RGB geometry model's input, kept in floats (no 8-bit rounding between the two models).
 *
 * @example
 *   const f = toUnitFrames(out.data, out.shape, config.vae, 'vae.onnx'); // f.shape [B, F, 3, H, W]
 */
export function toUnitFrames(
  data: Float32Array,
  shape: readonly number[],
  conv: Pick<VaeConventions, 'layout' | 'output_range'>,
  source: string,
): { data: Float32Array; shape: [number, number, number, number, number] } {
  const B = shape[0] ?? 0;
  const dims = framesShape([1, ...shape.slice(1)], conv.layout);
  if (!dims || shape.length !== 5)
    throw new InputError(
      source,
      `decoder output is [${shape.join(', ')}]; vae.layout ${conv.layout} expects ${LAYOUT_DIMS[conv.layout]}`,
    );
  const [F, H, W] = dims;
  const HW = H * W;
  const per = F * 3 * HW;
  const [lo, hi] = conv.output_range;
  const at = indexer(conv.layout, F, HW);
  const out = new Float32Array(B * per);
  for (let b = 0; b < B; b++)
    for (let f = 0; f < F; f++)
      for (let c = 0; c < 3; c++) {
        const o = b * per + (f * 3 + c) * HW;
        for (let i = 0; i < HW; i++) {
          const u = (data[b * per + at(f, c, i)]! - lo) / (hi - lo);
          out[o + i] = Math.min(1, Math.max(0, u));
        }
      }
  return { data: out, shape: [B, F, 3, H, W] };
}

/**
 * 8-bit RGB [F, H, W, 3] (a video as mp4s and renders hold it) → frames [F, 3, H, W] in [0, 1].
 *
 * @example
 *   const frames = rgb8ToUnitFrames(video.rgb, 8, 64, 64);
 */
export function rgb8ToUnitFrames(rgb: Uint8Array, F: number, H: number, W: number): Float32Array {
  const plane = H * W;
  const out = new Float32Array(F * 3 * plane);
  for (let f = 0; f < F; f++)
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < 3; c++) out[(f * 3 + c) * plane + p] = rgb[3 * (f * plane + p) + c]! / 255;
  return out;
}

/** Video frames for F latent frames: 1 + t·(F − 1) (Wan's causal VAE keeps the first frame alone). */
export function videoFrames(latentFrames: number, temporalCompression: number): number {
  return 1 + temporalCompression * (latentFrames - 1);
}

export class VaeDecoder {
  private constructor(
    private readonly session: ModelSession,
    private readonly conv: VaeConventions,
    private readonly output: string,
  ) {}

  /** The configured decoder; undefined when `models.vae_decoder` is null or the file is absent (no videos). */
  static async open(config: Config): Promise<VaeDecoder | undefined> {
    const path = config.models.vae_decoder;
    if (!path || !existsSync(path)) return undefined;
    const session = await ModelSession.open(path, runtimeOptions(config));
    try {
      if (!session.inputNames.includes('latents'))
        throw new InputError(path, "VAE decoder has no input 'latents' [B, C, F, H, W]");
      const output = config.vae.output ?? session.outputNames[0]!;
      if (!session.outputNames.includes(output))
        throw new InputError(
          path,
          `VAE decoder has no output '${output}' (vae.output; outputs: ${session.outputNames.join(', ')})`,
        );
      return new VaeDecoder(session, config.vae, output);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  get source(): string {
    return this.session.source;
  }

  /**
   * One video's latents [C, F, H, W] (as the denoiser produced them) → RGB frames; `from` names
   * the file they came from in a shape fault.
   */
  async decode(
    latents: Float32Array,
    shape: readonly [number, number, number, number],
    from = 'final_latents',
  ): Promise<DecodedVideo> {
    const [C, F] = shape;
    checkFeedShape(this.session.inputs, this.source, 'latents', [1, ...shape], from, 'final_latents');
    const x = denormalise(latents, C, this.conv.latents_mean, this.conv.latents_std);
    const out = await this.session.run({ latents: f32([1, ...shape], x) }, [this.output]);
    const t = out[this.output]!;
    const video = toRgb8(t.data as Float32Array, t.shape, this.conv, this.source);
    const want = videoFrames(F, this.conv.temporal_compression);
    if (video.frames !== want)
      throw new InputError(
        this.source,
        `decoder gives ${video.frames} frames for ${F} latent frames; vae.temporal_compression ${this.conv.temporal_compression} means 1 + ${this.conv.temporal_compression}·(F − 1) = ${want}`,
      );
    return video;
  }

  /**
   * B videos' latents [B, C, F, H, W] (as the denoiser produced them) → frames [B, F_v, 3, H_v, W_v]
   * in [0, 1] with F_v = 1 + t·(F − 1): the RGB path's decode, one decoder call for the batch.
   *
   * @example
   *   const frames = await vae.decodeFrames(finalLatents); // Φ's input
   */
  async decodeFrames(latents: Tensor, from = 'final_latents'): Promise<Tensor> {
    const [B, C, F] = latents.shape as [number, number, number];
    checkFeedShape(this.session.inputs, this.source, 'latents', latents.shape, from, 'final_latents');
    const x = new Float32Array(latents.data.length);
    const per = x.length / B;
    for (let b = 0; b < B; b++)
      x.set(
        denormalise(
          (latents.data as Float32Array).subarray(b * per, (b + 1) * per),
          C,
          this.conv.latents_mean,
          this.conv.latents_std,
        ),
        b * per,
      );
    const out = await this.session.run({ latents: f32([...latents.shape], x) }, [this.output]);
    const t = out[this.output]!;
    const frames = toUnitFrames(t.data as Float32Array, t.shape, this.conv, this.source);
    const want = videoFrames(F, this.conv.temporal_compression);
    if (frames.shape[1] !== want)
      throw new InputError(
        this.source,
        `decoder gives ${frames.shape[1]} frames for ${F} latent frames; vae.temporal_compression ${this.conv.temporal_compression} means 1 + ${this.conv.temporal_compression}·(F − 1) = ${want}`,
      );
    return f32(frames.shape, frames.data);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The configured VAE encoder (`models.vae_encoder`): RGB frames in [0, 1] → normalised latents.
 * Frames are given [B, F, 3, H, W] and handed to the encoder in `vae.layout` and `vae.output_range`
 * (the decoder's conventions, so a VAE round-trips).
 */
export class VaeEncoder {
  private constructor(
    private readonly session: ModelSession,
    private readonly conv: VaeConventions,
    private readonly input: string,
  ) {}

  /**
   * Open `models.vae_encoder` (or `path`); exit 2 when it is not set, missing, or not one input → one output.
   *
   * @example
   *   const enc = await VaeEncoder.open(config);
   */
  static async open(config: Config, path = config.models.vae_encoder): Promise<VaeEncoder> {
    if (!path) throw new InputError('models.vae_encoder', 'is not set (a VAE encoder .onnx is needed here)');
    if (!existsSync(path)) throw new InputError(path, 'VAE encoder not found (models.vae_encoder)');
    const session = await ModelSession.open(path, runtimeOptions(config));
    const input = session.inputNames[0];
    if (session.inputNames.length !== 1 || !input || session.outputNames.length < 1) {
      await session.release();
      throw new InputError(
        path,
        `a VAE encoder takes one frames input; it has ${session.inputNames.join(', ')}`,
      );
    }
    return new VaeEncoder(session, config.vae, input);
  }

  get source(): string {
    return this.session.source;
  }

  /**
   * Frames [B, F, 3, H, W] in [0, 1] (`shape` = [B, F, H, W]) → latents and their shape
   * [B, C, F', H', W'], normalised by `vae.latents_mean/std`.
   */
  async encode(
    frames: Float32Array,
    shape: readonly [number, number, number, number],
  ): Promise<{ latents: Float32Array; shape: number[] }> {
    const [B, F, H, W] = shape;
    const feed = toLayout(frames, shape, this.conv);
    const dims = LAYOUT_SHAPE[this.conv.layout](B, F, H, W);
    checkFeedShape(this.session.inputs, this.source, this.input, dims, 'frames', 'frames');
    const out = await this.session.run({ [this.input]: f32(dims, feed) });
    const t = out[this.session.outputNames[0]!]!;
    if (t.shape.length !== 5 || t.shape[0] !== B)
      throw new InputError(
        this.source,
        `encoder output is [${t.shape.join(', ')}]; expected latents [B, C, F, H, W]`,
      );
    const C = t.shape[1]!;
    const want = videoFrames(t.shape[2]!, this.conv.temporal_compression);
    if (want !== F)
      throw new InputError(
        this.source,
        `encoder gives ${t.shape[2]} latent frames for ${F} frames; vae.temporal_compression ${this.conv.temporal_compression} needs F = 1 + t·(F' − 1)`,
      );
    const per = (t.data as Float32Array).length / B;
    const latents = new Float32Array(per * B);
    for (let b = 0; b < B; b++) {
      const z = (t.data as Float32Array).subarray(b * per, (b + 1) * per);
      latents.set(normalise(z, C, this.conv.latents_mean, this.conv.latents_std), b * per);
    }
    return { latents, shape: [...t.shape] };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

const LAYOUT_SHAPE: Record<FrameLayout, (B: number, F: number, H: number, W: number) => number[]> = {
  BF3HW: (B, F, H, W) => [B, F, 3, H, W],
  B3FHW: (B, F, H, W) => [B, 3, F, H, W],
  BFHW3: (B, F, H, W) => [B, F, H, W, 3],
};

/** Frames [B, F, 3, H, W] in [0, 1] → the encoder's layout and pixel range. */
function toLayout(
  frames: Float32Array,
  [B, F, H, W]: readonly [number, number, number, number],
  conv: Pick<VaeConventions, 'layout' | 'output_range'>,
): Float32Array {
  const [lo, hi] = conv.output_range;
  if (conv.layout === 'BF3HW' && lo === 0 && hi === 1) return frames;
  const HW = H * W;
  const at = indexer(conv.layout, F, HW);
  const out = new Float32Array(frames.length);
  const per = F * 3 * HW;
  for (let b = 0; b < B; b++)
    for (let f = 0; f < F; f++)
      for (let c = 0; c < 3; c++)
        for (let i = 0; i < HW; i++)
          out[b * per + at(f, c, i)] = lo + (hi - lo) * frames[b * per + (f * 3 + c) * HW + i]!;
  return out;
}
