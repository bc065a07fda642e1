/**
 * `grpo-step`: one GRPO update of the LoRA policy from scored rollouts. Reads reward shards,
 * follows their lineage to the trajectories, recomputes log-probs with the LoRA-injected
 * denoiser and applies AdamW to the clipped GRPO loss (+ β·KL to the LoRA-off model).
 * `--grads-only` / `--apply` split the work into map-reduce over files.
 */

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { canonicalJson, resolveConfig as resolveLayers } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { InputError, RuntimeFailure } from '../errors.js';
import { buildGradientGraph } from '../onnx/autodiff.js';
import { decodeModel } from '../onnx/model.js';
import {
  type AdamWState,
  adamwInit,
  adamwStep,
  clipGradNorm,
  nonFiniteGrads,
  type ParamMap,
} from '../rl/adamw.js';
import { saveCheckpoint } from '../rl/checkpoint.js';
import { CheckpointedGradient } from '../rl/checkpointed-gradient.js';
import { emaInit, emaUpdate } from '../rl/ema.js';
import { assertRatioOne } from '../rl/grpo.js';
import { learningRate } from '../rl/lr-schedule.js';
import { loadPolicy, type Policy, runtimeOptions } from '../rl/policy.js';
import {
  type GrpoSettings,
  microBatchGradient,
  onePassGradient,
  withAffineCotangent,
} from '../rl/policy-gradient.js';
import {
  denoiserBatch,
  type RolloutLayout,
  type RolloutUnit,
  rolloutUnits,
  type TrajectoryView,
  trajectoryView,
  unitMicroBatch,
} from '../rl/rollout.js';
import { selectTrainSteps } from '../rl/schedule.js';
import {
  checkTrainingHash,
  differingKeys,
  type TrainingKeys,
  trainingHash,
  trainingKeys,
} from '../rl/training-hash.js';
import { checkDims } from '../runtime/contract.js';
import { openModel } from '../runtime/model-cache.js';
import { gradientRuntime, type ModelSession } from '../runtime/session.js';
import { atomicAppend } from '../shards/atomic.js';
import { followInput, LineageRoots, lineagePath } from '../shards/lineage.js';
import { modelFingerprint, readShard, type Shard, writeShard } from '../shards/shard.js';
import { f32, type Tensor, toNumbers } from '../shards/tensor.js';
import type { ConfigResolver, StageInputs, StageIo } from './types.js';

/** A gradient graph's session, or the checkpointed runner with the same contract. */
type GradientRunner = ModelSession | CheckpointedGradient;

export interface GrpoStepResult {
  checkpoint?: string;
  gradients?: string;
  metrics: Record<string, number>;
}

/**
 * Follow a reward shard's lineage (rewards → geometry → trajectory), checking content hashes;
 * only files under `roots` are opened (src/shards/lineage.ts). Without roots: the reward
 * shard's run folder (the folder above its own).
 */
export function findTrajectory(rewards: Shard, roots?: LineageRoots): Shard {
  const allowed = roots ?? new LineageRoots([dirname(dirname(resolve(rewards.path)))]);
  const geom = followInput(rewards, 0, 'geometry', allowed);
  const traj = followInput(geom, 0, 'trajectory', allowed);
  const a = toNumbers(rewards.tensors.get('group_index')!);
  const b = toNumbers(traj.tensors.get('group_index')!);
  if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
    throw new InputError(rewards.path, `group_index differs from its trajectory shard ${traj.path}`);
  }
  return traj;
}

/**
 * Micro-batches of a rollout: each unit of the layout it was sampled in (src/rl/rollout.ts) at
 * each train step.
 */
export function* microBatches(
  r: Pick<Rollouts, 'rewards' | 'trajectory'>,
  trainSteps: number[],
  skipped: string[],
) {
  const view = trajectoryView(r.trajectory, recordedSampler(r.trajectory));
  const adv = r.rewards.tensors.get('advantages')!.data as Float32Array;
  for (const unit of rolloutUnits(view, skipped))
    for (const t of trainSteps) if (t < view.T) yield unitMicroBatch(unit, adv, t);
}

/** The sampler settings a trajectory was sampled with: its recorded config. */
export function recordedSampler(traj: Shard): Config['sampler'] {
  return resolveLayers([traj.config], `${traj.path} (recorded vggrpo.config)`).sampler;
}

/**
 * The gradient graph of the LoRA-injected denoiser for one batch size (cached); `onePass`: the
 * variant that computes its own velocity cotangent (the first inner step, see policy-gradient).
 */
export async function gradientSession(
  policy: Policy,
  config: Config,
  batch: number,
  cache: Map<string, GradientRunner>,
  onePass = false,
): Promise<GradientRunner> {
  const key = `${batch}:${onePass}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const { C, F, H, W, L, D } = policy.shape;
  const wrt = [...policy.lora.params.keys()];
  const shapes = {
    latents: [batch, C, F, H, W],
    timestep: [batch],
    context: [batch, L, D],
    ...loraShapes(policy),
  };
  if (config.grpo.checkpointing === 'blocks') {
    // Same contract as the one-run graph, segment by segment (it reads the affine cotangent too).
    const b = config.grpo.checkpoint_boundaries;
    const s = await CheckpointedGradient.open(
      decodeModel(policy.modelBytes, policy.denoiserPath),
      { wrt, shapes, boundaries: b.length ? b : undefined },
      runtimeOptions(config),
      `${policy.denoiserPath} (checkpointed gradient)`,
    );
    cache.set(key, s);
    return s;
  }
  const { model } = buildGradientGraph(decodeModel(policy.modelBytes, policy.denoiserPath), { wrt, shapes });
  const s = await openModel(
    onePass ? withAffineCotangent(model, 'velocity', [batch, C, F, H, W]) : model,
    gradientRuntime(runtimeOptions(config)),
    `${policy.denoiserPath} (gradient graph)`,
  );
  cache.set(key, s);
  return s;
}

function loraShapes(policy: Policy): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const a of policy.lora.adapters) {
    out[`lora:${a.weight}:A`] = [a.inDim, policy.lora.rank];
    out[`lora:${a.weight}:B`] = [policy.lora.rank, a.outDim];
  }
  return out;
}

export interface GrpoStepOptions {
  policy?: string;
  out?: string;
  gradsOnly: boolean;
  apply: boolean;
  seed?: number;
  /** Resume even when the checkpoint's training hash differs from the config's. */
  force?: boolean;
}

export async function runGrpoStep(
  inputs: StageInputs,
  opts: GrpoStepOptions,
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<GrpoStepResult> {
  const paths: string[] = [];
  for await (const p of inputs) paths.push(p);
  if (paths.length === 0)
    throw new InputError('', 'no input: expected reward shards as arguments or one path per line on stdin');
  const roots = inputs.roots ?? new LineageRoots(paths.map((p) => dirname(dirname(resolve(p)))));
  if (opts.apply) return applyGradients(paths, opts, resolveConfig, io);

  const { rollouts, config } = loadRollouts(paths, roots, resolveConfig, io);
  // Without --policy, the policy the rollouts were sampled with is followed (checked as lineage).
  const policyDir = opts.policy ?? recordedPolicy(rollouts[0]!.trajectory, roots);
  checkRolloutPolicies(rollouts, config, policyDir, io);
  const policy = await loadPolicy(config, policyDir);
  for (const w of policy.warnings) io.note(`warning: ${w}`);
  const g = config.grpo;
  const training = trainingKeys(config);
  const outDir = resolve(
    opts.out ?? join(dirname(dirname(resolve(paths[0]!))), opts.gradsOnly ? 'gradients' : 'policy'),
  );
  const sessions = new Map<string, GradientRunner>();
  try {
    for (const r of rollouts) checkRolloutShapes(r.trajectory, policy);
    if (policyDir)
      checkTrainingHash(policy.checkpoint?.state, training, join(policyDir, 'state.json'), !!opts.force);
    const minibatches = g.minibatches ?? 1;
    if (opts.gradsOnly && minibatches > 1)
      throw new InputError(
        'grpo.minibatches',
        `${minibatches}: a gradient shard is one optimiser step (--grads-only and --apply need 1)`,
      );
    const run = trainingRun(policy, config, rollouts, sessions, opts.seed);
    const units = rollouts.flatMap((r) =>
      rolloutUnits(r.view, run.skipped).map((unit) => ({ unit, advantages: advantagesOf(r) })),
    );
    for (const w of run.skipped) io.note(`warning: ${w}`);
    if (units.length === 0)
      throw new RuntimeFailure('no trainable group: every group had non-finite samples; no update made');
    const samples = rollouts.reduce((a, r) => a + advantagesOf(r).length, 0);
    if (opts.gradsOnly) {
      const { grads, stats } = await accumulateGradients(run, units, true);
      const { loss } = meanGradient(grads, stats, g.kl_beta);
      const out = join(outDir, `${basename(paths[0]!, '.safetensors')}.grads.safetensors`);
      writeGradientShard(out, {
        policy,
        config,
        grads,
        paths,
        rollouts,
        samples,
        microBatches: stats.n,
        policyDir,
      });
      io.emit(out);
      return { gradients: out, metrics: { loss, samples } };
    }
    const parts = minibatchParts(units, minibatches);
    const optimizer = policy.checkpoint?.optimizer ?? adamwInit(policy.lora.params);
    const ema = g.ema ? (policy.checkpoint?.ema?.params ?? emaInit(policy.lora.params)) : undefined;
    const step = (policy.checkpoint?.state.step ?? 0) + 1;
    let metrics: Record<string, number> = {};
    const metricLines: string[] = [];
    for (let inner = 0; inner < g.inner_steps; inner++) {
      for (const [part, batch] of parts.entries()) {
        // The rollouts' own policy only on the first optimiser step: there r = 1 (docs/METHOD.md).
        const first = inner === 0 && part === 0;
        const { grads, stats } = await accumulateGradients(run, batch, first);
        const { loss, klMean } = meanGradient(grads, stats, g.kl_beta);
        const { gradNorm, lr } = applyUpdate(policy.lora.params, grads, optimizer, ema, g);
        metrics = {
          step,
          inner,
          ...(minibatches > 1 ? { minibatch: part } : {}),
          lr,
          loss,
          policy_loss: stats.loss / stats.n,
          kl: klMean,
          approx_kl: stats.approxKl / stats.n,
          clip_fraction: stats.clip / stats.n,
          grad_norm: gradNorm,
          ratio_min: stats.rmin,
          ratio_max: stats.rmax,
          samples,
          ...(inputs.missing ? { shards_missing: inputs.missing } : {}),
        };
        io.note(
          `grpo-step: inner ${inner}${minibatches > 1 ? ` minibatch ${part}` : ''}: loss ${loss.toExponential(4)} kl ${klMean.toExponential(3)} ` +
            `approx-kl ${metrics.approx_kl!.toExponential(3)} clip ${metrics.clip_fraction!.toFixed(3)} ` +
            `grad-norm ${gradNorm.toExponential(3)} ratio [${stats.rmin.toFixed(6)}, ${stats.rmax.toFixed(6)}]`,
        );
        metricLines.push(`${JSON.stringify({ checkpoint: outDir, ...metrics })}\n`);
      }
    }
    saveCheckpoint(outDir, {
      lora: policy.lora,
      optimizer,
      state: {
        step,
        configHash: configHash(config),
        metrics,
        trainingHash: trainingHash(training),
        training,
      },
      baseModel: policy.denoiserPath,
      ...(ema && g.ema ? { ema: { params: ema, decay: g.ema.decay } } : {}),
    });
    // Only once the checkpoint is in place does the log describe it.
    mkdirSync(dirname(outDir), { recursive: true });
    atomicAppend(join(dirname(outDir), 'metrics.jsonl'), metricLines.join(''));
    io.emit(outDir);
    return { checkpoint: outDir, metrics };
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
}

interface Rollouts {
  rewards: Shard;
  trajectory: Shard;
  view: TrajectoryView;
}

/** A micro-batch of the rollouts (src/rl/rollout.ts) with its samples' advantages. */
interface TrainUnit {
  unit: RolloutUnit;
  advantages: Float32Array;
}

function advantagesOf(r: Pick<Rollouts, 'rewards'>): Float32Array {
  return r.rewards.tensors.get('advantages')!.data as Float32Array;
}

/**
 * Sampler keys the recomputed log-prob depends on beyond the shard's tensors: a contradicting
 * flag or config is exit 2. The others (sigmas, steps, groups) are the shard's tensors; a
 * different value is a warning, and seed and per_shard change every run, so they pass silently.
 */
const RECOMPUTE_KEYS = ['noise_level', 'guidance', 'micro_batch', 'use_ema'] as const;
const SILENT_KEYS = new Set(['seed', 'per_shard']);

/**
 * The reward shards, their trajectories, and the config: flags > --config > the rewards'
 * recorded config, except `sampler`, which always comes from the trajectory (README.md,
 * Configuration).
 */
function loadRollouts(
  paths: string[],
  roots: LineageRoots,
  resolveConfig: ConfigResolver,
  io: StageIo,
): { rollouts: Rollouts[]; config: Config } {
  const rollouts: Rollouts[] = paths.map((p) => {
    const rewards = readShard(p, 'rewards');
    const trajectory = findTrajectory(rewards, roots);
    if (trajectory.metadata['vggrpo.reward_guidance'])
      throw new InputError(
        trajectory.path,
        'was sampled with test-time reward guidance (metadata vggrpo.reward_guidance): its steps are not samples of the policy, so GRPO cannot train on them; sample without --reward-guidance',
      );
    return { rewards, trajectory, view: trajectoryView(trajectory, recordedSampler(trajectory)) };
  });
  const first = rollouts[0]!.view;
  for (const r of rollouts.slice(1)) {
    for (const key of RECOMPUTE_KEYS) {
      if (r.view.sampler[key] !== first.sampler[key])
        throw new InputError(
          r.trajectory.path,
          `sampler.${key} ${r.view.sampler[key] ?? '(absent)'} differs from ${first.sampler[key] ?? '(absent)'} in ${first.path}; one update trains rollouts of one sampler`,
        );
    }
  }
  const merged = resolveConfig(rollouts[0]!.rewards.config, rollouts[0]!.rewards.path);
  checkSamplerSettings(merged.sampler, first, io);
  return { rollouts, config: { ...merged, sampler: first.sampler } };
}

/** A flag or config that contradicts the trajectory's sampler settings (see RECOMPUTE_KEYS). */
function checkSamplerSettings(given: Config['sampler'], view: TrajectoryView, io: StageIo): void {
  const rec = view.sampler;
  for (const key of RECOMPUTE_KEYS) {
    if (given[key] !== undefined && given[key] !== rec[key])
      throw new InputError(
        `sampler.${key}`,
        `${given[key]} contradicts ${rec[key] ?? '(absent)'} recorded in ${view.path}; sampler settings come from the trajectory shard`,
      );
  }
  if (rec.use_ema && view.policy)
    throw new InputError(
      view.path,
      'sampler.use_ema: sampled with the EMA weights, not the policy being trained; its log-probs cannot be reproduced',
    );
  for (const key of Object.keys(rec) as (keyof Config['sampler'])[]) {
    if (SILENT_KEYS.has(key) || (RECOMPUTE_KEYS as readonly string[]).includes(key)) continue;
    if (canonicalJson(given[key] ?? null) !== canonicalJson(rec[key] ?? null))
      io.note(
        `warning: sampler.${key} ${canonicalJson(given[key] ?? null)} ignored: ${view.path} was sampled with ${canonicalJson(rec[key] ?? null)}`,
      );
  }
}

/** Each trajectory's recorded policy and denoiser against the ones being trained. */
function checkRolloutPolicies(
  rollouts: Rollouts[],
  config: Config,
  policyDir: string | undefined,
  io: StageIo,
) {
  for (const r of rollouts) {
    const rec = r.trajectory.metadata['vggrpo.policy'];
    const used = rec ? resolve(dirname(resolve(r.trajectory.path)), rec) : undefined;
    if (used && policyDir && used !== resolve(policyDir))
      io.note(`warning: ${r.trajectory.path} was sampled with ${used}, updating ${policyDir}`);
  }
  const denoiserPrint = config.models.denoiser ? modelFingerprint(config.models.denoiser) : '';
  for (const r of rollouts) {
    const used = r.trajectory.metadata['vggrpo.denoiser'];
    if (used && denoiserPrint && used !== denoiserPrint) {
      throw new InputError(
        r.trajectory.path,
        `was sampled with a different denoiser than ${config.models.denoiser} (fingerprint changed); its log-probs cannot be reproduced`,
      );
    }
  }
}

/** What every gradient accumulation of one grpo-step shares. */
interface TrainingRun {
  policy: Policy;
  config: Config;
  layout: RolloutLayout;
  trainSteps: number[];
  /** The first trained step's schedule index: the KL is measured there when β = 0. */
  firstTrainStep: number;
  settings: Omit<GrpoSettings, 'measureKl'>;
  sessions: Map<string, GradientRunner>;
  skipped: string[];
}

function trainingRun(
  policy: Policy,
  config: Config,
  rollouts: Rollouts[],
  sessions: Map<string, GradientRunner>,
  seed?: number,
): TrainingRun {
  const g = config.grpo;
  const view = rollouts[0]!.view;
  const trainSteps = selectTrainSteps(view.T, g.timestep_fraction, seed);
  return {
    policy,
    config,
    layout: view.layout,
    trainSteps,
    firstTrainStep: view.stepIndex[trainSteps[0]!]!,
    settings: {
      clipRange: g.clip_range,
      klBeta: g.kl_beta,
      klForm: g.kl_form,
      noiseLevel: config.sampler.noise_level,
      guidance: config.sampler.guidance,
      // Summed here, divided by the number of micro-batches actually trained (skipped ones excluded).
      weight: 1,
    },
    sessions,
    skipped: [],
  };
}

/** Sums over the micro-batches of one optimiser step. */
export interface GradientStats {
  loss: number;
  /** Σ KL over the micro-batches where it was measured, and their count. */
  kl: number;
  nKl: number;
  approxKl: number;
  clip: number;
  rmin: number;
  rmax: number;
  /** Micro-batches trained. */
  n: number;
}

/**
 * Σ of the micro-batch gradients of `units` at every train step, and their stats. `first`: the
 * first optimiser step on these rollouts, where r = 1 is checked (assertRatioOne) and one
 * onnxruntime run gives v and the gradient when it can (src/rl/policy-gradient.ts).
 */
async function accumulateGradients(
  run: TrainingRun,
  units: TrainUnit[],
  first: boolean,
): Promise<{ grads: ParamMap; stats: GradientStats }> {
  const { policy, config, settings } = run;
  const grads: ParamMap = new Map([...policy.lora.params].map(([k, v]) => [k, new Float32Array(v.length)]));
  const stats: GradientStats = {
    loss: 0,
    kl: 0,
    nKl: 0,
    approxKl: 0,
    clip: 0,
    rmin: Number.POSITIVE_INFINITY,
    rmax: Number.NEGATIVE_INFINITY,
    n: 0,
  };
  // Not for a float16 denoiser: onnxruntime places its float16→float32 Casts differently in the
  // gradient graph, whose velocity then differs from sample's in the last bits (r ≠ 1 exactly);
  // the forward session sample used gives the log-probs instead.
  const onePass = first && settings.guidance === 1 && settings.klBeta === 0 && policy.precision !== 'float16';
  for (const { unit, advantages } of units) {
    for (const t of run.trainSteps) {
      if (t >= unit.view.T) continue;
      const mb = unitMicroBatch(unit, advantages, t);
      const session = await gradientSession(
        policy,
        config,
        denoiserBatch(run.layout, mb.batch),
        run.sessions,
        onePass,
      );
      // KL to the base model is always reported; with β = 0 it is measured on the first train step only.
      const res = await (onePass ? onePassGradient : microBatchGradient)(policy, session, mb, {
        ...settings,
        measureKl: mb.stepIndex === run.firstTrainStep,
      });
      if (first) assertRatioOne(res.logpNew, mb.logpOld);
      for (const [k, gr] of res.grads) {
        const a = grads.get(k)!;
        for (let j = 0; j < a.length; j++) a[j]! += gr[j]!;
      }
      stats.loss += res.loss;
      if (Number.isFinite(res.kl)) {
        stats.kl += res.kl;
        stats.nKl++;
      }
      stats.approxKl += res.approxKl;
      stats.clip += res.clipFraction;
      stats.rmin = Math.min(stats.rmin, res.ratioMin);
      stats.rmax = Math.max(stats.rmax, res.ratioMax);
      stats.n++;
    }
  }
  return { grads, stats };
}

/** The sum made a mean over the micro-batches (in place), with its loss; non-finite is exit 1. */
function meanGradient(
  grads: ParamMap,
  stats: GradientStats,
  klBeta: number,
): { loss: number; klMean: number } {
  if (stats.n === 0)
    throw new RuntimeFailure('no trainable group: every group had non-finite samples; no update made');
  for (const a of grads.values()) for (let j = 0; j < a.length; j++) a[j]! /= stats.n;
  const klMean = stats.nKl ? stats.kl / stats.nKl : 0;
  const loss = stats.loss / stats.n + klBeta * klMean;
  const bad = nonFiniteGrads(grads);
  if (!Number.isFinite(loss) || bad.length > 0) {
    throw new RuntimeFailure(
      `non-finite ${!Number.isFinite(loss) ? `loss (${loss})` : `gradient in ${bad.slice(0, 3).join(', ')}`}; no update made, checkpoint untouched`,
    );
  }
  return { loss, klMean };
}

/**
 * `grpo.minibatches` disjoint parts of the micro-batch units, contiguous in rollout order and
 * of sizes differing by at most one; each gets its own optimiser step (Flow-GRPO's inner loop).
 */
export function minibatchParts<T>(units: T[], parts: number): T[][] {
  if (units.length < parts)
    throw new InputError(
      'grpo.minibatches',
      `${parts} parts but only ${units.length} micro-batches of rollouts to split`,
    );
  return Array.from({ length: parts }, (_, j) =>
    units.slice(Math.floor((j * units.length) / parts), Math.floor(((j + 1) * units.length) / parts)),
  );
}

/**
 * One optimiser step from a mean gradient, shared by the update and `--apply`: clip, AdamW at the
 * scheduled learning rate (src/rl/lr-schedule.ts), then the EMA (src/rl/ema.ts).
 *
 * @example
 *   const { gradNorm, lr } = applyUpdate(policy.lora.params, grads, optimizer, ema, config.grpo);
 */
export function applyUpdate(
  params: ParamMap,
  grads: ParamMap,
  optimizer: AdamWState,
  ema: ParamMap | undefined,
  g: Config['grpo'],
): { gradNorm: number; lr: number } {
  const gradNorm = clipGradNorm(grads, g.grad_clip);
  const lr = learningRate(g.lr, g.lr_schedule, optimizer.step + 1);
  adamwStep(params, grads, optimizer, { lr, betas: g.betas, eps: g.eps, weightDecay: g.weight_decay });
  if (ema && g.ema) emaUpdate(ema, params, g.ema.decay);
  return { gradNorm, lr };
}

function configHash(config: Config): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
}

/** `--grads-only`: the mean gradient as a gradient shard, through writeShard. */
function writeGradientShard(
  out: string,
  a: {
    policy: Policy;
    config: Config;
    grads: ParamMap;
    paths: string[];
    rollouts: Rollouts[];
    samples: number;
    microBatches: number;
    policyDir?: string;
  },
): void {
  const { policy } = a;
  const places = a.rollouts.flatMap((r) => (r.rewards.place ? [r.rewards.place] : []));
  const tensors: Record<string, Tensor> = {};
  for (const ad of policy.lora.adapters) {
    for (const [suffix, shape] of [
      ['A', [ad.inDim, policy.lora.rank]],
      ['B', [policy.lora.rank, ad.outDim]],
    ] as const) {
      const name = `lora:${ad.weight}:${suffix}`;
      tensors[`grad/${name}`] = f32([...shape], a.grads.get(name)!);
    }
  }
  writeShard(out, 'gradients', tensors, {
    config: a.config,
    inputs: a.paths,
    place: places[0],
    covers: places,
    extra: {
      'vggrpo.samples': String(a.samples),
      'vggrpo.micro_batches': String(a.microBatches),
      'vggrpo.policy': a.policyDir ? relative(dirname(resolve(out)), resolve(a.policyDir)) || '.' : '',
    },
  });
}

/** A trajectory's latents and context must fit the denoiser being trained. */
function checkRolloutShapes(traj: Shard, policy: Policy): void {
  const { C, F, H, W, L, D } = policy.shape;
  const lat = traj.tensors.get('latents')!;
  checkDims(lat.shape.slice(2), [C, F, H, W], traj.path, 'latents', 'latent shape [C, F, H, W]');
  const ctx = traj.tensors.get('context')!;
  checkDims(ctx.shape.slice(1), [L, D], traj.path, 'context', 'context shape [L, D]');
}

/**
 * The policy a trajectory was sampled with (metadata `vggrpo.policy`, relative to the shard's
 * folder), checked like any lineage entry; undefined for the base model.
 */
function recordedPolicy(traj: Shard, roots: LineageRoots): string | undefined {
  const rec = traj.metadata['vggrpo.policy'];
  return rec ? lineagePath(traj.path, 'vggrpo.policy', rec, roots, 'folder') : undefined;
}

/**
 * `--apply`: average gradient shards (weighted by their micro-batch counts) and take one step.
 * Every shard must name the same policy and the same training (src/rl/training-hash.ts).
 */
async function applyGradients(
  paths: string[],
  opts: GrpoStepOptions,
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<GrpoStepResult> {
  let total = 0;
  let sum: ParamMap | undefined;
  let config: Config | undefined;
  let samples = 0;
  let firstOf: { path: string; policy: string; training: TrainingKeys } | undefined;
  for (const p of paths) {
    const shard = readShard(p, 'gradients');
    const { tensors, metadata } = shard;
    const n = Number(metadata['vggrpo.micro_batches']);
    if (!(Number.isInteger(n) && n > 0))
      throw new InputError(p, 'metadata vggrpo.micro_batches missing or not a positive integer');
    // Gradients of different policies or trainings must not be averaged into one step.
    const rec = metadata['vggrpo.policy'] ?? '';
    const policy = rec ? resolve(dirname(resolve(p)), rec) : '';
    const training = trainingKeys(resolveLayers([shard.config], `${p} (recorded vggrpo.config)`));
    firstOf ??= { path: p, policy, training };
    if (policy !== firstOf.policy)
      throw new InputError(
        p,
        `computed for policy '${policy || 'base'}', but ${firstOf.path} for '${firstOf.policy || 'base'}'`,
      );
    const diff = differingKeys(firstOf.training, training);
    if (diff.length)
      throw new InputError(
        p,
        `computed with other training settings than ${firstOf.path}: ${diff.join(', ')}`,
      );
    config ??= resolveConfig(shard.config, p);
    samples += Number(metadata['vggrpo.samples'] ?? 0);
    const names = [...tensors.keys()].filter((k) => k.startsWith('grad/'));
    if (!sum) sum = new Map(names.map((k) => [k.slice(5), new Float32Array(tensors.get(k)!.data.length)]));
    for (const [k, acc] of sum) {
      const t = tensors.get(`grad/${k}`);
      if (!t || t.data.length !== acc.length)
        throw new InputError(p, `tensor 'grad/${k}' missing or of the wrong size`);
      const d = t.data as Float32Array;
      // Each shard's gradient is a mean over its n micro-batches: weight it back to a sum.
      for (let j = 0; j < acc.length; j++) acc[j]! += n * d[j]!;
    }
    total += n;
  }
  for (const acc of sum!.values()) for (let j = 0; j < acc.length; j++) acc[j]! /= total;
  const g = config!.grpo;
  if ((g.minibatches ?? 1) > 1)
    throw new InputError(
      'grpo.minibatches',
      `${g.minibatches}: a gradient shard is one optimiser step (--grads-only and --apply need 1)`,
    );
  const policy = await loadPolicy(config!, opts.policy);
  await policy.session.release();
  const training = trainingKeys(config!);
  if (opts.policy)
    checkTrainingHash(policy.checkpoint?.state, training, join(opts.policy, 'state.json'), !!opts.force);
  const bad = nonFiniteGrads(sum!);
  if (bad.length)
    throw new RuntimeFailure(`non-finite gradient in ${bad.slice(0, 3).join(', ')}; no update made`);
  const optimizer = policy.checkpoint?.optimizer ?? adamwInit(policy.lora.params);
  const ema = g.ema ? (policy.checkpoint?.ema?.params ?? emaInit(policy.lora.params)) : undefined;
  const { gradNorm, lr } = applyUpdate(policy.lora.params, sum!, optimizer, ema, g);
  const step = (policy.checkpoint?.state.step ?? 0) + 1;
  const outDir = resolve(opts.out ?? 'policy');
  const metrics = { step, lr, grad_norm: gradNorm, samples, micro_batches: total };
  saveCheckpoint(outDir, {
    lora: policy.lora,
    optimizer,
    state: { step, configHash: configHash(config!), metrics, trainingHash: trainingHash(training), training },
    baseModel: policy.denoiserPath,
    ...(ema && g.ema ? { ema: { params: ema, decay: g.ema.decay } } : {}),
  });
  io.emit(outDir);
  return { checkpoint: outDir, metrics };
}
