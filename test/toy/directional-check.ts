/**
 * The gradient check of a toy model's training graph (loss + `grad:P` outputs, parameters as
 * inputs): the analytic directional derivative Σ_P ⟨grad:P, d_P⟩ against a Richardson-extrapolated
 * central difference of the loss along the same directions. Shared by the VAE and denoiser
 * pretraining tests.
 */
import type { ModelSession } from '../../src/runtime/session.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';

/** Directions for the chosen parameters: sin(0.61·i + offset + k) for the k-th name. */
export function waveDirections(
  params: readonly { name: string; value: Float32Array }[],
  chosen: readonly string[],
  offset = 0,
): Map<string, Float32Array> {
  const wave = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(0.61 * i + k));
  return new Map(chosen.map((n, k) => [n, wave(params.find((p) => p.name === n)!.value.length, offset + k)]));
}

/**
 * The analytic and numeric directional derivatives of the graph's `loss` at the parameters'
 * values, along `dirs` (other parameters fixed), with `base` holding every non-parameter feed.
 */
export async function directionalDerivatives(
  s: ModelSession,
  params: readonly { name: string; shape: number[]; value: Float32Array }[],
  base: Record<string, Tensor>,
  dirs: ReadonlyMap<string, Float32Array>,
): Promise<{ analytic: number; numeric: number }> {
  const run = async (h: number) => {
    const feeds = { ...base };
    for (const p of params) {
      const d = dirs.get(p.name);
      feeds[p.name] = f32(p.shape, d ? p.value.map((v, i) => v + h * d[i]!) : p.value);
    }
    return s.run(feeds);
  };
  const at0 = await run(0);
  let analytic = 0;
  for (const [n, d] of dirs) {
    const g = at0[`grad:${n}`]!.data as Float32Array;
    for (let i = 0; i < d.length; i++) analytic += g[i]! * d[i]!;
  }
  const lossAt = async (x: number) => ((await run(x)).loss!.data as Float32Array)[0]!;
  const central = async (h: number) => ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
  // Richardson extrapolation removes the h² error term of the central difference (the network's
  // third-order terms are large along a direction that moves whole weight matrices).
  const h = 1e-3;
  return { analytic, numeric: (9 * (await central(h)) - (await central(3 * h))) / 8 };
}
