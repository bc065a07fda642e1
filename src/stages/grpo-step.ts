/**
 * `grpo-step`: one GRPO update of the LoRA policy from scored rollouts. Reads reward shards,
 * follows their lineage to the trajectories, recomputes log-probs with the LoRA-injected
 * denoiser and applies AdamW to the clipped GRPO loss (+ β·KL to the LoRA-off model).
 * `--grads-only` / `--apply` split the work into map-reduce over files.
 */

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { canonicalJson } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { InputError, RuntimeFailure } from '../errors.js';
import { buildGradientGraph } from '../onnx/autodiff.js';
import { decodeModel } from '../onnx/model.js';
import { adamwInit, adamwStep, clipGradNorm, nonFiniteGrads, type ParamMap } from '../rl/adamw.js';
import { saveCheckpoint } from '../rl/checkpoint.js';
import { CheckpointedGradient } from '../rl/checkpointed-gradient.js';
import { assertRatioOne } from '../rl/grpo.js';
import { loadPolicy, type Policy, runtimeOptions } from '../rl/policy.js';
import { microBatchGradient, onePassGradient, withAffineCotangent } from '../rl/policy-gradient.js';
import { selectTrainSteps } from '../rl/schedule.js';
import { checkDims } from '../runtime/contract.js';
import { openModel } from '../runtime/model-cache.js';
import type { ModelSession } from '../runtime/session.js';
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

interface Rollouts {
  rewards: Shard;
  trajectory: Shard;
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

/** Micro-batches: one group at one recorded step, in the batch layout `sample` used. */
export function* microBatches(r: Rollouts, config: Config, trainSteps: number[], skipped: string[]) {
  const traj = r.trajectory;
  const lat = traj.tensors.get('latents')!;
  const [B, T1] = lat.shape as [number, number];
  const T = T1 - 1;
  const M = lat.data.length / (B * T1);
  const latents = lat.data as Float32Array;
  const logp = traj.tensors.get('log_probs')!.data as Float32Array;
  const ctx = traj.tensors.get('context')!;
  const [, L, D] = ctx.shape as [number, number, number];
  const stepIndex = toNumbers(traj.tensors.get('step_index')!);
  const sigmas = traj.tensors.get('sigmas')!.data as Float32Array;
  const adv = r.rewards.tensors.get('advantages')!.data as Float32Array;
  const group = toNumbers(traj.tensors.get('group_index')!);
  const cfg = config.sampler.guidance !== 1;
  const groups = new Map<number, number[]>();
  for (const [b, g] of group.entries()) groups.set(g, [...(groups.get(g) ?? []), b]);
  for (const [gid, members] of groups) {
    const G = members.length;
    const bad = members.find((b) => {
      for (let j = b * T1 * M; j < (b + 1) * T1 * M; j++) if (!Number.isFinite(latents[j]!)) return true;
      for (let t = 0; t < T; t++) if (!Number.isFinite(logp[b * T + t]!)) return true;
      return false;
    });
    if (bad !== undefined) {
      // The group must be recomputed as the batch it was sampled in; a broken member breaks it.
      skipped.push(`${traj.path}: group ${gid} skipped (sample ${bad} has non-finite latents or log-probs)`);
      continue;
    }
    const ctxData = ctx.data as Float32Array;
    const context = new Float32Array((cfg ? 2 : 1) * G * L * D);
    for (const [k, b] of members.entries()) {
      context.set(ctxData.subarray(b * L * D, (b + 1) * L * D), (cfg ? G + k : k) * L * D);
    }
    if (cfg) {
      const unc = traj.tensors.get('uncond_context');
      if (!unc) throw new InputError(traj.path, "guidance ≠ 1 but the shard has no 'uncond_context'");
      for (let k = 0; k < G; k++) context.set(unc.data as Float32Array, k * L * D);
    }
    for (const t of trainSteps) {
      if (t >= T) continue;
      const x = new Float32Array(G * M);
      const next = new Float32Array(G * M);
      const logpOld = new Float32Array(G);
      const advantages = new Float32Array(G);
      members.forEach((b, k) => {
        x.set(latents.subarray((b * T1 + t) * M, (b * T1 + t + 1) * M), k * M);
        next.set(latents.subarray((b * T1 + t + 1) * M, (b * T1 + t + 2) * M), k * M);
        logpOld[k] = logp[b * T + t]!;
        advantages[k] = adv[b]!;
      });
      yield {
        x,
        next,
        logpOld,
        advantages,
        context: f32([(cfg ? 2 : 1) * G, L, D], context),
        sigmas,
        stepIndex: stepIndex[t]!,
        batch: G,
      };
    }
  }
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
  const { model } = buildGradientGraph(decodeModel(policy.modelBytes, policy.denoiserPath), {
    wrt,
    shapes,
  });
  const s = await openModel(
    onePass ? withAffineCotangent(model, 'velocity', [batch, C, F, H, W]) : model,
    runtimeOptions(config),
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

export async function runGrpoStep(
  inputs: StageInputs,
  opts: { policy?: string; out?: string; gradsOnly: boolean; apply: boolean; seed?: number },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<GrpoStepResult> {
  const paths: string[] = [];
  for await (const p of inputs) paths.push(p);
  if (paths.length === 0)
    throw new InputError('', 'no input: expected reward shards as arguments or one path per line on stdin');
  const roots = inputs.roots ?? new LineageRoots(paths.map((p) => dirname(dirname(resolve(p)))));
  if (opts.apply) return applyGradients(paths, opts, resolveConfig, io);

  const rollouts: Rollouts[] = paths.map((p) => {
    const rewards = readShard(p, 'rewards');
    const trajectory = findTrajectory(rewards, roots);
    return { rewards, trajectory };
  });
  for (const r of rollouts) {
    if (r.trajectory.metadata['vggrpo.reward_guidance']) {
      throw new InputError(
        r.trajectory.path,
        'was sampled with test-time reward guidance (metadata vggrpo.reward_guidance): its steps are not samples of the policy, so GRPO cannot train on them; sample without --reward-guidance',
      );
    }
  }
  const config = resolveConfig(rollouts[0]!.rewards.config, rollouts[0]!.rewards.path);
  // Without --policy, the policy the rollouts were sampled with is followed (checked as lineage).
  const policyDir = opts.policy ?? recordedPolicy(rollouts[0]!.trajectory, roots);
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
  const policy = await loadPolicy(config, policyDir);
  for (const r of rollouts) checkRolloutShapes(r.trajectory, policy);
  const g = config.grpo;
  const T = rollouts[0]!.trajectory.tensors.get('log_probs')!.shape[1]!;
  const trainSteps = selectTrainSteps(T, g.timestep_fraction, opts.seed);
  const settings = {
    clipRange: g.clip_range,
    klBeta: g.kl_beta,
    klForm: g.kl_form,
    noiseLevel: config.sampler.noise_level,
    guidance: config.sampler.guidance,
    // Summed here, divided by the number of micro-batches actually trained (skipped groups excluded).
    weight: 1,
  };
  const sessions = new Map<string, GradientRunner>();
  const skipped: string[] = [];
  const firstTrainStep = toNumbers(rollouts[0]!.trajectory.tensors.get('step_index')!)[trainSteps[0]!];
  const optimizer = policy.checkpoint?.optimizer ?? adamwInit(policy.lora.params);
  const startStep = policy.checkpoint?.state.step ?? 0;
  let metrics: Record<string, number> = {};
  const metricLines: string[] = [];
  const innerSteps = opts.gradsOnly ? 1 : g.inner_steps;
  const outDir = resolve(
    opts.out ?? join(dirname(dirname(resolve(paths[0]!))), opts.gradsOnly ? 'gradients' : 'policy'),
  );
  const samples = rollouts.reduce((a, r) => a + r.rewards.tensors.get('advantages')!.shape[0]!, 0);
  try {
    for (let inner = 0; inner < innerSteps; inner++) {
      const grads: ParamMap = new Map(
        [...policy.lora.params].map(([k, v]) => [k, new Float32Array(v.length)]),
      );
      const acc = {
        loss: 0,
        kl: 0,
        nKl: 0,
        approxKl: 0,
        clip: 0,
        rmin: Number.POSITIVE_INFINITY,
        rmax: Number.NEGATIVE_INFINITY,
        n: 0,
      };
      // At r = 1 (the first inner step) one run gives v and the gradient; otherwise forward, then VJP.
      const onePass = inner === 0 && config.sampler.guidance === 1 && g.kl_beta === 0;
      for (const r of rollouts) {
        for (const mb of microBatches(r, config, trainSteps, skipped)) {
          const session = await gradientSession(
            policy,
            config,
            config.sampler.guidance !== 1 ? 2 * mb.batch : mb.batch,
            sessions,
            onePass,
          );
          // KL to the base model is always reported; with β = 0 it is measured on the first train step only.
          const measureKl = mb.stepIndex === firstTrainStep;
          const res = await (onePass ? onePassGradient : microBatchGradient)(policy, session, mb, {
            ...settings,
            measureKl,
          });
          if (inner === 0) assertRatioOne(res.logpNew, mb.logpOld);
          for (const [k, gr] of res.grads) {
            const a = grads.get(k)!;
            for (let j = 0; j < a.length; j++) a[j]! += gr[j]!;
          }
          acc.loss += res.loss;
          if (Number.isFinite(res.kl)) {
            acc.kl += res.kl;
            acc.nKl++;
          }
          acc.approxKl += res.approxKl;
          acc.clip += res.clipFraction;
          acc.rmin = Math.min(acc.rmin, res.ratioMin);
          acc.rmax = Math.max(acc.rmax, res.ratioMax);
          acc.n++;
        }
      }
      if (inner === 0) for (const w of skipped) io.note(`warning: ${w}`);
      if (acc.n === 0)
        throw new RuntimeFailure('no trainable group: every group had non-finite samples; no update made');
      for (const a of grads.values()) for (let j = 0; j < a.length; j++) a[j]! /= acc.n;
      const klMean = acc.nKl ? acc.kl / acc.nKl : 0;
      const loss = acc.loss / acc.n + g.kl_beta * klMean;
      const bad = nonFiniteGrads(grads);
      if (!Number.isFinite(loss) || bad.length > 0) {
        throw new RuntimeFailure(
          `non-finite ${!Number.isFinite(loss) ? `loss (${loss})` : `gradient in ${bad.slice(0, 3).join(', ')}`}; no update made, checkpoint untouched`,
        );
      }
      if (opts.gradsOnly) {
        const out = join(outDir, `${basename(paths[0]!, '.safetensors')}.grads.safetensors`);
        const places = rollouts.flatMap((r) => (r.rewards.place ? [r.rewards.place] : []));
        const tensors: Record<string, Tensor> = {};
        for (const a of policy.lora.adapters) {
          for (const [suffix, shape] of [
            ['A', [a.inDim, policy.lora.rank]],
            ['B', [policy.lora.rank, a.outDim]],
          ] as const) {
            const name = `lora:${a.weight}:${suffix}`;
            tensors[`grad/${name}`] = f32([...shape], grads.get(name)!);
          }
        }
        writeShard(out, 'gradients', tensors, {
          config,
          inputs: paths,
          place: places[0],
          covers: places,
          extra: {
            'vggrpo.samples': String(samples),
            'vggrpo.micro_batches': String(acc.n),
            'vggrpo.policy': policyDir ? relative(dirname(resolve(out)), resolve(policyDir)) || '.' : '',
          },
        });
        io.emit(out);
        return { gradients: out, metrics: { loss, samples } };
      }
      const gradNorm = clipGradNorm(grads, g.grad_clip);
      adamwStep(policy.lora.params, grads, optimizer, {
        lr: g.lr,
        betas: g.betas,
        eps: g.eps,
        weightDecay: g.weight_decay,
      });
      metrics = {
        step: startStep + 1,
        inner,
        loss,
        policy_loss: acc.loss / acc.n,
        kl: klMean,
        approx_kl: acc.approxKl / acc.n,
        clip_fraction: acc.clip / acc.n,
        grad_norm: gradNorm,
        ratio_min: acc.rmin,
        ratio_max: acc.rmax,
        samples,
        ...(inputs.missing ? { shards_missing: inputs.missing } : {}),
      };
      io.note(
        `grpo-step: inner ${inner}: loss ${loss.toExponential(4)} kl ${metrics.kl!.toExponential(3)} ` +
          `approx-kl ${metrics.approx_kl!.toExponential(3)} clip ${metrics.clip_fraction!.toFixed(3)} ` +
          `grad-norm ${gradNorm.toExponential(3)} ratio [${acc.rmin.toFixed(6)}, ${acc.rmax.toFixed(6)}]`,
      );
      metricLines.push(`${JSON.stringify({ checkpoint: outDir, ...metrics })}\n`);
    }
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
  const configHash = createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
  saveCheckpoint(outDir, {
    lora: policy.lora,
    optimizer,
    state: { step: startStep + 1, configHash, metrics },
    baseModel: policy.denoiserPath,
  });
  // Only once the checkpoint is in place does the log describe it.
  mkdirSync(dirname(outDir), { recursive: true });
  atomicAppend(join(dirname(outDir), 'metrics.jsonl'), metricLines.join(''));
  io.emit(outDir);
  return { checkpoint: outDir, metrics };
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

/** `--apply`: average gradient shards (weighted by their micro-batch counts) and take one step. */
async function applyGradients(
  paths: string[],
  opts: { policy?: string; out?: string },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<GrpoStepResult> {
  let total = 0;
  let sum: ParamMap | undefined;
  let config: Config | undefined;
  let samples = 0;
  let policyOf: { path: string; policy: string } | undefined;
  for (const p of paths) {
    const shard = readShard(p, 'gradients');
    const { tensors, metadata } = shard;
    const n = Number(metadata['vggrpo.micro_batches']);
    if (!(Number.isInteger(n) && n > 0))
      throw new InputError(p, 'metadata vggrpo.micro_batches missing or not a positive integer');
    // Gradients of different policies must not be averaged into one step.
    const rec = metadata['vggrpo.policy'] ?? '';
    const policy = rec ? resolve(dirname(resolve(p)), rec) : '';
    policyOf ??= { path: p, policy };
    if (policy !== policyOf.policy)
      throw new InputError(
        p,
        `computed for policy '${policy || 'base'}', but ${policyOf.path} for '${policyOf.policy || 'base'}'`,
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
  const policy = await loadPolicy(config!, opts.policy);
  await policy.session.release();
  const bad = nonFiniteGrads(sum!);
  if (bad.length)
    throw new RuntimeFailure(`non-finite gradient in ${bad.slice(0, 3).join(', ')}; no update made`);
  const g = config!.grpo;
  const optimizer = policy.checkpoint?.optimizer ?? adamwInit(policy.lora.params);
  const gradNorm = clipGradNorm(sum!, g.grad_clip);
  adamwStep(policy.lora.params, sum!, optimizer, {
    lr: g.lr,
    betas: g.betas,
    eps: g.eps,
    weightDecay: g.weight_decay,
  });
  const step = (policy.checkpoint?.state.step ?? 0) + 1;
  const outDir = resolve(opts.out ?? 'policy');
  const metrics = { step, grad_norm: gradNorm, samples, micro_batches: total };
  const configHash = createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
  saveCheckpoint(outDir, {
    lora: policy.lora,
    optimizer,
    state: { step, configHash, metrics },
    baseModel: policy.denoiserPath,
  });
  io.emit(outDir);
  return { checkpoint: outDir, metrics };
}
