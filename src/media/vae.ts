/**
 * The VAE decoder, with the conventions of `config.vae` (onnx/README.md, VAE decoder): latents
 * de-normalised per channel (x·std + mean) before decoding, the output's pixel range and axis
 * order, and the latent → video frame count (1 + t·(F − 1)). Everything that decodes latents to
 * RGB goes through here; the defaults are the toy decoder's.
 *
 * @example
 *   const vae = await VaeDecoder.open(config);
 *   const video = await vae?.decode(latents, [16, 5, 20, 36]); // rgb [F, H, W, 3] u8
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
    for (let i = c * per; i < (c + 1) * per; i++) out[i] = latents[i]! * s + m;
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

  /** The decoder's declared input shape (for contract checks before work). */
  get inputShape(): readonly (number | string | null | undefined)[] {
    return this.session.inputs.find((i) => i.name === 'latents')?.shape ?? [];
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
