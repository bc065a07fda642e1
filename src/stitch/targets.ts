/**
 * What a stitch fits to: the encoder's latents E(x) of each video and Φ's values on the same
 * video — its tensors at the stitch candidates (phase 1, `--at auto`) and its outputs (phase 2).
 *
 * Temporal compression (Wan's VAE: t = 4): a video of F = 1 + t·(F' − 1) frames has F' latent
 * frames, and the LGM predicts per latent frame, as the paper's does. Φ's targets are Φ run on
 * the frames at the latent-frame positions 0, t, 2t, …: latent frame k of a causal video VAE
 * summarises frames up to k·t and is anchored at its first frame 0 or its last frame k·t, so those
 * are the frames whose geometry it can carry (docs: onnx/README.md, Stitching).
 *
 * @example
 *   latentFramePositions(17, 4); // [0, 4, 8, 12, 16]
 */
import { InputError } from '../errors.js';
import { valueInfo } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/proto.js';
import type { ModelSession } from '../runtime/session.js';
import { f32 } from '../shards/tensor.js';

/**
 * Frame indices of the latent frames of a video of `frames` frames at temporal compression `t`.
 *
 * @example
 *   latentFramePositions(8, 1); // [0, 1, …, 7]
 */
export function latentFramePositions(frames: number, t: number): number[] {
  if ((frames - 1) % t !== 0) {
    throw new InputError(
      '--videos',
      `${frames} frames do not fit temporal compression ${t} (need 1 + ${t}·k frames)`,
    );
  }
  return Array.from({ length: 1 + (frames - 1) / t }, (_, k) => k * t);
}

/** Per-video arrays of one tensor and the per-sample shape (batch dim removed). */
export interface Values {
  shape: number[];
  data: Float32Array[];
}

/**
 * Run a model over samples in batches; returns the requested outputs per sample.
 *
 * @example
 *   const out = await runBatched(session, 'frames', frames, [8, 3, 64, 64], ['latents'], 4);
 */
export async function runBatched(
  session: ModelSession,
  input: string,
  samples: Float32Array[],
  shape: number[],
  outputs: string[],
  batch: number,
): Promise<Map<string, Values>> {
  const per = shape.reduce((a, d) => a * d, 1);
  const res = new Map<string, Values>(outputs.map((o) => [o, { shape: [], data: [] }]));
  for (let s = 0; s < samples.length; s += batch) {
    const n = Math.min(batch, samples.length - s);
    const x = new Float32Array(n * per);
    for (let k = 0; k < n; k++) x.set(samples[s + k]!, k * per);
    const out = await session.run({ [input]: f32([n, ...shape], x) }, outputs);
    for (const o of outputs) {
      const t = out[o]!;
      const v = res.get(o)!;
      v.shape = t.shape.slice(1);
      const size = (t.data as Float32Array).length / n;
      for (let k = 0; k < n; k++)
        v.data.push(Float32Array.from((t.data as Float32Array).subarray(k * size, (k + 1) * size)));
    }
  }
  return res;
}

/** The frames [F', 3, H, W] of a video [F, 3, H, W] at the given positions. */
export function framesAt(video: Float32Array, frames: number, positions: number[]): Float32Array {
  const per = video.length / frames;
  const out = new Float32Array(positions.length * per);
  positions.forEach((p, k) => {
    out.set(video.subarray(p * per, (p + 1) * per), k * per);
  });
  return out;
}

/**
 * Φ with extra graph outputs (the stitch candidates), so one run gives features and outputs.
 *
 * @example
 *   const probe = withOutputs(phi, ['blocks.1.output']);
 */
export function withOutputs(model: ModelProto, names: string[]): ModelProto {
  const graph = model.graph ?? {};
  const have = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const extra = names.filter((n) => !have.has(n)).map((n) => valueInfo(n, 1));
  return { ...model, graph: { ...graph, output: [...(graph.output ?? []), ...extra] } };
}
