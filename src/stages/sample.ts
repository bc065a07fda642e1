/**
 * `sample`: roll out the policy with the Flow-GRPO SDE, a group of G videos per prompt run in
 * the micro-batches of src/rl/rollout.ts, and write trajectory shards (a group never spans two
 * shards).
 */
import { join, relative, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { NoisePool } from '../rl/noise-pool.js';
import { loadPolicy } from '../rl/policy.js';
import { groupSeed, sampleSeed } from '../rl/prng.js';
import { RewardGuidance } from '../rl/reward-guidance.js';
import { batchContext, groupVelocity, microBatchSlices, rolloutLayout, usesCfg } from '../rl/rollout.js';
import { sdeWindow, shiftedSigmas } from '../rl/schedule.js';
import { odeStep, sdeStep } from '../rl/sde.js';
import { checkDims } from '../runtime/contract.js';
import { runId } from '../shards/completeness.js';
import { nonfiniteSamples } from '../shards/finite.js';
import { fileHash, modelFingerprint, writeShard } from '../shards/shard.js';
import { f32, i64, type Tensor, tensor } from '../shards/tensor.js';
import { conditioning } from './context.js';

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
  const cond = await conditioning(config, opts);
  // use_ema without --policy: the base model, which is its own average.
  const policy = await loadPolicy(config, opts.policy, { ema: s.use_ema });
  for (const w of policy.warnings) note(`warning: ${w}`);
  const { C, F, H, W } = policy.shape;
  checkDims(
    [cond.L, cond.D],
    [policy.shape.L, policy.shape.D],
    cond.sources[0] ?? 'prompts',
    'context',
    'context shape [L, D]',
  );
  const M = C * F * H * W;
  const G = s.group_size;
  // The schedule as stored (F32), so sample and grpo-step compute from identical sigmas.
  const sigmas = Float32Array.from(shiftedSigmas(s.steps, s.shift));
  const window = s.ode ? [] : sdeWindow(s.sde_window, s.steps);
  const T = window.length;
  const cfg = usesCfg(layout);
  const outDir = resolve(opts.out ?? defaultSampleOut());
  const shards: string[] = [];
  const warnings: string[] = [...policy.warnings];
  const P = cond.prompts.length;
  const L = cond.L;
  const D = cond.D;
  const started = Date.now();
  // Test-time reward guidance (src/rl/reward-guidance.ts): checked and built before any work.
  const guide =
    s.reward_guidance.scale !== null
      ? await RewardGuidance.open(config, [C, F, H, W], G, sigmas).catch(async (err) => {
          await policy.session.release();
          throw err;
        })
      : undefined;
  const noisePool = new NoisePool();
  const seedsOf = (p: number) => Array.from({ length: G }, (_, b) => sampleSeed(s.seed, p * G + b));
  // A group's initial latents; the next group's are drawn on the worker while this group runs.
  const startOf = (p: number) =>
    noisePool.draw(s.initial_noise === 'group' ? Array(G).fill(groupSeed(s.seed, p)) : seedsOf(p), null, M);
  let nextStart: Promise<Float32Array> | undefined;
  let done = 0;
  const count = Math.ceil(P / s.per_shard);
  const lineage = [...cond.sources, ...(opts.policy ? [join(opts.policy, 'adapter_model.safetensors')] : [])];
  // The run is what defines it (config, inputs' contents), so the same command gives the same id.
  // Where it runs (device, threads) is not what defines a run: parts of one run may differ there.
  const run = runId({
    config: { ...config, runtime: undefined },
    inputs: lineage.map(fileHash),
    denoiser: modelFingerprint(policy.denoiserPath),
  });

  const [firstShard, endShard] = partRange(count, opts.part);
  const endPrompt = Math.min(P, endShard * s.per_shard);
  try {
    for (let shardNo = firstShard; shardNo < endShard; shardNo++) {
      const first = shardNo * s.per_shard;
      const groupIds = Array.from({ length: Math.min(s.per_shard, P - first) }, (_, k) => first + k);
      const B = groupIds.length * G;
      const latents = new Float32Array(B * (T + 1) * M);
      const logProbs = new Float32Array(B * T);
      const finals = new Float32Array(B * M);
      const context = new Float32Array(B * L * D);
      const seeds: bigint[] = groupIds.flatMap(seedsOf);
      const nonfinite = new Uint8Array(B);
      for (const [k, p] of groupIds.entries()) {
        const groupSeeds = seeds.slice(k * G, (k + 1) * G);
        for (let b = 0; b < G; b++) context.set(cond.contexts[p]!, (k * G + b) * L * D);
        // The group's denoiser batches (src/rl/rollout.ts): grpo-step reruns exactly these.
        const ctxs = microBatchSlices(G, layout.microBatch).map(([a, b]) =>
          batchContext(layout, Array(b - a).fill(cond.contexts[p]!), cond.uncond, L, D),
        );
        let x = await (nextStart ?? startOf(p));
        // Each step's noise is drawn on a worker while the denoiser runs on the main thread.
        let nextNoise = window.includes(0) ? noisePool.draw(groupSeeds, 0, M) : undefined;
        nextStart = p + 1 < endPrompt ? startOf(p + 1) : undefined;
        for (let i = 0; i < s.steps; i++) {
          const t = window.indexOf(i);
          const noiseP = nextNoise;
          nextNoise = window.includes(i + 1) ? noisePool.draw(groupSeeds, i + 1, M) : undefined;
          const vPolicy = await groupVelocity(policy, layout, x, sigmas[i]!, ctxs);
          const noise = t >= 0 ? await noiseP : undefined;
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
          if (t >= 0) {
            for (let b = 0; b < G; b++)
              latents.set(x.subarray(b * M, (b + 1) * M), ((k * G + b) * (T + 1) + t) * M);
            const r = sdeStep({ x, v, sigmas, i, batch: G, noiseLevel: s.noise_level, noise });
            for (let b = 0; b < G; b++) logProbs[(k * G + b) * T + t] = r.logProb[b]!;
            x = r.next;
            if (t === T - 1) {
              for (let b = 0; b < G; b++)
                latents.set(x.subarray(b * M, (b + 1) * M), ((k * G + b) * (T + 1) + T) * M);
            }
          } else x = odeStep(x, v, sigmas, i);
        }
        finals.set(x, k * G * M);
        const bad = nonfiniteSamples(x, G);
        for (let b = 0; b < G; b++) {
          for (let t = 0; t < T; t++) if (!Number.isFinite(logProbs[(k * G + b) * T + t] ?? 0)) bad[b] = 1;
          if (bad[b]) {
            nonfinite[k * G + b] = 1;
            const w = `prompt ${p} sample ${b}: non-finite latents (model output); it will score the group minimum`;
            warnings.push(w);
            note(`warning: ${w}`);
          }
        }
        done++;
        note(
          `sample: group ${done}/${endPrompt - firstShard * s.per_shard} (prompt ${p}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
      }
      const tensors: Record<string, Tensor> = {
        latents: f32([B, T + 1, C, F, H, W], latents),
        step_index: i64([T], window),
        sigmas: f32([s.steps + 1], sigmas),
        log_probs: f32([B, T], logProbs),
        final_latents: f32([B, C, F, H, W], finals),
        context: f32([B, L, D], context),
        seed: i64([B], seeds),
        nonfinite: tensor('U8', [B], nonfinite),
        group_index: i64(
          [B],
          groupIds.flatMap((p) => Array(G).fill(p)),
        ),
        prompt_index: i64(
          [B],
          groupIds.flatMap((p) => Array(G).fill(p)),
        ),
      };
      if (cfg) tensors.uncond_context = f32([1, L, D], cond.uncond!);
      const path = join(outDir, `shard-${String(shardNo).padStart(4, '0')}.safetensors`);
      writeShard(path, 'trajectory', tensors, {
        config,
        inputs: lineage,
        place: { run, index: shardNo, count },
        extra: {
          'vggrpo.prompts': JSON.stringify(cond.prompts),
          // Relative to the shard's folder, like every lineage entry (src/shards/lineage.ts).
          'vggrpo.policy': opts.policy ? relative(outDir, resolve(opts.policy)) || '.' : '',
          'vggrpo.denoiser': modelFingerprint(policy.denoiserPath),
          // Guided rollouts are not samples of the policy: grpo-step refuses them.
          ...(guide ? { 'vggrpo.reward_guidance': JSON.stringify(guide.plan) } : {}),
        },
      });
      shards.push(path);
      emit(path);
    }
  } finally {
    await policy.session.release();
    await guide?.release();
    await noisePool.close();
  }
  return { shards, samples: (endPrompt - firstShard * s.per_shard) * G, warnings };
}
