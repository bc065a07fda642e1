/**
 * Fidelity of the toy geometry models on held-out `world`-like groups (src/metrics/fidelity.ts):
 * Φ on RGB frames and the stitched LGM on the VAE encoder's latents of the same videos, each with
 * r_motion in the paper's form and with the noise floor (motion option poseNoise) set to the
 * model's measured per-frame pose noise (rotation alone, then translation too;
 * FidelityFigures.poseNoise). Prints one table, then each model's mean r_motion by group member
 * and the LGM's reading of the base denoiser's pretraining mixture; the figures of
 * onnx/fixtures/README.md and README's "Where the headroom is" come from it.
 *
 * @example
 *   node --import tsx onnx/measure-lgm.ts            # 48 groups of 4, seed 0
 *   node --import tsx onnx/measure-lgm.ts 96 1       # 96 groups, seed 1
 */
import { join } from 'node:path';
import { resolveConfig } from '../src/config/load.js';
import { VaeEncoder } from '../src/media/vae.js';
import {
  type FidelityFigures,
  fidelityTable,
  type GeometryPredictor,
  measureFidelity,
  type PredictedGeometry,
  sessionPredictor,
} from '../src/metrics/fidelity.js';
import { type MotionOptions, motion } from '../src/rewards/motion.js';
import { ModelSession } from '../src/runtime/session.js';
import { f32 } from '../src/shards/tensor.js';
import { promptScenario } from '../src/toy/prompts.js';
import { heldOutGroups, type ToyVideo } from '../src/toy/videos.js';
import { makeScene, Rng } from '../src/world/index.js';
import { FIXTURES_DIR } from './build-fixtures.js';
import { LEARNED_DEFAULTS, readPromptFile, trainingVideo } from './pretrain.js';

/**
 * A predictor running the stitched LGM on the VAE encoder's latents of each batch.
 *
 * @example
 *   const predict = await lgmPredictor(join(FIXTURES_DIR, 'lgm_stitched.onnx'), 1);
 */
export async function lgmPredictor(
  lgmPath: string,
  threads: number,
): Promise<{ predict: GeometryPredictor; release: () => Promise<void> }> {
  const config = resolveConfig([{ runtime: { threads } }]);
  const encoder = await VaeEncoder.open(config, join(FIXTURES_DIR, 'vae_encoder.onnx'));
  const lgm = await ModelSession.open(lgmPath, { threads });
  const feeds = async (videos: ToyVideo[]) => {
    const n = videos[0]!.frames.length;
    const frames = new Float32Array(videos.length * n);
    videos.forEach((v, b) => {
      frames.set(v.frames, b * n);
    });
    const { height: H, width: W, frames: F } = videos[0]!.video;
    const z = await encoder.encode(frames, [videos.length, F, H, W]);
    return { latents: f32(z.shape, z.latents) };
  };
  return {
    predict: sessionPredictor(lgm, { feeds }),
    release: async () => {
      await encoder.release();
      await lgm.release();
    },
  };
}

/**
 * The LGM's r_motion (paper form) of the learned denoiser's own pretraining mixture
 * (onnx/pretrain.ts: 60% smooth, the rest strongly jittered) rendered for the held-out prompts,
 * 24 videos each: what the base policy would score if its samples were as coherent as its data.
 */
async function pretrainingMixReading(predict: GeometryPredictor): Promise<string> {
  const rng = new Rng(7);
  const smooth: number[] = [];
  const jittered: number[] = [];
  for (const prompt of readPromptFile('prompts-heldout.txt')) {
    const sc = promptScenario(prompt);
    const scene = makeScene(sc.sceneSeed, { dynamic: sc.dynamic });
    const videos = Array.from({ length: 24 }, () => trainingVideo(prompt, scene, rng, LEARNED_DEFAULTS));
    const preds = await predict(videos);
    for (const [i, g] of preds.entries()) {
      (videos[i]!.jitter.pos === 0 ? smooth : jittered).push(motion.compute(g));
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return `stitched LGM on the denoiser's pretraining mixture (held-out prompts, ${smooth.length + jittered.length} videos): r_motion ${mean([...smooth, ...jittered]).toFixed(3)} (smooth ${mean(smooth).toFixed(3)}, jittered ${mean(jittered).toFixed(3)})`;
}

/**
 * `predict` with its predictions kept per video: the figures under other reward options (the
 * noise-floor rows) read the same predictions instead of running the model again.
 */
function remembered(predict: GeometryPredictor): GeometryPredictor {
  const seen = new Map<ToyVideo, PredictedGeometry>();
  return async (videos) => {
    const missing = videos.filter((v) => !seen.has(v));
    if (missing.length) for (const [i, g] of (await predict(missing)).entries()) seen.set(missing[i]!, g);
    return videos.map((v) => seen.get(v)!);
  };
}

async function main(): Promise<void> {
  const groups = heldOutGroups(Number(process.argv[2] ?? 48), 4, Number(process.argv[3] ?? 0));
  const phiSession = await ModelSession.open(join(FIXTURES_DIR, 'geometry_rgb.onnx'), { threads: 2 });
  const lgm = await lgmPredictor(join(FIXTURES_DIR, 'lgm_stitched.onnx'), 2);
  const rows: [string, FidelityFigures][] = [];
  const notes: string[] = [];
  const models: [string, GeometryPredictor][] = [
    ['Φ on RGB', remembered(sessionPredictor(phiSession))],
    ['stitched LGM', remembered(lgm.predict)],
  ];
  for (const [name, predict] of models) {
    const plain = await measureFidelity(predict, groups);
    rows.push([name, plain.overall]);
    const fams = Object.entries(plain.perFamily).map(([f, x]) => `${f} ${x.motionByMember[0]!.toFixed(3)}`);
    notes.push(
      `${name}: mean r_motion by member (smooth → most jittered) ${plain.overall.motionByMember.map((r) => r.toFixed(3)).join(' / ')}; smooth member by family: ${fams.join(', ')}`,
    );
    for (const [fam, f] of Object.entries(plain.perFamily)) rows.push([`  ${name}, ${fam}`, f]);
    // The noise floor at the model's own measured pose noise: rotation alone (the figures of
    // onnx/fixtures/README.md), then translation too.
    const { translation, rotation } = plain.overall.poseNoise;
    for (const poseNoise of [
      { translation: 0, rotation },
      { translation, rotation },
    ]) {
      const motion: Partial<MotionOptions> = { poseNoise };
      rows.push([
        `${name}, poseNoise σ_t ${poseNoise.translation.toFixed(4)} σ_rot ${rotation.toFixed(4)}`,
        (await measureFidelity(predict, groups, { motion })).overall,
      ]);
    }
  }
  notes.push(await pretrainingMixReading(lgm.predict));
  await phiSession.release();
  await lgm.release();
  console.log(fidelityTable(rows));
  console.log(notes.join('\n'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
