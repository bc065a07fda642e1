/**
 * One-off training of the toy's independent judge (src/toy/judge.ts) on `world` ground truth,
 * with train-geometry's targets, loss, AdamW loop and video pool (`trainGeometryModel`): only the
 * model and the frames differ. Half of every batch is the sharp 64×64 render (what the learned
 * toy VAE decoder gives), half what the analytic toy decoder gives — `encodeScene` latents →
 * onnx/fixtures/vae_decoder.onnx → [8, 3, 32, 32] → `resizeBilinear` to 64×64, the resize the RGB
 * path applies to decoded frames — so the judge can judge the toy demo's decoded videos.
 * Deterministic: fixed seeds, fixed step count, one onnxruntime thread by default.
 *
 * Writes onnx/fixtures/judge-weights.safetensors (metadata: the options), rebuilds the fixtures,
 * and prints the judge's fidelity on 48 held-out groups of 4 for both kinds of frames.
 *
 * @example
 *   node --import tsx onnx/train-judge.ts                  # 1 658 s beside other jobs, ≈ 10 min of CPU, one thread
 *   node --import tsx onnx/train-judge.ts --steps 20 --videos 40 --out /tmp/j.safetensors
 *   node --import tsx onnx/train-judge.ts --eval-only      # fidelity of the committed weights
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resizeBilinear } from '../src/media/resize.js';
import {
  type FidelityFigures,
  type FidelityReport,
  fidelityTable,
  measureFidelity,
  sessionPredictor,
} from '../src/metrics/fidelity.js';
import { encodeModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { ModelSession } from '../src/runtime/session.js';
import { writeSafetensors } from '../src/shards/safetensors.js';
import { f32, type Tensor } from '../src/shards/tensor.js';
import { encodeScene } from '../src/toy/encoder.js';
import { buildJudge } from '../src/toy/judge.js';
import { LATENT_SIZE, TOY } from '../src/toy/latent.js';
import { VIDEO } from '../src/toy/spaces.js';
import { heldOutGroups, type ToyVideo } from '../src/toy/videos.js';
import { buildFixtures, FIXTURE_FILES, FIXTURES_DIR, JUDGE_WEIGHTS, readWeights } from './build-fixtures.js';
import {
  GEOMETRY_TRAIN_DEFAULTS,
  type GeometryTargets,
  type GeometryTrainer,
  type GeometryTrainOptions,
  geometryTargets,
  trainGeometryModel,
  writeFrames,
} from './train-geometry.js';

const { frames: F, height: H, width: W } = VIDEO;

/**
 * Φ's defaults, with the L1 on frame-to-frame steps on: the judge predicts steps, and r_motion
 * reads them. Fewer steps than Φ, since a step costs more and the run must fit 20 min.
 */
export const JUDGE_TRAIN_DEFAULTS: GeometryTrainOptions = {
  ...GEOMETRY_TRAIN_DEFAULTS,
  steps: 2500,
  videos: 3000,
  seed: 1,
  stepWeight: 10,
};

/** The two kinds of frames the judge is trained and measured on. */
export const FRAME_KINDS = ['sharp', 'decoded'] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

/**
 * The analytic toy decoder's frames of videos, resized to the judge's 64×64 input:
 * `encodeScene` latents → vae_decoder.onnx → [B, 8, 3, 32, 32] → bilinear → [B, 8, 3, 64, 64].
 *
 * @example
 *   const frames = await decodedFrames(decoder, videos); // Float32Array of B·8·3·64·64
 */
export async function decodedFrames(
  decoder: ModelSession,
  videos: readonly ToyVideo[],
): Promise<Float32Array> {
  const latents = new Float32Array(videos.length * LATENT_SIZE);
  videos.forEach((v, b) => {
    latents.set(encodeScene(v.scene, v.trajectory).latents, b * LATENT_SIZE);
  });
  const shape = [videos.length, TOY.channels, TOY.frames, TOY.height, TOY.width];
  const out = await decoder.run({ latents: f32(shape, latents) });
  const small = out.frames!.data as Float32Array;
  return resizeBilinear(small, [videos.length * F, 3, TOY.frameHeight, TOY.frameWidth], H, W);
}

/** A pool entry: Φ's targets plus the analytic decoder's 32×32 frames of the same video. */
interface JudgeEntry extends GeometryTargets {
  decoded: Float32Array;
}

/** The judge's trainer: batch slots in the first half get sharp frames, the rest decoded ones. */
export function judgeTrainer(decoder: ModelSession, batch: number): GeometryTrainer<JudgeEntry> {
  return {
    build: buildJudge,
    entry: async (v) => {
      const latents = f32(
        [1, TOY.channels, TOY.frames, TOY.height, TOY.width],
        encodeScene(v.scene, v.trajectory).latents,
      );
      const decoded = Float32Array.from((await decoder.run({ latents })).frames!.data as Float32Array);
      return { ...geometryTargets(v), decoded };
    },
    frames: (e, slot, out, offset) => {
      if (slot < batch / 2) writeFrames(e.rgb, out, offset);
      else out.set(resizeBilinear(e.decoded, [F, 3, TOY.frameHeight, TOY.frameWidth], H, W), offset);
    },
  };
}

/** The analytic toy decoder (vae_decoder.onnx) on `threads` threads. */
export function openDecoder(threads = 1): Promise<ModelSession> {
  return ModelSession.open(join(FIXTURES_DIR, FIXTURE_FILES.vae_decoder), { threads });
}

/**
 * The judge's fidelity on `groups` for each kind of frames (src/metrics/fidelity.ts).
 *
 * @example
 *   const { sharp, decoded } = await judgeFidelity(buildJudge({ weights }).model, heldOutGroups(48, 4));
 */
export async function judgeFidelity(
  model: ModelProto | string,
  groups: ToyVideo[][],
  threads = 1,
): Promise<Record<FrameKind, FidelityReport>> {
  const judge = await ModelSession.open(typeof model === 'string' ? model : encodeModel(model), { threads });
  const decoder = await openDecoder(threads);
  try {
    const decodedFeed = async (videos: ToyVideo[]): Promise<Record<string, Tensor>> => ({
      frames: f32([videos.length, F, 3, H, W], await decodedFrames(decoder, videos)),
    });
    return {
      sharp: await measureFidelity(sessionPredictor(judge), groups),
      decoded: await measureFidelity(sessionPredictor(judge, { feeds: decodedFeed }), groups),
    };
  } finally {
    await judge.release();
    await decoder.release();
  }
}

/** Table rows of both kinds' figures: overall, then per family. */
export function judgeRows(reports: Record<FrameKind, FidelityReport>): [string, FidelityFigures][] {
  return FRAME_KINDS.flatMap((kind) => [
    [`judge, ${kind}`, reports[kind].overall] as [string, FidelityFigures],
    ...Object.entries(reports[kind].perFamily).map(
      ([fam, f]) => [`  ${kind}, ${fam}`, f] as [string, FidelityFigures],
    ),
  ]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      videos: { type: 'string' },
      lr: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      'eval-only': { type: 'boolean', default: false },
    },
  });
  const num = (k: keyof typeof values, key: keyof GeometryTrainOptions) =>
    values[k] !== undefined ? { [key]: Number(values[k]) } : {};
  const o: GeometryTrainOptions = {
    ...JUDGE_TRAIN_DEFAULTS,
    ...num('steps', 'steps'),
    ...num('videos', 'videos'),
    ...num('lr', 'lr'),
    ...num('threads', 'threads'),
  };
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const out = (values.out as string | undefined) ?? JUDGE_WEIGHTS;
  let weights: Map<string, Float32Array>;
  if (values['eval-only']) {
    weights = readWeights(out) ?? new Map();
  } else {
    const t0 = Date.now();
    const decoder = await openDecoder(o.threads);
    weights = await trainGeometryModel(judgeTrainer(decoder, o.batch), o, log);
    await decoder.release();
    const tensors = new Map<string, Tensor>();
    for (const p of buildJudge().params) tensors.set(p.name, f32(p.shape, weights.get(p.name)!));
    writeSafetensors(out, tensors, { 'vggrpo.kind': 'toy-judge-weights', 'vggrpo.train': JSON.stringify(o) });
    log(`wrote ${out} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    if (out === JUDGE_WEIGHTS) for (const p of Object.values(buildFixtures())) log(`rebuilt ${p}`);
  }
  const reports = await judgeFidelity(buildJudge({ weights }).model, heldOutGroups(48, 4), o.threads);
  log(`held-out fidelity (48 groups of 4):\n${fidelityTable(judgeRows(reports))}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
