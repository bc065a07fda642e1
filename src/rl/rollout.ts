/**
 * The rollout layout: how a group of G samples is cut into micro-batches and fed to the
 * denoiser, and the trajectory shard seen as groups of such micro-batches. `sample` runs the
 * layout and `grpo-step` reruns it from the shard: the recomputed log-prob equals the recorded
 * one only with the same batch composition (docs/METHOD.md, "GRPO update"), so both stages take
 * it from here and nowhere else.
 *
 * A group's members, in order, are cut into micro-batches of m (`sampler.micro_batch`, default
 * the whole group; the last one may be smaller). A micro-batch of n samples runs as one batch of
 * n, or with classifier-free guidance as [uncond × n; cond × n].
 */
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import type { Shard } from '../shards/shard.js';
import { f32, type Tensor, toNumbers } from '../shards/tensor.js';
import { type Policy, velocity } from './policy.js';
import type { MicroBatch } from './policy-gradient.js';
import { cfgBatch, cfgCombineHalves } from './sde.js';

export interface RolloutLayout {
  groupSize: number;
  /** Samples per denoiser batch (before CFG doubles it). */
  microBatch: number;
  guidance: number;
}

/**
 * The layout the sampler settings define.
 *
 * @example
 *   rolloutLayout({ group_size: 8, micro_batch: 3, guidance: 5 }); // batches of 3, 3, 2 (×2 for CFG)
 */
export function rolloutLayout(
  s: Pick<Config['sampler'], 'group_size' | 'micro_batch' | 'guidance'>,
  where = 'sampler.micro_batch',
): RolloutLayout {
  const m = s.micro_batch ?? s.group_size;
  if (m > s.group_size)
    throw new InputError(where, `${m} is larger than the group (sampler.group_size ${s.group_size})`);
  return { groupSize: s.group_size, microBatch: m, guidance: s.guidance };
}

export function usesCfg(layout: RolloutLayout): boolean {
  return layout.guidance !== 1;
}

/** [start, end) of each micro-batch within a group of `size` members. */
export function microBatchSlices(size: number, microBatch: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = 0; a < size; a += microBatch) out.push([a, Math.min(size, a + microBatch)]);
  return out;
}

/** The denoiser batch size of a micro-batch of n samples. */
export function denoiserBatch(layout: RolloutLayout, n: number): number {
  return usesCfg(layout) ? 2 * n : n;
}

/** The denoiser's context for members with these contexts ([L·D] each): [uncond × n; cond × n] with CFG. */
export function batchContext(
  layout: RolloutLayout,
  contexts: Float32Array[],
  uncond: Float32Array | undefined,
  L: number,
  D: number,
): Tensor {
  const n = contexts.length;
  const cfg = usesCfg(layout);
  const out = new Float32Array(denoiserBatch(layout, n) * L * D);
  for (const [k, c] of contexts.entries()) {
    if (cfg) out.set(uncond!, k * L * D);
    out.set(c, ((cfg ? n : 0) + k) * L * D);
  }
  return f32([denoiserBatch(layout, n), L, D], out);
}

/** The latents as the denoiser takes them: x, or with CFG x twice (uncond half, cond half). */
export function batchLatents(layout: RolloutLayout, x: Float32Array): Float32Array {
  return usesCfg(layout) ? cfgBatch(x) : x;
}

/** The velocity of the step from the denoiser's output: with CFG v_u + g·(v_c − v_u). */
export function stepVelocity(layout: RolloutLayout, vRaw: Float32Array): Float32Array {
  return usesCfg(layout) ? cfgCombineHalves(vRaw, layout.guidance) : vRaw;
}

/**
 * The velocity of a whole group x [G·M], run micro-batch by micro-batch; `contexts` has one
 * denoiser context per micro-batch (batchContext).
 *
 * @example
 *   const v = await groupVelocity(policy, layout, x, sigmas[i], contexts);
 */
export async function groupVelocity(
  policy: Policy,
  layout: RolloutLayout,
  x: Float32Array,
  sigma: number,
  contexts: Tensor[],
): Promise<Float32Array> {
  const G = layout.groupSize;
  const M = x.length / G;
  const slices = microBatchSlices(G, layout.microBatch);
  if (slices.length === 1) return runMicroBatch(policy, layout, x, sigma, contexts[0]!);
  const v = new Float32Array(x.length);
  for (const [j, [a, b]] of slices.entries()) {
    v.set(await runMicroBatch(policy, layout, x.subarray(a * M, b * M), sigma, contexts[j]!), a * M);
  }
  return v;
}

async function runMicroBatch(
  policy: Policy,
  layout: RolloutLayout,
  x: Float32Array,
  sigma: number,
  context: Tensor,
): Promise<Float32Array> {
  const n = context.shape[0]! / (usesCfg(layout) ? 2 : 1);
  const vRaw = await velocity(policy, batchLatents(layout, x), denoiserBatch(layout, n), sigma, context);
  return stepVelocity(layout, vRaw);
}

/** A trajectory shard as the training reads it. */
export interface TrajectoryView {
  path: string;
  /** The policy folder it was sampled with, as recorded ('' for the base model). */
  policy: string;
  /** The sampler settings it was sampled with (its recorded config). */
  sampler: Config['sampler'];
  layout: RolloutLayout;
  B: number;
  /** Recorded steps. */
  T: number;
  /** Elements per latent. */
  M: number;
  L: number;
  D: number;
  latents: Float32Array;
  logProbs: Float32Array;
  context: Float32Array;
  uncond?: Float32Array;
  stepIndex: number[];
  sigmas: Float32Array;
  group: number[];
}

/**
 * @example
 *   const view = trajectoryView(traj, resolveConfig([traj.config]).sampler);
 */
export function trajectoryView(traj: Shard, sampler: Config['sampler']): TrajectoryView {
  const lat = traj.tensors.get('latents')!;
  const [B, T1] = lat.shape as [number, number];
  const ctx = traj.tensors.get('context')!;
  const [, L, D] = ctx.shape as [number, number, number];
  const layout = rolloutLayout(sampler, `${traj.path}: sampler.micro_batch`);
  const uncond = traj.tensors.get('uncond_context')?.data as Float32Array | undefined;
  if (usesCfg(layout) && !uncond)
    throw new InputError(traj.path, "guidance ≠ 1 but the shard has no 'uncond_context'");
  return {
    path: traj.path,
    policy: traj.metadata['vggrpo.policy'] ?? '',
    sampler,
    layout,
    B,
    T: T1 - 1,
    M: lat.data.length / (B * T1),
    L,
    D,
    latents: lat.data as Float32Array,
    logProbs: traj.tensors.get('log_probs')!.data as Float32Array,
    context: ctx.data as Float32Array,
    uncond,
    stepIndex: toNumbers(traj.tensors.get('step_index')!),
    sigmas: traj.tensors.get('sigmas')!.data as Float32Array,
    group: toNumbers(traj.tensors.get('group_index')!),
  };
}

/** One micro-batch of a trajectory: the samples (shard rows) that ran as one denoiser batch. */
export interface RolloutUnit {
  view: TrajectoryView;
  groupId: number;
  members: number[];
}

/**
 * The trajectory's micro-batches, group by group, in the layout it was sampled with. A unit
 * with a non-finite member is left out (it must be recomputed as the batch it was sampled in)
 * and named in `skipped`.
 */
export function rolloutUnits(view: TrajectoryView, skipped: string[]): RolloutUnit[] {
  const groups = new Map<number, number[]>();
  for (const [b, g] of view.group.entries()) groups.set(g, [...(groups.get(g) ?? []), b]);
  const units: RolloutUnit[] = [];
  for (const [groupId, rows] of groups) {
    // Absent micro_batch means the whole group, whatever its size in this shard.
    const m = view.sampler.micro_batch ?? rows.length;
    for (const [a, b] of microBatchSlices(rows.length, m)) {
      const members = rows.slice(a, b);
      const bad = members.find((m) => !finiteSample(view, m));
      if (bad !== undefined) {
        skipped.push(
          `${view.path}: group ${groupId} samples ${a}–${b - 1} skipped (sample ${bad} has non-finite latents or log-probs)`,
        );
        continue;
      }
      units.push({ view, groupId, members });
    }
  }
  return units;
}

function finiteSample(view: TrajectoryView, b: number): boolean {
  const { latents, logProbs, T, M } = view;
  for (let j = b * (T + 1) * M; j < (b + 1) * (T + 1) * M; j++)
    if (!Number.isFinite(latents[j]!)) return false;
  for (let t = 0; t < T; t++) if (!Number.isFinite(logProbs[b * T + t]!)) return false;
  return true;
}

/**
 * A unit's micro-batch at recorded step position t, with the batch `sample` ran.
 *
 * @example
 *   for (const t of trainSteps) yield unitMicroBatch(unit, advantages, t);
 */
export function unitMicroBatch(unit: RolloutUnit, advantages: Float32Array, t: number): MicroBatch {
  const { view, members } = unit;
  const { latents, logProbs, T, M, L, D } = view;
  const n = members.length;
  const x = new Float32Array(n * M);
  const next = new Float32Array(n * M);
  const logpOld = new Float32Array(n);
  const adv = new Float32Array(n);
  members.forEach((b, k) => {
    x.set(latents.subarray((b * (T + 1) + t) * M, (b * (T + 1) + t + 1) * M), k * M);
    next.set(latents.subarray((b * (T + 1) + t + 1) * M, (b * (T + 1) + t + 2) * M), k * M);
    logpOld[k] = logProbs[b * T + t]!;
    adv[k] = advantages[b]!;
  });
  const contexts = members.map((b) => view.context.subarray(b * L * D, (b + 1) * L * D));
  return {
    x,
    next,
    logpOld,
    advantages: adv,
    context: batchContext(view.layout, contexts, view.uncond, L, D),
    sigmas: view.sigmas,
    stepIndex: view.stepIndex[t]!,
    batch: n,
  };
}
