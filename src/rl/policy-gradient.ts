/**
 * The GRPO gradient of one micro-batch (one group at one recorded denoising step), by
 * forward-then-VJP: the denoiser runs forward to give v_θ; the clipped loss, the log-prob and
 * the KL are computed here with exactly the float32 code `sample` used (so r = 1 bit for bit on
 * the first inner step); their gradient w.r.t. v_θ, ∂L/∂v = cv·∂L/∂μ, is then pulled back to
 * the LoRA weights by the gradient graph the project's autodiff wrote.
 */

import type { ModelSession } from '../runtime/session.js';
import type { Tensor } from '../shards/tensor.js';
import { f32 } from '../shards/tensor.js';
import { loraTensors } from './checkpoint.js';
import { grpoLoss, type KlForm, klPenalty, velocityCotangent } from './grpo.js';
import type { Policy } from './policy.js';
import { cfgBatch, cfgCombineHalves, sdeStep } from './sde.js';

export interface MicroBatch {
  /** x before the step and the recorded x after it, [G·M] each. */
  x: Float32Array;
  next: Float32Array;
  logpOld: Float32Array;
  advantages: Float32Array;
  /** Context of the group as the sampler batched it ([2G, L, D] with CFG: uncond half first). */
  context: Tensor;
  sigmas: Float32Array;
  stepIndex: number;
  batch: number;
}

export interface GrpoSettings {
  clipRange: number;
  klBeta: number;
  klForm: KlForm;
  noiseLevel: number;
  guidance: number;
  /** Scale on this micro-batch's gradient (1 / number of micro-batches). */
  weight: number;
  /** Measure the KL to the LoRA-off model even when β = 0 (for logging). */
  measureKl?: boolean;
}

export interface MicroBatchResult {
  loss: number;
  kl: number;
  logpNew: Float32Array;
  ratioMin: number;
  ratioMax: number;
  clipFraction: number;
  approxKl: number;
  /** ∂(weight·(L + β·KL))/∂P for each LoRA input. */
  grads: Map<string, Float32Array>;
}

async function runVelocity(session: ModelSession, feeds: Record<string, Tensor>): Promise<Float32Array> {
  return (await session.run(feeds, ['velocity'])).velocity!.data as Float32Array;
}

/**
 * @example
 *   const r = await microBatchGradient(policy, gradSession, mb, settings);
 */
export async function microBatchGradient(
  policy: Policy,
  gradSession: ModelSession,
  mb: MicroBatch,
  s: GrpoSettings,
): Promise<MicroBatchResult> {
  const { C, F, H, W } = policy.shape;
  const cfg = s.guidance !== 1;
  const nb = cfg ? 2 * mb.batch : mb.batch;
  const xIn = cfg ? cfgBatch(mb.x) : mb.x;
  const sigma = mb.sigmas[mb.stepIndex]!;
  const feeds: Record<string, Tensor> = {
    latents: f32([nb, C, F, H, W], xIn),
    timestep: f32([nb], new Float32Array(nb).fill(Math.fround(1000 * sigma))),
    context: mb.context,
  };
  const lora = loraTensors(policy.lora);
  for (const [name, t] of lora) feeds[name] = t;
  const vRaw = await runVelocity(policy.session, feeds);
  const v = cfg ? cfgCombineHalves(vRaw, s.guidance) : vRaw;
  const step = sdeStep({
    x: mb.x,
    v,
    sigmas: mb.sigmas,
    i: mb.stepIndex,
    batch: mb.batch,
    noiseLevel: s.noiseLevel,
    next: mb.next,
  });
  const g = grpoLoss({
    logpNew: step.logProb,
    logpOld: mb.logpOld,
    advantages: mb.advantages,
    clipRange: s.clipRange,
  });
  let kl = Number.NaN;
  let meanRef: Float32Array | undefined;
  if (s.klBeta > 0 || s.measureKl) {
    // μ_ref: the same graph with the LoRA branch off (B = 0).
    const refFeeds = { ...feeds };
    for (const [name, t] of lora)
      if (name.endsWith(':B')) refFeeds[name] = f32(t.shape, new Float32Array(t.data.length));
    const vRefRaw = await runVelocity(policy.session, refFeeds);
    const vRef = cfg ? cfgCombineHalves(vRefRaw, s.guidance) : vRefRaw;
    meanRef = sdeStep({
      x: mb.x,
      v: vRef,
      sigmas: mb.sigmas,
      i: mb.stepIndex,
      batch: mb.batch,
      noiseLevel: s.noiseLevel,
      next: mb.next,
    }).mean;
    kl = klPenalty({
      meanTheta: step.mean,
      meanRef,
      batch: mb.batch,
      std: step.std,
      stdT: step.stdT,
      form: s.klForm,
    }).kl;
  }
  const gCombined = velocityCotangent({
    next: mb.next,
    mean: step.mean,
    coeffs: step,
    batch: mb.batch,
    gradLogpNew: g.gradLogpNew,
    kl: meanRef && s.klBeta > 0 ? { meanRef, beta: s.klBeta, form: s.klForm } : undefined,
  });
  // With CFG v = v_u + g(v_c − v_u): the uncond half gets (1−g)·∂L/∂v, the cond half g·∂L/∂v.
  const gV = new Float32Array(nb * (mb.x.length / mb.batch));
  if (cfg) {
    const half = mb.x.length;
    for (let j = 0; j < half; j++) {
      gV[j] = (1 - s.guidance) * s.weight * gCombined[j]!;
      gV[half + j] = s.guidance * s.weight * gCombined[j]!;
    }
  } else for (let j = 0; j < gV.length; j++) gV[j] = s.weight * gCombined[j]!;
  const out = await gradSession.run({ ...feeds, 'grad:velocity': f32([nb, C, F, H, W], gV) });
  const grads = new Map<string, Float32Array>();
  for (const name of lora.keys()) {
    const t = out[`grad:${name}`];
    if (!t) throw new Error(`gradient graph has no output grad:${name}`);
    grads.set(name, t.data as Float32Array);
  }
  return {
    loss: g.loss,
    kl,
    logpNew: step.logProb,
    ratioMin: g.ratio.min,
    ratioMax: g.ratio.max,
    clipFraction: g.clipFraction,
    approxKl: g.approxKl,
    grads,
  };
}
