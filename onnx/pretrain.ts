/**
 * One-off pretraining of the toy denoiser (the base policy) by flow matching on toy latents, with
 * the project's own autodiff: the denoiser graph gets an MSE loss appended with the graph builder,
 * `buildGradientGraph` differentiates it w.r.t. every parameter (fed as graph inputs), and AdamW
 * (src/rl/adamw.ts) updates the weights. Deterministic: fixed seeds, fixed step count, one
 * onnxruntime session with a fixed thread count.
 *
 * Data: each pretraining prompt (examples/toy/prompts-pretrain.txt — the 8 prompts the committed
 * weights were trained with; the demo's prompts.txt is a subset — plus a pool of synthetic prompts from
 * the toy grammar, never the held-out ones) names a scenario (`src/toy/prompts.ts`); each sample
 * renders that scenario's scene along its camera-path family, smooth with probability 0.6 and
 * otherwise with jitter of a random amplitude, so the base policy's samples of one prompt differ in camera
 * smoothness (what GRPO's motion reward needs). x_σ = (1−σ)·x0 + σ·ε, target v = ε − x0, σ drawn
 * like the shift-3 sampling schedule, the squared error weighted by σ̃² (an even clean-latent loss).
 *
 * Two latent spaces (`--space`): `learned` (the default world's: 64×64 renders encoded once, before
 * training, by the toy VAE encoder into 8-channel latents; 32 videos per prompt; writes
 * denoiser-learned-weights.safetensors, evaluated with the stitched LGM) and `analytic` (the
 * exact-reference latents of src/toy/latent.ts, drawn fresh each step; denoiser-weights.safetensors).
 *
 * Writes the space's weights file and rebuilds the fixtures; then samples groups of 8 for the
 * training and held-out prompts and reports the std of r_motion within each group.
 *
 * @example
 *   node --import tsx onnx/pretrain.ts --space learned     # 6 000 steps (≈23 min, one thread), write, evaluate
 *   node --import tsx onnx/pretrain.ts                     # analytic: 1 500 steps (≈7–9 min)
 *   node --import tsx onnx/pretrain.ts --space learned --eval-only   # evaluate the committed weights
 *   node --import tsx onnx/pretrain.ts --steps 20 --out /tmp/w.safetensors
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../src/config/load.js';
import { cameraCentre, poseEncodingToCameras } from '../src/geometry/cameras.js';
import { VaeEncoder } from '../src/media/vae.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/model.js';
import { motion } from '../src/rewards/motion.js';
import { adamwInit, adamwStep, clipGradNorm, type ParamMap } from '../src/rl/adamw.js';
import { warmupCosine } from '../src/rl/lr-schedule.js';
import { batchNoise, gaussian, splitSeed } from '../src/rl/prng.js';
import { sdeWindow, shiftedSigmas, timestepOf } from '../src/rl/schedule.js';
import { odeStep, sdeStep } from '../src/rl/sde.js';
import { ModelSession } from '../src/runtime/session.js';
import { writeSafetensors } from '../src/shards/safetensors.js';
import { f32, type Tensor } from '../src/shards/tensor.js';
import { buildDenoiser, effectiveSigma } from '../src/toy/denoiser.js';
import { encodeScene } from '../src/toy/encoder.js';
import { CH, TOY } from '../src/toy/latent.js';
import { buildLgm } from '../src/toy/lgm.js';
import { promptScenario, syntheticPrompts } from '../src/toy/prompts.js';
import { GEOMETRY, LATENT, VIDEO } from '../src/toy/spaces.js';
import { buildTextEncoder } from '../src/toy/text-encoder.js';
import { tokenizeBatch } from '../src/toy/tokenizer.js';
import { renderToyVideo, type ToyVideo } from '../src/toy/videos.js';
import { makeScene, makeTrajectory, Rng, type Scene } from '../src/world/index.js';
import {
  buildFixtures,
  DENOISER_LEARNED_WEIGHTS,
  DENOISER_WEIGHTS,
  FIXTURES_DIR,
  readWeights,
} from './build-fixtures.js';

const EXAMPLES = join(FIXTURES_DIR, '..', '..', 'examples', 'toy');
const { contextLength: L, contextDim: D } = TOY;

/** Which latent space the denoiser generates (src/toy/denoiser.ts, `space`). */
export type Space = 'analytic' | 'learned';

/** Latent dimensions [C, F, H, W] and values per video of a space. */
function latentDims(space: Space): { C: number; F: number; H: number; W: number; size: number } {
  const { channels: C, frames: F, height: H, width: W } = space === 'learned' ? LATENT : TOY;
  return { C, F, H, W, size: C * F * H * W };
}

export interface PretrainOptions {
  /** The analytic toy latents (denoiser.onnx) or the learned toy VAE's (denoiser_learned.onnx). */
  space: Space;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  threads: number;
  /** Synthetic prompts added to the training prompts. */
  synthetic: number;
  /** Probability that a training video has a smooth camera. */
  smoothFraction: number;
  /** Largest jitter of a jittery training video (position std, rotation std in radians); each
   * jittery video draws its amplitude uniformly between 25% and 100% of these. */
  jitterPos: number;
  jitterRot: number;
  /** Analytic space: loss weight of the camera channels (what the motion reward reads) relative to the others. */
  cameraWeight: number;
  /** Learned space: videos rendered and encoded per prompt before training (the training set). */
  videosPerPrompt: number;
}

export const PRETRAIN_DEFAULTS: PretrainOptions = {
  space: 'analytic',
  steps: 1500,
  batch: 8,
  lr: 2e-3,
  seed: 0,
  threads: 1,
  synthetic: 56,
  smoothFraction: 0.6,
  jitterPos: 0.35,
  jitterRot: 0.14,
  cameraWeight: 1,
  videosPerPrompt: 32,
};

/** What the committed learned-world weights were trained with (onnx/fixtures/README.md). */
export const LEARNED_DEFAULTS: PretrainOptions = { ...PRETRAIN_DEFAULTS, space: 'learned', steps: 6000 };

/** The options a space's training reads, as written into the weights file's metadata. */
function recordedOptions(o: PretrainOptions): Record<string, unknown> {
  const { space, cameraWeight, videosPerPrompt, ...common } = o;
  return space === 'learned' ? { ...common, videosPerPrompt } : { ...common, cameraWeight };
}

export function readPromptFile(name: string): string[] {
  return readFileSync(join(EXAMPLES, name), 'utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Text contexts [n, L, D] of prompts through the text-encoder fixture. */
async function encodePrompts(prompts: string[], threads: number): Promise<Float32Array> {
  const s = await ModelSession.open(encodeModel(buildTextEncoder()), { threads });
  const out = (await s.run({ input_ids: tokenizeBatch(prompts) })).context!.data as Float32Array;
  await s.release();
  return Float32Array.from(out);
}

/** An analytic-space training video of `prompt`: its scenario's scene and path, smooth or jittered. */
function trainingLatents(
  prompt: string,
  scenes: Map<string, Scene>,
  rng: Rng,
  o: PretrainOptions,
): Float32Array {
  const sc = promptScenario(prompt);
  let scene = scenes.get(prompt);
  if (!scene) {
    scene = makeScene(sc.sceneSeed, { dynamic: sc.dynamic });
    scenes.set(prompt, scene);
  }
  const smooth = rng.next() < o.smoothFraction;
  const amp = rng.uniform(0.25, 1);
  const traj = makeTrajectory(
    sc.family,
    smooth ? {} : { jitterPos: amp * o.jitterPos, jitterRot: amp * o.jitterRot, seed: rng.int(0, 1 << 30) },
  );
  const latents = encodeScene(scene, traj).latents;
  // Strong jitter can push a camera through a wall (non-positive or infinite depth): draw again.
  return latents.every(Number.isFinite) ? latents : trainingLatents(prompt, scenes, rng, o);
}

/**
 * One learned-space training video of `prompt`: its scenario's scene and path, smooth or jittered
 * (`o.smoothFraction`, amplitudes up to `o.jitterPos` / `o.jitterRot`), rendered at 64×64.
 */
export function trainingVideo(prompt: string, scene: Scene, rng: Rng, o: PretrainOptions): ToyVideo {
  const sc = promptScenario(prompt);
  for (;;) {
    const smooth = rng.next() < o.smoothFraction;
    const amp = rng.uniform(0.25, 1);
    const jitter = smooth ? { pos: 0, rot: 0 } : { pos: amp * o.jitterPos, rot: amp * o.jitterRot };
    const traj = makeTrajectory(sc.family, {
      frames: VIDEO.frames,
      jitterPos: jitter.pos,
      jitterRot: jitter.rot,
      seed: smooth ? 0 : rng.int(0, 1 << 30),
    });
    // Strong jitter can push a camera through a wall: draw again.
    const v = renderToyVideo(scene, traj, jitter, sc.dynamic);
    if (v) return v;
  }
}

/**
 * The learned space's training set: `videosPerPrompt` videos of each prompt, encoded by the toy VAE
 * encoder (onnx/fixtures/vae_encoder.onnx) once, before training — the latents the denoiser learns to make.
 */
async function latentPool(prompts: string[], o: PretrainOptions): Promise<Float32Array[]> {
  const config = resolveConfig([{ runtime: { threads: o.threads } }]);
  const encoder = await VaeEncoder.open(config, join(FIXTURES_DIR, 'vae_encoder.onnx'));
  const rng = new Rng(o.seed * 13 + 5);
  const pool: Float32Array[] = [];
  try {
    for (const prompt of prompts) {
      const sc = promptScenario(prompt);
      const scene = makeScene(sc.sceneSeed, { dynamic: sc.dynamic });
      const n = o.videosPerPrompt;
      const frames = new Float32Array(n * VIDEO.frames * 3 * VIDEO.height * VIDEO.width);
      for (let k = 0; k < n; k++)
        frames.set(trainingVideo(prompt, scene, rng, o).frames, k * (frames.length / n));
      pool.push((await encoder.encode(frames, [n, VIDEO.frames, VIDEO.height, VIDEO.width])).latents);
    }
  } finally {
    await encoder.release();
  }
  return pool;
}

/**
 * The denoiser with parameters as inputs, the loss mean(weight·(velocity − target)²) against
 * inputs `target` [B, C, F, H, W] and `weight` [B, 1, 1, 1, 1], and its gradient graph.
 */
export function trainingGraph(
  batch: number,
  cameraWeight = 1,
  space: Space = 'analytic',
): {
  bytes: Uint8Array;
  params: { name: string; shape: number[]; value: Float32Array }[];
} {
  const { C, F, H, W } = latentDims(space);
  const { model, params } = buildDenoiser({ paramsAsInputs: true, batch, space });
  const g = GraphBuilder.extend(model);
  const target = g.input('target', 'float32', [batch, C, F, H, W]);
  const diff = g.op('Sub', ['velocity', target]);
  // Per-sample weight σ̃²: the velocity error is the clean-latent error over σ̃ (see buildDenoiser).
  const weight = g.input('weight', 'float32', [batch, 1, 1, 1, 1]);
  let sq = g.op('Mul', [g.op('Mul', [diff, diff]), weight]);
  if (cameraWeight !== 1) {
    const w = Array.from({ length: C }, (_, c) => (c >= CH.translation && c < CH.flow ? cameraWeight : 1));
    sq = g.op('Mul', [sq, g.const(w, 'float32', [C, 1, 1, 1])]);
  }
  const loss = g.op('ReduceMean', [sq], { keepdims: 0 });
  model.graph!.output = [];
  g.output(loss, 'loss', 'float32', []);
  const grad = buildGradientGraph(model, { wrt: params.map((p) => p.name) });
  if (grad.warnings.length) throw new Error(`autodiff warnings: ${grad.warnings.join('; ')}`);
  return { bytes: encodeModel(grad.model), params };
}

/**
 * Train from the seeded initialisation; returns the trained parameters by name.
 *
 * @example
 *   const weights = await pretrain({ ...PRETRAIN_DEFAULTS, steps: 10 });
 */
export async function pretrain(
  o: PretrainOptions,
  log: (s: string) => void = () => {},
): Promise<Map<string, Float32Array>> {
  const heldOut = readPromptFile('prompts-heldout.txt');
  const prompts = [
    ...readPromptFile('prompts-pretrain.txt'),
    ...syntheticPrompts(o.synthetic, o.seed, heldOut),
  ];
  const contexts = await encodePrompts(prompts, o.threads);
  const learned = o.space === 'learned';
  const pool = learned ? await latentPool(prompts, o) : [];
  if (learned) log(`encoded ${prompts.length} × ${o.videosPerPrompt} training videos`);
  const { C, F, H, W, size: V } = latentDims(o.space);
  const { bytes, params } = trainingGraph(o.batch, o.cameraWeight, o.space);
  const session = await ModelSession.open(bytes, { threads: o.threads });
  const values: ParamMap = new Map(params.map((p) => [p.name, Float32Array.from(p.value)]));
  const state = adamwInit(values);
  const rng = new Rng(o.seed * 7 + 1);
  const scenes = new Map<string, Scene>();
  const B = o.batch;
  const n = B * V;
  const warmup = Math.min(30, Math.floor(o.steps / 10));
  const t0 = Date.now();
  let ema = Number.NaN;
  for (let step = 0; step < o.steps; step++) {
    const x0 = new Float32Array(n);
    const ctx = new Float32Array(B * L * D);
    const sigma = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const p = rng.int(0, prompts.length - 1);
      if (learned) {
        const k = rng.int(0, o.videosPerPrompt - 1);
        x0.set(pool[p]!.subarray(k * V, (k + 1) * V), b * V);
      } else {
        x0.set(trainingLatents(prompts[p]!, scenes, rng, o), b * V);
      }
      ctx.set(contexts.subarray(p * L * D, (p + 1) * L * D), b * L * D);
      // σ distributed like the shift-3 schedule's steps (more time at high noise).
      const u = rng.uniform(0.001, 0.999);
      sigma[b] = (3 * u) / (1 + 2 * u);
    }
    const eps = gaussian(splitSeed(o.seed, step), n);
    const xt = new Float32Array(n);
    const target = new Float32Array(n);
    for (let b = 0; b < B; b++) {
      const s = sigma[b]!;
      for (let i = b * V; i < (b + 1) * V; i++) {
        xt[i] = (1 - s) * x0[i]! + s * eps[i]!;
        target[i] = eps[i]! - x0[i]!;
      }
    }
    const feeds: Record<string, Tensor> = {
      latents: f32([B, C, F, H, W], xt),
      timestep: f32(
        [B],
        Float32Array.from(sigma, (s) => timestepOf(s)),
      ),
      context: f32([B, L, D], ctx),
      target: f32([B, C, F, H, W], target),
      weight: f32(
        [B, 1, 1, 1, 1],
        Float32Array.from(sigma, (s) => effectiveSigma(s) ** 2),
      ),
      'grad:loss': f32([], [1]),
    };
    for (const p of params) feeds[p.name] = f32(p.shape, values.get(p.name)!);
    const out = await session.run(feeds);
    const grads: ParamMap = new Map(params.map((p) => [p.name, out[`grad:${p.name}`]!.data as Float32Array]));
    const gnorm = clipGradNorm(grads, 1);
    const lr = warmupCosine(o.lr, step, o.steps, warmup, 0.1);
    adamwStep(values, grads, state, { lr, weightDecay: 0 });
    const loss = (out.loss!.data as Float32Array)[0]!;
    ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss;
    if (step % 25 === 0 || step === o.steps - 1) {
      log(
        `step ${step} loss ${loss.toFixed(4)} ema ${ema.toFixed(4)} |g| ${gnorm.toFixed(3)} lr ${lr.toExponential(2)} ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
  }
  await session.release();
  return values;
}

export interface GroupStats {
  prompt: string;
  heldOut: boolean;
  rewards: number[];
  mean: number;
  std: number;
  /** Median predicted depth over the group (the toy room gives roughly 2–5). */
  medianDepth: number;
  /** Fraction of predicted camera centres inside the toy room. */
  inRoom: number;
}

/**
 * Sample a group of `groupSize` per prompt with the toy config's sampler (10 steps, shift 3, SDE
 * noise 0.7 on steps 0–8), decode with the space's LGM (the analytic one, or the stitched
 * lgm_stitched.onnx) and score r_motion.
 *
 * @example
 *   const stats = await evaluateGroups(weights, ['orbit around the red box'], [], 2);
 */
export async function evaluateGroups(
  weights: ReadonlyMap<string, Float32Array>,
  train: string[],
  heldOut: string[],
  threads: number,
  groupSize = 8,
  seed = 1000,
  space: Space = 'analytic',
): Promise<GroupStats[]> {
  const prompts = [...train, ...heldOut];
  const contexts = await encodePrompts(prompts, threads);
  const { C, F, H, W, size: V } = latentDims(space);
  const den = await ModelSession.open(encodeModel(buildDenoiser({ weights, space }).model), { threads });
  const lgm =
    space === 'learned'
      ? await ModelSession.open(join(FIXTURES_DIR, 'lgm_stitched.onnx'), { threads })
      : await ModelSession.open(encodeModel(buildLgm()), { threads });
  const sigmas = shiftedSigmas(10, 3);
  const window = new Set(sdeWindow('0:9', 10));
  const G = groupSize;
  const stats: GroupStats[] = [];
  for (let p = 0; p < prompts.length; p++) {
    const seeds = Array.from({ length: G }, (_, k) => splitSeed(seed, p * G + k));
    let x = batchNoise(seeds, null, V);
    const ctx = new Float32Array(G * L * D);
    for (let k = 0; k < G; k++) ctx.set(contexts.subarray(p * L * D, (p + 1) * L * D), k * L * D);
    for (let i = 0; i < 10; i++) {
      const v = (
        await den.run({
          latents: f32([G, C, F, H, W], x),
          timestep: f32([G], new Array(G).fill(timestepOf(sigmas[i]!))),
          context: f32([G, L, D], ctx),
        })
      ).velocity!.data as Float32Array;
      x = window.has(i)
        ? sdeStep({ x, v, sigmas, i, batch: G, noiseLevel: 0.7, noise: batchNoise(seeds, i, V) }).next
        : odeStep(x, v, sigmas, i);
    }
    const geo = await lgm.run({ latents: f32([G, C, F, H, W], x) });
    const [h, w] = space === 'learned' ? [GEOMETRY.height, GEOMETRY.width] : [TOY.geoHeight, TOY.geoWidth];
    const depth = geo.depth!.data as Float32Array;
    const rewards: number[] = [];
    let inRoom = 0;
    for (let k = 0; k < G; k++) {
      const pose = (geo.pose_enc!.data as Float32Array).subarray(k * F * 9, (k + 1) * F * 9);
      const cams = poseEncodingToCameras(pose, h, w);
      for (let f = 0; f < F; f++) {
        const c = cameraCentre(cams.extrinsics, f);
        if (Math.abs(c[0]!) < 4 && Math.abs(c[2]!) < 4 && c[1]! > 0 && c[1]! < 3) inRoom += 1 / (G * F);
      }
      const d = depth.subarray(k * F * h * w, (k + 1) * F * h * w);
      const pts = (geo.world_points!.data as Float32Array).subarray(
        k * F * h * w * 3,
        (k + 1) * F * h * w * 3,
      );
      rewards.push(motion.compute({ frames: F, height: h, width: w, depth: d, points: pts, ...cams }));
    }
    const mean = rewards.reduce((a, r) => a + r, 0) / G;
    const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / G);
    const sorted = Float32Array.from(depth).sort();
    stats.push({
      prompt: prompts[p]!,
      heldOut: p >= train.length,
      rewards,
      mean,
      std,
      medianDepth: sorted[sorted.length >> 1]!,
      inRoom,
    });
  }
  await den.release();
  await lgm.release();
  return stats;
}

/** r_motion of ground-truth toy videos, smooth and jittered, as a reference for the samples'. */
function groundTruthMotion(prompts: string[], space: Space): { smooth: number; jittery: number } {
  const F = latentDims(space).F;
  const rng = new Rng(99);
  const scenes = new Map<string, Scene>();
  let smooth = 0;
  let jittery = 0;
  for (const p of prompts) {
    for (const s of [1, 0]) {
      const sc = promptScenario(p);
      const scene = scenes.get(p) ?? makeScene(sc.sceneSeed, { dynamic: sc.dynamic });
      scenes.set(p, scene);
      const traj = makeTrajectory(
        sc.family,
        s
          ? {}
          : {
              jitterPos: rng.uniform(0.03, 0.12),
              jitterRot: rng.uniform(0.01, 0.05),
              seed: rng.int(0, 1 << 30),
            },
      );
      const g =
        space === 'learned'
          ? renderToyVideo(scene, traj, { pos: 0, rot: 0 }, sc.dynamic)?.geometry
          : encodeScene(scene, traj).geometry;
      if (!g) continue;
      const r = motion.compute({
        frames: F,
        height: g.height,
        width: g.width,
        depth: g.depth,
        points: g.points,
        extrinsics: g.extrinsics,
        intrinsics: g.intrinsics,
      });
      if (s) smooth += r / prompts.length;
      else jittery += r / prompts.length;
    }
  }
  return { smooth, jittery };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      space: { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      threads: { type: 'string' },
      'smooth-fraction': { type: 'string' },
      'jitter-pos': { type: 'string' },
      'jitter-rot': { type: 'string' },
      'camera-weight': { type: 'string' },
      'videos-per-prompt': { type: 'string' },
      'eval-seed': { type: 'string' },
      out: { type: 'string' },
      'eval-only': { type: 'boolean', default: false },
      'no-eval': { type: 'boolean', default: false },
    },
  });
  const space = values.space ?? 'analytic';
  if (space !== 'analytic' && space !== 'learned')
    throw new Error(`--space: ${space} is not analytic or learned`);
  const o: PretrainOptions = {
    ...(space === 'learned' ? LEARNED_DEFAULTS : PRETRAIN_DEFAULTS),
    ...(values.steps ? { steps: Number(values.steps) } : {}),
    ...(values.batch ? { batch: Number(values.batch) } : {}),
    ...(values.lr ? { lr: Number(values.lr) } : {}),
    ...(values.threads ? { threads: Number(values.threads) } : {}),
    ...(values['smooth-fraction'] ? { smoothFraction: Number(values['smooth-fraction']) } : {}),
    ...(values['jitter-pos'] ? { jitterPos: Number(values['jitter-pos']) } : {}),
    ...(values['jitter-rot'] ? { jitterRot: Number(values['jitter-rot']) } : {}),
    ...(values['camera-weight'] ? { cameraWeight: Number(values['camera-weight']) } : {}),
    ...(values['videos-per-prompt'] ? { videosPerPrompt: Number(values['videos-per-prompt']) } : {}),
  };
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const committed = space === 'learned' ? DENOISER_LEARNED_WEIGHTS : DENOISER_WEIGHTS;
  const out = values.out ?? committed;
  let weights: Map<string, Float32Array>;
  if (values['eval-only']) {
    weights = readWeights(out) ?? new Map();
  } else {
    const t0 = Date.now();
    weights = await pretrain(o, log);
    const tensors = new Map([...weights].map(([k, v]) => [k, f32([v.length], v)]));
    // Keep each parameter's shape in the file.
    for (const p of buildDenoiser({ space }).params) tensors.set(p.name, f32(p.shape, weights.get(p.name)!));
    writeSafetensors(out, tensors, {
      'vggrpo.kind': 'toy-denoiser-weights',
      'vggrpo.pretrain': JSON.stringify(recordedOptions(o)),
    });
    log(`wrote ${out} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    if (out === committed) for (const p of Object.values(buildFixtures())) log(`rebuilt ${p}`);
  }
  if (values['no-eval']) return;
  const train = readPromptFile('prompts.txt');
  const heldOut = readPromptFile('prompts-heldout.txt');
  // Three evaluation seeds: one group of 8 per prompt and seed.
  const evalSeeds = values['eval-seed'] ? [Number(values['eval-seed'])] : [1000, 2000, 3000];
  const stats: GroupStats[] = [];
  for (const seed of evalSeeds) {
    const part = await evaluateGroups(weights, train, heldOut, o.threads, 8, seed, space);
    for (const s of part) {
      log(
        `seed ${seed} ${s.heldOut ? 'held-out' : 'train   '} mean ${s.mean.toFixed(3)} std ${s.std.toFixed(3)} depth ${s.medianDepth.toFixed(2)} in-room ${s.inRoom.toFixed(2)}  ${s.prompt}`,
      );
    }
    stats.push(...part);
  }
  const ok = stats.filter((s) => s.std >= 0.02).length / stats.length;
  const gt = groundTruthMotion(train, space);
  log(`ground-truth r_motion: smooth ${gt.smooth.toFixed(3)}, jittery ${gt.jittery.toFixed(3)}`);
  const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  log(
    `mean r_motion of samples ${meanOf(stats.map((s) => s.mean)).toFixed(3)}, mean within-group std ${meanOf(stats.map((s) => s.std)).toFixed(3)}`,
  );
  log(`groups with std(r_motion) ≥ 0.02: ${(100 * ok).toFixed(0)}% of ${stats.length}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
