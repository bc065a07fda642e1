/**
 * `sample`: roll out the policy with the Flow-GRPO SDE, a group of G videos per prompt run in
 * the micro-batches of src/rl/rollout.ts, and write trajectory shards (a group never spans two
 * shards).
 */
import { join, relative, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { NoisePool } from '../rl/noise-pool.js';
import { loadPolicy, type Policy } from '../rl/policy.js';
import { groupSeed, sampleSeed } from '../rl/prng.js';
import { RewardGuidance } from '../rl/reward-guidance.js';
import {
  batchContext,
  groupVelocity,
  microBatchSlices,
  type RolloutLayout,
  rolloutLayout,
  usesCfg,
} from '../rl/rollout.js';
import { sdeWindow, shiftedSigmas } from '../rl/schedule.js';
import { odeStep, type SdeCoefficients, sdeCoefficients, sdeSampleInPlace } from '../rl/sde.js';
import { checkDims } from '../runtime/contract.js';
import { runId } from '../shards/completeness.js';
import { nonfiniteSamples } from '../shards/finite.js';
import { fileHash, modelFingerprint, writeShardAsync } from '../shards/shard.js';
import { f32, i64, type Tensor, tensor } from '../shards/tensor.js';
import { type Conditioning, conditioning } from './context.js';

export interface SampleOptions {
  config: Config;
  prompts?: string;
  embeddings?: string;
  out?: string;
  policy?: string;
  /** Sample only part `index` (0-based) of `count` of the run: whole shards, global indices. */
  part?: { index: number; count: number };
}

export interface SampleResult {
  shards: string[];
  samples: number;
  warnings: string[];
}

/**
 * The shards of part `index` of `count`: a contiguous range, so that the parts together write
 * exactly the shards (and bytes) one process writes — seeds and shard indices are global.
 */
export function partRange(shards: number, part?: { index: number; count: number }): [number, number] {
  if (!part) return [0, shards];
  return [
    Math.floor((part.index * shards) / part.count),
    Math.floor(((part.index + 1) * shards) / part.count),
  ];
}

/** Default run folder for a fresh `sample`: runs/<UTC time>/trajectory. */
export function defaultSampleOut(now = new Date()): string {
  const stamp = now.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z');
  return join('runs', stamp, 'trajectory');
}

/**
 * @example
 *   await runSample({ config, prompts: 'examples/toy/prompts.txt', out: 'runs/t' }, console.log, console.error);
 */
export async function runSample(
  opts: SampleOptions,
  emit: (path: string) => void,
  note: (msg: string) => void,
): Promise<SampleResult> {
  const { config } = opts;
  const s = config.sampler;
  const layout = rolloutLayout(s);
  // Started first: the noise worker boots while the text encoder and the denoiser load.
  const noisePool = new NoisePool();
  let policy: Policy | undefined;
  let guide: RewardGuidance | undefined;
  try {
    const cond = await conditioning(config, opts);
    // use_ema without --policy: the base model, which is its own average.
    policy = await loadPolicy(config, opts.policy, { ema: s.use_ema });
    for (const w of policy.warnings) note(`warning: ${w}`);
    checkDims(
      [cond.L, cond.D],
      [policy.shape.L, policy.shape.D],
      cond.sources[0] ?? 'prompts',
      'context',
      'context shape [L, D]',
    );
    const { C, F, H, W } = policy.shape;
    // The schedule as stored (F32), so sample and grpo-step compute from identical sigmas.
    const sigmas = Float32Array.from(shiftedSigmas(s.steps, s.shift));
    // Test-time reward guidance (src/rl/reward-guidance.ts): checked and built before any work.
    if (s.reward_guidance.scale !== null)
      guide = await RewardGuidance.open(config, [C, F, H, W], s.group_size, sigmas);
    return await sampleShards({ opts, cond, policy, guide, noisePool, sigmas, layout }, emit, note);
  } finally {
    await policy?.session.release();
    await guide?.release();
    noisePool.close();
  }
}

/** What one `sample` run holds while it rolls out. */
interface SampleRun {
  opts: SampleOptions;
  cond: Conditioning;
  policy: Policy;
  guide?: RewardGuidance;
  noisePool: NoisePool;
  sigmas: Float32Array;
  layout: RolloutLayout;
}

/** One shard's arrays, filled group by group (rows k·G … k·G + G − 1 for its k-th group). */
interface ShardBuffers {
  groupIds: number[];
  latents: Float32Array;
  logProbs: Float32Array;
  finals: Float32Array;
  context: Float32Array;
  nonfinite: Uint8Array;
  seeds: bigint[];
}

/** The shards of this part of the run. */
async function sampleShards(
  r: SampleRun,
  emit: (path: string) => void,
  note: (msg: string) => void,
): Promise<SampleResult> {
  const { opts, cond, policy, noisePool, sigmas } = r;
  const { config } = opts;
  const s = config.sampler;
  const { C, F, H, W } = policy.shape;
  const M = C * F * H * W;
  const G = s.group_size;
  const window = s.ode ? [] : sdeWindow(s.sde_window, s.steps);
  const T = window.length;
  const { L, D } = cond;
  const P = cond.prompts.length;
  const outDir = resolve(opts.out ?? defaultSampleOut());
  const shards: string[] = [];
  const warnings: string[] = [...policy.warnings];
  const started = Date.now();
  const seedsOf = (p: number) => Array.from({ length: G }, (_, b) => sampleSeed(s.seed, p * G + b));
  // A group's initial latents; the next group's are drawn on the worker while this group runs.
  const startOf = (p: number) =>
    noisePool.draw(s.initial_noise === 'group' ? Array(G).fill(groupSeed(s.seed, p)) : seedsOf(p), null, M);
  const count = Math.ceil(P / s.per_shard);
  const [firstShard, endShard] = partRange(count, opts.part);
  const endPrompt = Math.min(P, endShard * s.per_shard);
  let nextStart = firstShard < endShard ? startOf(firstShard * s.per_shard) : undefined;
  let done = 0;
  const lineage = [...cond.sources, ...(opts.policy ? [join(opts.policy, 'adapter_model.safetensors')] : [])];
  const denoiser = modelFingerprint(policy.denoiserPath);
  // The run is what defines it (config, inputs' contents), so the same command gives the same id.
  // Where it runs (device, threads) is not what defines a run: parts of one run may differ there.
  const run = runId({ config: { ...config, runtime: undefined }, inputs: lineage.map(fileHash), denoiser });
  const steps = { window, coeffs: window.map((i) => sdeCoefficients(sigmas, i, s.noise_level)) };

  let written: Promise<void> | undefined;
  try {
    for (let shardNo = firstShard; shardNo < endShard; shardNo++) {
      const first = shardNo * s.per_shard;
      const groupIds = Array.from({ length: Math.min(s.per_shard, P - first) }, (_, k) => first + k);
      const B = groupIds.length * G;
      const buf: ShardBuffers = {
        groupIds,
        latents: new Float32Array(B * (T + 1) * M),
        logProbs: new Float32Array(B * T),
        finals: new Float32Array(B * M),
        context: new Float32Array(B * L * D),
        nonfinite: new Uint8Array(B),
        seeds: groupIds.flatMap(seedsOf),
      };
      for (const [k, p] of groupIds.entries()) {
        for (let b = 0; b < G; b++) buf.context.set(cond.contexts[p]!, (k * G + b) * L * D);
        // An ordinary buffer of the group's own, fed to onnxruntime and stepped in place.
        const x = (await nextStart!.take()).slice();
        // The next group's start is queued behind this group's first noise.
        const prefetch = () => {
          nextStart = p + 1 < endPrompt ? startOf(p + 1) : undefined;
        };
        await rolloutGroup(r, { p, k, x, prefetch }, steps, buf);
        for (const w of flagNonfinite(buf, { k, p, G, T }, x)) {
          warnings.push(w);
          note(`warning: ${w}`);
        }
        done++;
        note(
          `sample: group ${done}/${endPrompt - firstShard * s.per_shard} (prompt ${p}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
      }
      const tensors = trajectoryTensors(r, buf, window);
      const path = join(outDir, `shard-${String(shardNo).padStart(4, '0')}.safetensors`);
      // Written while the next shard rolls out (one shard in flight).
      await written;
      written = writeShardAsync(path, 'trajectory', tensors, {
        config,
        inputs: lineage,
        place: { run, index: shardNo, count },
        extra: {
          'vggrpo.prompts': JSON.stringify(cond.prompts),
          // Relative to the shard's folder, like every lineage entry (src/shards/lineage.ts).
          'vggrpo.policy': opts.policy ? relative(outDir, resolve(opts.policy)) || '.' : '',
          'vggrpo.denoiser': denoiser,
          // Guided rollouts are not samples of the policy: grpo-step refuses them.
          ...(r.guide ? { 'vggrpo.reward_guidance': JSON.stringify(r.guide.plan) } : {}),
        },
      }).then(() => {
        shards.push(path);
        emit(path);
      });
      written.catch(() => {}); // awaited below; an error meanwhile must not leave it unhandled
    }
    await written;
  } finally {
    // Never return (or fail) with a write in flight: its temp file would outlive the process.
    await written?.catch(() => {});
  }
  return { shards, samples: (endPrompt - firstShard * s.per_shard) * G, warnings };
}

/** Mark group k's non-finite samples in buf.nonfinite; the warnings, one per sample. */
function flagNonfinite(
  buf: ShardBuffers,
  group: { k: number; p: number; G: number; T: number },
  x: Float32Array,
): string[] {
  const { k, p, G, T } = group;
  const bad = nonfiniteSamples(x, G);
  const warnings: string[] = [];
  for (let b = 0; b < G; b++) {
    for (let t = 0; t < T; t++) if (!Number.isFinite(buf.logProbs[(k * G + b) * T + t] ?? 0)) bad[b] = 1;
    if (!bad[b]) continue;
    buf.nonfinite[k * G + b] = 1;
    warnings.push(
      `prompt ${p} sample ${b}: non-finite latents (model output); it will score the group minimum`,
    );
  }
  return warnings;
}

/** The trajectory shard's tensors (src/shards/schema.ts). */
function trajectoryTensors(r: SampleRun, buf: ShardBuffers, window: number[]): Record<string, Tensor> {
  const s = r.opts.config.sampler;
  const { C, F, H, W } = r.policy.shape;
  const { L, D } = r.cond;
  const G = s.group_size;
  const B = buf.groupIds.length * G;
  const T = window.length;
  const rows = buf.groupIds.flatMap((p) => Array(G).fill(p));
  const tensors: Record<string, Tensor> = {
    latents: f32([B, T + 1, C, F, H, W], buf.latents),
    step_index: i64([T], window),
    sigmas: f32([s.steps + 1], r.sigmas),
    log_probs: f32([B, T], buf.logProbs),
    final_latents: f32([B, C, F, H, W], buf.finals),
    context: f32([B, L, D], buf.context),
    seed: i64([B], buf.seeds),
    nonfinite: tensor('U8', [B], buf.nonfinite),
    group_index: i64([B], rows),
    prompt_index: i64([B], rows),
  };
  if (usesCfg(r.layout)) tensors.uncond_context = f32([1, L, D], r.cond.uncond!);
  return tensors;
}

/**
 * Roll out group `k` of the shard (prompt p) from its initial latents x, which it steps in place:
 * x holds the final latents afterwards. Recorded latents and log-probs go into `buf`;
 * `prefetch` runs once the group's first noise is asked for.
 */
async function rolloutGroup(
  r: SampleRun,
  group: { p: number; k: number; x: Float32Array; prefetch: () => void },
  steps: { window: number[]; coeffs: SdeCoefficients[] },
  buf: ShardBuffers,
): Promise<void> {
  const { p, k, x } = group;
  const { cond, policy, guide, noisePool, sigmas, layout } = r;
  const s = r.opts.config.sampler;
  const G = s.group_size;
  const M = x.length / G;
  const { L, D } = cond;
  const { window, coeffs } = steps;
  const T = window.length;
  const groupSeeds = buf.seeds.slice(k * G, (k + 1) * G);
  // The group's denoiser batches (src/rl/rollout.ts): grpo-step reruns exactly these.
  const ctxs = microBatchSlices(G, layout.microBatch).map(([a, b]) =>
    batchContext(layout, Array(b - a).fill(cond.contexts[p]!), cond.uncond, L, D),
  );
  const record = (t: number) => {
    for (let b = 0; b < G; b++)
      buf.latents.set(x.subarray(b * M, (b + 1) * M), ((k * G + b) * (T + 1) + t) * M);
  };
  const stepLogProbs = new Float32Array(G);
  // Each step's noise is drawn on a worker while the denoiser runs on the main thread.
  let nextNoise = window.includes(0) ? noisePool.draw(groupSeeds, 0, M) : undefined;
  group.prefetch();
  for (let i = 0; i < s.steps; i++) {
    const t = window.indexOf(i);
    const noiseP = nextNoise;
    nextNoise = window.includes(i + 1) ? noisePool.draw(groupSeeds, i + 1, M) : undefined;
    const vPolicy = await groupVelocity(policy, layout, x, sigmas[i]!, ctxs);
    // Guided rollouts are not samples of the policy (grpo-step refuses them), so the
    // denoiser link runs the whole group as one batch.
    const v = guide?.guides(i)
      ? (
          await guide.correct(x, vPolicy, sigmas[i]!, {
            policy,
            context: batchContext(layout, Array(G).fill(cond.contexts[p]!), cond.uncond, L, D),
            guidance: s.guidance,
          })
        ).velocity
      : vPolicy;
    if (t < 0) {
      odeStep(x, v, sigmas, i, x);
      continue;
    }
    record(t);
    sdeSampleInPlace(x, v, await noiseP!.take(), coeffs[t]!, G, stepLogProbs);
    for (let b = 0; b < G; b++) buf.logProbs[(k * G + b) * T + t] = stepLogProbs[b]!;
    if (t === T - 1) record(T);
  }
  buf.finals.set(x, k * G * M);
}
