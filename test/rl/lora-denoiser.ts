/**
 * A test case shared by the gradient-runner tests: the toy denoiser with LoRA injected, random
 * non-zero adapters, and the feeds and static shapes of its gradient graph (batch 2).
 */
import { injectLora } from '../../src/onnx/lora.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { buildDenoiser, DENOISER_SHAPE } from '../../src/toy/denoiser.js';
import { TOY } from '../../src/toy/latent.js';
import { randArr, rng } from '../onnx/ort-helper.js';

export const B = 2;
const { channels: C, frames: F, height: H, width: W, contextLength: L, contextDim: D } = TOY;

export interface LoraDenoiserOptions {
  /** Transformer blocks of the denoiser. */
  layers: number;
  /** LoRA target globs (rank 2, alpha 4). */
  targets: string[];
  /** The denoiser's weight seed (default 1). */
  modelSeed?: number;
}

/** The model, the gradient graph's feeds (inputs, adapters, `grad:velocity`) and static shapes. */
export function loraDenoiserCase(seed: number, o: LoraDenoiserOptions) {
  const base = buildDenoiser({
    seed: o.modelSeed ?? 1,
    shape: { ...DENOISER_SHAPE, layers: o.layers },
  }).model;
  const { model, adapters } = injectLora(base, { rank: 2, alpha: 4, targets: o.targets });
  const r = rng(seed);
  const t = (shape: number[]): Tensor => f32(shape, randArr(r, shape).data as Float32Array);
  const feeds: Record<string, Tensor> = {
    latents: t([B, C, F, H, W]),
    timestep: f32([B], Float32Array.of(700, 250)),
    context: t([B, L, D]),
    'grad:velocity': t([B, C, F, H, W]),
  };
  const shapes: Record<string, number[]> = {
    latents: [B, C, F, H, W],
    timestep: [B],
    context: [B, L, D],
  };
  for (const a of adapters) {
    for (const [k, shape] of [
      ['A', [a.inDim, 2]],
      ['B', [2, a.outDim]],
    ] as const) {
      const name = `lora:${a.weight}:${k}`;
      shapes[name] = [...shape];
      feeds[name] = t([...shape]);
    }
  }
  return { model, feeds, shapes };
}
