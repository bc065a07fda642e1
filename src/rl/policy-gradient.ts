/**
 * The GRPO gradient of one micro-batch (one group at one recorded denoising step), by
 * forward-then-VJP: the denoiser runs forward to give v_θ; the clipped loss, the log-prob and
 * the KL are computed here with exactly the float32 code `sample` used (so r = 1 bit for bit on
 * the first inner step); their gradient w.r.t. v_θ, ∂L/∂v = cv·∂L/∂μ, is then pulled back to
 * the LoRA weights by the gradient graph the project's autodiff wrote.
 *
 * The first inner step has a one-run form (`onePassGradient`): there r = 1, so ∂L/∂log p is
 * known before the forward pass, and ∂L/∂v = a_b·(next − cx·x) − a_b·cv·v is affine in v. The
 * gradient graph computes that cotangent itself from its own forward output (`withAffineCotangent`),
 * saving the separate forward run; the log-prob is then checked from the velocity it returns.
 */

import { ELEM_TYPE, valueInfo } from '../onnx/builder.js';
import type { ModelProto, NodeProto } from '../onnx/proto.js';
import type { ModelSession } from '../runtime/session.js';
import type { Tensor } from '../shards/tensor.js';
import { f32 } from '../shards/tensor.js';
import { loraTensors } from './checkpoint.js';
import { grpoLoss, type KlForm, klPenalty, velocityCotangent } from './grpo.js';
import type { Policy } from './policy.js';
import { cfgBatch, cfgCombineHalves, sdeCoefficients, sdeStep } from './sde.js';

/** What runs a gradient graph: its session, or the checkpointed runner (src/rl/checkpointed-gradient.ts). */
export type GradientSession = Pick<ModelSession, 'run'>;

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

/** The denoiser's inputs for a micro-batch (latents `[nb, …]`, as sampled) and the LoRA tensors among them. */
function denoiserFeeds(
  policy: Policy,
  mb: MicroBatch,
  latents: Float32Array,
  nb: number,
): { feeds: Record<string, Tensor>; lora: Map<string, Tensor> } {
  const { C, F, H, W } = policy.shape;
  const feeds: Record<string, Tensor> = {
    latents: f32([nb, C, F, H, W], latents),
    timestep: f32([nb], new Float32Array(nb).fill(Math.fround(1000 * mb.sigmas[mb.stepIndex]!))),
    context: mb.context,
  };
  const lora = loraTensors(policy.lora);
  for (const [name, t] of lora) feeds[name] = t;
  return { feeds, lora };
}

/** The recorded SDE step recomputed with velocity v: its mean, std and log-prob of `next`. */
function recordedStep(mb: MicroBatch, v: Float32Array, s: GrpoSettings) {
  return sdeStep({
    x: mb.x,
    v,
    sigmas: mb.sigmas,
    i: mb.stepIndex,
    batch: mb.batch,
    noiseLevel: s.noiseLevel,
    next: mb.next,
  });
}

/** The clipped GRPO loss of a micro-batch at the given new log-probs. */
function lossAt(mb: MicroBatch, logpNew: Float32Array, s: GrpoSettings) {
  return grpoLoss({ logpNew, logpOld: mb.logpOld, advantages: mb.advantages, clipRange: s.clipRange });
}

/** KL of the policy's step to the reference step (its value; the gradient is velocityCotangent's). */
function klValue(step: ReturnType<typeof sdeStep>, meanRef: Float32Array, mb: MicroBatch, s: GrpoSettings) {
  return klPenalty({
    meanTheta: step.mean,
    meanRef,
    batch: mb.batch,
    std: step.std,
    stdT: step.stdT,
    form: s.klForm,
  }).kl;
}

/** The LoRA gradients a gradient-graph run returned, by LoRA input name. */
function loraGrads(out: Record<string, Tensor>, names: Iterable<string>): Map<string, Float32Array> {
  const grads = new Map<string, Float32Array>();
  for (const name of names) {
    const t = out[`grad:${name}`];
    if (!t) throw new Error(`gradient graph has no output grad:${name}`);
    grads.set(name, t.data as Float32Array);
  }
  return grads;
}

/** μ_ref: the SDE mean of the same graph with the LoRA branch off (B = 0). */
async function referenceMean(
  policy: Policy,
  feeds: Record<string, Tensor>,
  lora: Map<string, Tensor>,
  mb: MicroBatch,
  s: GrpoSettings,
): Promise<Float32Array> {
  const refFeeds = { ...feeds };
  for (const [name, t] of lora)
    if (name.endsWith(':B')) refFeeds[name] = f32(t.shape, new Float32Array(t.data.length));
  const vRefRaw = await runVelocity(policy.session, refFeeds);
  const vRef = s.guidance !== 1 ? cfgCombineHalves(vRefRaw, s.guidance) : vRefRaw;
  return recordedStep(mb, vRef, s).mean;
}

function result(
  g: ReturnType<typeof grpoLoss>,
  kl: number,
  logpNew: Float32Array,
  grads: Map<string, Float32Array>,
): MicroBatchResult {
  return {
    loss: g.loss,
    kl,
    logpNew,
    ratioMin: g.ratio.min,
    ratioMax: g.ratio.max,
    clipFraction: g.clipFraction,
    approxKl: g.approxKl,
    grads,
  };
}

/**
 * @example
 *   const r = await microBatchGradient(policy, gradSession, mb, settings);
 */
export async function microBatchGradient(
  policy: Policy,
  gradSession: GradientSession,
  mb: MicroBatch,
  s: GrpoSettings,
): Promise<MicroBatchResult> {
  const { C, F, H, W } = policy.shape;
  const cfg = s.guidance !== 1;
  const nb = cfg ? 2 * mb.batch : mb.batch;
  const { feeds, lora } = denoiserFeeds(policy, mb, cfg ? cfgBatch(mb.x) : mb.x, nb);
  const vRaw = await runVelocity(policy.session, feeds);
  const step = recordedStep(mb, cfg ? cfgCombineHalves(vRaw, s.guidance) : vRaw, s);
  const g = lossAt(mb, step.logProb, s);
  let kl = Number.NaN;
  let meanRef: Float32Array | undefined;
  if (s.klBeta > 0 || s.measureKl) {
    meanRef = await referenceMean(policy, feeds, lora, mb, s);
    kl = klValue(step, meanRef, mb, s);
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
  const run = (gv: Float32Array) => gradSession.run({ ...feeds, 'grad:velocity': f32([nb, C, F, H, W], gv) });
  const grads =
    policy.precision === 'float16'
      ? await scaledGradients(run, gV, lora.keys())
      : loraGrads(await run(gV), lora.keys());
  return result(g, kl, step.logProb, grads);
}

/** Where a float16 backward's cotangent is scaled to: its largest entry in [2^k, 2^(k+1)). */
export const LOSS_SCALE_EXPONENT = 4;

/**
 * The gradients of a float16 denoiser's backward, loss-scaled: ∂L/∂v (about 1e-6 per entry,
 * below float16's normal range, 6e-5) is multiplied by a power of two that puts its largest entry
 * at 2^LOSS_SCALE_EXPONENT, and the float32 gradients are divided by it (both exact). A backward
 * that overflows (non-finite gradients) is run again at half the scale.
 */
export async function scaledGradients(
  run: (gv: Float32Array) => Promise<Record<string, Tensor>>,
  gV: Float32Array,
  names: Iterable<string>,
): Promise<Map<string, Float32Array>> {
  let max = 0;
  for (let j = 0; j < gV.length; j++) max = Math.max(max, Math.abs(gV[j]!));
  if (max === 0) return loraGrads(await run(gV), names);
  const top = LOSS_SCALE_EXPONENT - Math.floor(Math.log2(max));
  // a few halvings: still non-finite after them, the gradient is returned as it is (grpo-step
  // then stops with "non-finite gradient", making no update)
  for (let k = 0; ; k++) {
    const scale = 2 ** (top - k);
    const grads = loraGrads(await run(gV.map((v) => v * scale)), names);
    if (k === MAX_HALVINGS || [...grads.values()].every((g) => g.every(Number.isFinite))) {
      for (const g of grads.values()) for (let j = 0; j < g.length; j++) g[j]! /= scale;
      return grads;
    }
  }
}

const MAX_HALVINGS = 8;

/** Input names of the one-run gradient graph: ∂L/∂v = offset + scale·v. */
export const COTANGENT_OFFSET = 'cotangent:offset';
export const COTANGENT_SCALE = 'cotangent:scale';

/**
 * The gradient graph with its `grad:<output>` input replaced by offset + scale·output, computed
 * in the graph right after the output is produced: `offset` has the output's shape, `scale` is
 * [B, 1, …, 1] (one factor per batch item). The output stays a graph output.
 *
 * @example
 *   const fused = withAffineCotangent(buildGradientGraph(m, opts).model, 'velocity', [G, C, F, H, W]);
 */
export function withAffineCotangent(model: ModelProto, output: string, shape: number[]): ModelProto {
  const graph = model.graph!;
  const seed = `grad:${output}`;
  const nodes = [...(graph.node ?? [])];
  const at = nodes.findIndex((n) => (n.output ?? []).includes(output));
  if (at < 0 || !(graph.input ?? []).some((v) => v.name === seed))
    throw new Error(`gradient graph has no '${output}' producer or no '${seed}' input`);
  const scaled = `${seed}:scaled`;
  const added: NodeProto[] = [
    { opType: 'Mul', input: [COTANGENT_SCALE, output], output: [scaled], name: `${seed}:mul` },
    { opType: 'Add', input: [COTANGENT_OFFSET, scaled], output: [seed], name: `${seed}:add` },
  ];
  nodes.splice(at + 1, 0, ...added);
  const FLOAT = ELEM_TYPE.float32;
  return {
    ...model,
    graph: {
      ...graph,
      node: nodes,
      input: [
        ...(graph.input ?? []).filter((v) => v.name !== seed),
        valueInfo(COTANGENT_OFFSET, FLOAT, shape),
        valueInfo(COTANGENT_SCALE, FLOAT, [shape[0]!, ...shape.slice(1).map(() => 1)]),
      ],
      output: (graph.output ?? []).some((v) => v.name === output)
        ? graph.output
        : [...(graph.output ?? []), valueInfo(output, FLOAT, shape)],
    },
  };
}

/**
 * The first inner step's gradient in one run of the graph `withAffineCotangent` built (no
 * guidance, β = 0). It assumes r = 1, which the caller checks on the returned `logpNew`
 * (assertRatioOne) before using the gradient.
 *
 * @example
 *   const r = await onePassGradient(policy, fusedSession, mb, settings);
 *   assertRatioOne(r.logpNew, mb.logpOld);
 */
export async function onePassGradient(
  policy: Policy,
  fusedSession: GradientSession,
  mb: MicroBatch,
  s: GrpoSettings,
): Promise<MicroBatchResult> {
  if (s.guidance !== 1 || s.klBeta !== 0)
    throw new Error('onePassGradient: guidance and a KL term need the two-run form');
  const { C, F, H, W } = policy.shape;
  const G = mb.batch;
  const M = mb.x.length / G;
  const c = sdeCoefficients(mb.sigmas, mb.stepIndex, s.noiseLevel);
  // ∂L/∂log p at r = 1: the loss's gradient with the old log-probs as the new ones.
  const atOne = lossAt(mb, mb.logpOld, s);
  const offset = new Float32Array(G * M);
  const scale = new Float32Array(G);
  const sd = Math.fround(c.std);
  for (let b = 0; b < G; b++) {
    // ∂L/∂v = weight·cv·gLogp/(std²·M)·(next − cx·x − cv·v), as logProbVjp and velocityCotangent write it.
    const a = (s.weight * c.cv * atOne.gradLogpNew[b]!) / (sd * sd * M);
    scale[b] = -a * c.cv;
    for (let j = b * M; j < (b + 1) * M; j++) offset[j] = a * (mb.next[j]! - Math.fround(mb.x[j]! * c.cx));
  }
  const { feeds, lora } = denoiserFeeds(policy, mb, mb.x, G);
  const out = await fusedSession.run({
    ...feeds,
    [COTANGENT_OFFSET]: f32([G, C, F, H, W], offset),
    [COTANGENT_SCALE]: f32([G, 1, 1, 1, 1], scale),
  });
  const v = out.velocity?.data as Float32Array | undefined;
  if (!v) throw new Error('one-run gradient graph has no output velocity');
  const step = recordedStep(mb, v, s);
  const g = lossAt(mb, step.logProb, s);
  const kl = s.measureKl ? klValue(step, await referenceMean(policy, feeds, lora, mb, s), mb, s) : Number.NaN;
  return result(g, kl, step.logProb, loraGrads(out, lora.keys()));
}
