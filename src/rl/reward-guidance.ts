/**
 * Test-time latent reward guidance (docs/METHOD.md, Parts 5): on the guided denoising steps the
 * velocity is corrected by the gradient of the geometry reward taken through the latent geometry
 * model, with no training:
 *
 *   x̂0 = x − σ·v,   ṽ = v − s·σ/(1−σ)·∇_{x̂0} r(LGM(x̂0)),   t = σ the step's noise level.
 *
 * The LGM reads clean latents, so the reward is taken at the predicted clean latent x̂0 and, by
 * default (`through: x0_hat`), differentiated w.r.t. x̂0 only. With `through: denoiser` the
 * gradient is w.r.t. x itself, through x̂0 = x − σ·v(x) and the denoiser's Jacobian:
 * ∇_x r = ∇_{x̂0} r − σ·(∂v/∂x)ᵀ∇_{x̂0} r (with classifier-free guidance, v = v_u + g(v_c − v_u)
 * and both halves' Jacobians), one more denoiser forward and backward per guided step.
 *
 * The chain: r's VJP w.r.t. the LGM outputs (src/rewards/motion-vjp.ts,
 * src/rewards/reprojection-vjp.ts with visibility held fixed, src/geometry/pose-vjp.ts for the
 * pose encoding), then the LGM's gradient graph (buildGradientGraph, `onnx grad --wrt latents`)
 * pulls it back to x̂0. 'both' guides by w_m·r_motion + w_g·r_geo with the weights
 * rewards.<name>.weight; every reward reads its rewards.<name>.options, as `score` does.
 *
 * Since ṽ enters x_{i+1} = x + dt·ṽ with dt < 0, x moves by |dt|·s·σ/(1−σ) along +∇r: up the
 * reward. The factor σ/(1−σ) is infinite at σ = 1 (the first step of the schedule): such steps
 * are skipped unless `factor_cap` is set, which caps the factor (then σ = 1 is guided with the cap).
 * Guided rollouts are not samples of the policy: `grpo-step` refuses them.
 */
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { poseEncodingToCameras } from '../geometry/cameras.js';
import { poseEncodingVjp, poseFrames } from '../geometry/pose-vjp.js';
import { buildGradientGraph } from '../onnx/autodiff.js';
import { decodeModel, encodeModel, loadModel } from '../onnx/model.js';
import { motion } from '../rewards/motion.js';
import { motionVjp } from '../rewards/motion-vjp.js';
import { reprojection } from '../rewards/reprojection.js';
import { reprojectionVjp } from '../rewards/reprojection-vjp.js';
import { gradientRuntime, ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';
import { loraTensors } from './checkpoint.js';
import { type Policy, runtimeOptions } from './policy.js';
import { cfgBatch } from './sde.js';

/** What `through: denoiser` differentiates: the policy and the batch its velocity came from. */
export interface DenoiserLink {
  policy: Policy;
  /** The context batch the velocity ran with: [B, L, D], or [2B, L, D] uncond-first with CFG. */
  context: Tensor;
  /** The classifier-free guidance scale g of that velocity (1: none). */
  guidance: number;
}

export type GuidanceReward = 'motion' | 'reprojection' | 'both';

/** The resolved settings, as recorded in a trajectory's metadata `vggrpo.reward_guidance`. */
export interface RewardGuidancePlan {
  scale: number;
  every: number;
  /** The window as resolved, `START:END`. */
  steps: string;
  /** The steps actually guided (0-based). */
  guided: number[];
  reward: GuidanceReward;
  factorCap: number | null;
  /** x0_hat: ∇ w.r.t. x̂0 only; denoiser: w.r.t. x, through x̂0 = x − σ·v(x). */
  through: 'x0_hat' | 'denoiser';
  /** Reward weights used for 'both' (rewards.<name>.weight). */
  weights: { motion: number; reprojection: number };
}

const FLAG = {
  scale: '--reward-guidance',
  every: '--reward-guidance-every',
  steps: '--reward-guidance-steps',
  reward: '--reward-guidance-reward',
  factor_cap: '--reward-guidance-factor-cap',
  through: '--reward-guidance-through',
} as const;

/** The flag (and key) naming a reward-guidance setting in an error. */
export function guidanceWhere(key: keyof typeof FLAG): string {
  return `${FLAG[key]} (sampler.reward_guidance.${key})`;
}

/**
 * The `sample` flags as a config layer for `sampler.reward_guidance`, each value checked here so
 * a fault names its flag (the base command would map `steps` to `--steps`).
 *
 * @example
 *   rewardGuidanceFlags({ scale: '2', every: '2' }); // { scale: 2, every: 2 }
 */
export function rewardGuidanceFlags(f: {
  scale?: string;
  every?: string;
  steps?: string;
  reward?: string;
  factorCap?: string;
  through?: string;
}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const num = (v: string | undefined, key: keyof typeof FLAG, int: boolean, min: number, strict: boolean) => {
    if (v === undefined) return;
    const n = Number(v);
    const ok =
      v.trim() !== '' && Number.isFinite(n) && (!int || Number.isInteger(n)) && (strict ? n > min : n >= min);
    if (!ok) {
      const what = int ? `an integer ≥ ${min}` : `a number > ${min}`;
      throw new InputError(FLAG[key], `expected ${what}, got '${v}'`);
    }
    out[key] = n;
  };
  num(f.scale, 'scale', false, 0, true);
  num(f.every, 'every', true, 1, false);
  num(f.factorCap, 'factor_cap', false, 0, true);
  if (f.steps !== undefined) {
    if (!/^\d*:\d*$/.test(f.steps)) throw new InputError(FLAG.steps, `expected START:END, got '${f.steps}'`);
    out.steps = f.steps;
  }
  if (f.reward !== undefined) {
    if (!['motion', 'reprojection', 'both'].includes(f.reward))
      throw new InputError(FLAG.reward, `expected motion, reprojection or both, got '${f.reward}'`);
    out.reward = f.reward;
  }
  if (f.through !== undefined) {
    if (!['x0_hat', 'denoiser'].includes(f.through))
      throw new InputError(FLAG.through, `expected x0_hat or denoiser, got '${f.through}'`);
    out.through = f.through;
  }
  return out;
}

/**
 * The guided steps of an N-step schedule: START:END (END exclusive) every K-th step from START.
 * An open START is the first step with σ < 1 unless the factor is capped; a guided step at σ = 1
 * without a cap, or a window outside the schedule, is an InputError naming the flag.
 *
 * @example
 *   guidedSteps({ steps: ':', every: 2, factor_cap: null }, shiftedSigmas(8, 3)); // [1, 3, 5, 7]
 */
export function guidedSteps(
  g: { steps: string; every: number; factor_cap: number | null },
  sigmas: ArrayLike<number>,
): number[] {
  const N = sigmas.length - 1;
  const [a, b] = g.steps.split(':') as [string, string];
  const firstFinite = Math.fround(sigmas[0]!) === 1 && g.factor_cap === null ? 1 : 0;
  const start = a === '' ? firstFinite : Number(a);
  const end = b === '' ? N : Number(b);
  if (!(start < end) || end > N) {
    throw new InputError(
      guidanceWhere('steps'),
      `'${g.steps}' is not a window of guided steps inside the schedule of ${N} steps (0 ≤ START < END ≤ ${N})`,
    );
  }
  const guided: number[] = [];
  for (let i = start; i < end; i += g.every) guided.push(i);
  const infinite = guided.find((i) => Math.fround(sigmas[i]!) >= 1);
  if (infinite !== undefined && g.factor_cap === null) {
    throw new InputError(
      guidanceWhere('steps'),
      `step ${infinite} has σ = 1, where the factor σ/(1−σ) is infinite: start the window after it or set ${FLAG.factor_cap}`,
    );
  }
  return guided;
}

/** The LGM outputs (config names) a guidance reward reads. */
function neededOutputs(reward: GuidanceReward, o: Config['lgm_outputs']): [string, string][] {
  const cams: [string, string] = ['cameras', o.cameras];
  if (reward === 'motion') return [cams];
  return [['depth', o.depth], ['points', o.points], cams];
}

/**
 * The LGM and its gradient graph for one batch size, and the correction of a guided step.
 *
 * @example
 *   const guide = await RewardGuidance.open(config, [C, F, H, W], G, sigmas);
 *   if (guide.guides(i)) v = (await guide.correct(x, v, sigmas[i])).velocity;
 */
export class RewardGuidance {
  private constructor(
    readonly plan: RewardGuidancePlan,
    private readonly config: Config,
    private readonly lgm: ModelSession,
    private readonly grad: ModelSession,
    private readonly latentShape: readonly number[],
    readonly batch: number,
  ) {}

  /** Gradient graphs of the denoiser w.r.t. its latents, by batch size (through: denoiser). */
  private readonly denoiserGrad = new Map<number, ModelSession>();

  /** Open the LGM and build its gradient graph w.r.t. the latents for batches of `batch`. */
  static async open(
    config: Config,
    latentShape: readonly number[],
    batch: number,
    sigmas: ArrayLike<number>,
  ): Promise<RewardGuidance> {
    const g = config.sampler.reward_guidance;
    if (g.scale === null) throw new InputError(guidanceWhere('scale'), 'reward guidance is off (no scale)');
    const guided = guidedSteps(g, sigmas);
    const o = config.lgm_outputs;
    const path = config.models.lgm;
    if (o.camera_convention !== 'vggt') {
      throw new InputError(
        'lgm_outputs.camera_convention',
        `reward guidance differentiates through the VGGT pose encoding; '${o.camera_convention}' cameras are not supported`,
      );
    }
    if (g.reward !== 'motion' && o.intrinsics_output !== null) {
      // The guided reprojection reads K from the pose encoding's fields of view; decode-geometry
      // would score with the model's own K, so the two would judge different geometry.
      throw new InputError(
        'lgm_outputs.intrinsics_output',
        `reward guidance with ${g.reward} takes intrinsics from the VGGT pose encoding; a per-frame intrinsics output is not supported there`,
      );
    }
    const model = loadModel(path);
    const ins = (model.graph?.input ?? []).map((v) => v.name ?? '');
    const outs = (model.graph?.output ?? []).map((v) => v.name ?? '');
    if (!ins.includes(o.latents_input)) {
      throw new InputError(
        path,
        `geometry model has no input '${o.latents_input}' (lgm_outputs.latents_input)`,
      );
    }
    for (const [key, name] of neededOutputs(g.reward, o)) {
      if (!outs.includes(name)) {
        throw new InputError(
          path,
          `geometry model has no output '${name}' (lgm_outputs.${key}), which ${FLAG.reward} ${g.reward} needs; it has ${outs.join(', ')}`,
        );
      }
    }
    const { model: gm } = buildGradientGraph(model, {
      wrt: [o.latents_input],
      shapes: { [o.latents_input]: [batch, ...latentShape] },
    });
    const rt = runtimeOptions(config);
    const lgm = await ModelSession.open(path, rt);
    const grad = await ModelSession.open(
      encodeModel(gm),
      gradientRuntime(rt),
      `${path} (gradient w.r.t. ${o.latents_input})`,
    );
    const weight = (name: string) => config.rewards[name]?.weight ?? 0.5;
    const plan: RewardGuidancePlan = {
      scale: g.scale,
      every: g.every,
      steps: `${guided[0]}:${guided.at(-1)! + 1}`,
      guided,
      reward: g.reward,
      factorCap: g.factor_cap,
      through: g.through,
      weights: { motion: weight('motion'), reprojection: weight('reprojection') },
    };
    return new RewardGuidance(plan, config, lgm, grad, latentShape, batch);
  }

  guides(step: number): boolean {
    return this.plan.guided.includes(step);
  }

  /** σ/(1−σ), capped by factor_cap when set. */
  factor(sigma: number): number {
    const k = sigma >= 1 ? Number.POSITIVE_INFINITY : sigma / (1 - sigma);
    return this.plan.factorCap === null ? k : Math.min(k, this.plan.factorCap);
  }

  /**
   * ṽ for a batch x, v [B, C, F, H, W] at noise level σ, and the reward of each x̂0. With
   * `through: denoiser`, `link` gives the policy and the batch the velocity came from.
   * A sample whose geometry is degenerate (zero quaternion, non-finite output) is not steered.
   */
  async correct(
    x: Float32Array,
    v: Float32Array,
    sigma: number,
    link?: DenoiserLink,
  ): Promise<{ velocity: Float32Array; reward: Float64Array }> {
    const s = Math.fround(sigma);
    const x0 = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) x0[j] = x[j]! - Math.fround(s * v[j]!);
    const { grad, reward } = await this.rewardGradient(x0);
    if (this.plan.through === 'denoiser') {
      if (!link)
        throw new InputError(guidanceWhere('through'), 'denoiser guidance needs the policy of the step');
      const back = await this.denoiserVjp(link, x, s, grad);
      for (let j = 0; j < grad.length; j++) grad[j]! += back[j]!;
    }
    const k = Math.fround(this.plan.scale * this.factor(s));
    const out = new Float32Array(v.length);
    for (let j = 0; j < v.length; j++) out[j] = v[j]! - Math.fround(k * grad[j]!);
    return { velocity: out, reward };
  }

  /** −σ·(∂v/∂x)ᵀu for the velocity the sampler used (CFG: both halves of the [2B] batch). */
  async denoiserVjp(
    link: DenoiserLink,
    x: Float32Array,
    sigma: number,
    u: Float32Array,
  ): Promise<Float32Array> {
    const { policy, context, guidance } = link;
    const nb = context.shape[0]!;
    const cfg = nb === 2 * this.batch;
    const { C, F, H, W, L, D } = policy.shape;
    let session = this.denoiserGrad.get(nb);
    if (!session) {
      const { model } = buildGradientGraph(decodeModel(policy.modelBytes), {
        wrt: ['latents'],
        shapes: { latents: [nb, C, F, H, W], timestep: [nb], context: [nb, L, D] },
      });
      session = await ModelSession.open(
        encodeModel(model),
        gradientRuntime(runtimeOptions(this.config)),
        `${policy.denoiserPath} (gradient w.r.t. latents)`,
      );
      this.denoiserGrad.set(nb, session);
    }
    // v = v_u + g(v_c − v_u): the uncond half's cotangent is (1−g)·ḡ, the cond half's g·ḡ.
    const gv = new Float32Array(nb * (u.length / this.batch));
    const m = u.length;
    for (let j = 0; j < m; j++) {
      const c = -sigma * u[j]!;
      if (cfg) {
        gv[j] = (1 - guidance) * c;
        gv[m + j] = guidance * c;
      } else gv[j] = c;
    }
    const feeds: Record<string, Tensor> = {
      latents: f32([nb, C, F, H, W], cfg ? cfgBatch(x) : x),
      timestep: f32([nb], new Float32Array(nb).fill(Math.fround(1000 * sigma))),
      context,
      'grad:velocity': f32([nb, C, F, H, W], gv),
    };
    for (const [name, t] of loraTensors(policy.lora)) feeds[name] = t;
    const g = (await session.run(feeds, ['grad:latents']))['grad:latents']!.data as Float32Array;
    if (!cfg) return g;
    const out = new Float32Array(m);
    for (let j = 0; j < m; j++) out[j] = g[j]! + g[m + j]!;
    return out;
  }

  /** ∇_{x̂0} r and r per sample, for latents x̂0 [B, C, F, H, W]. */
  async rewardGradient(x0: Float32Array): Promise<{ grad: Float32Array; reward: Float64Array }> {
    const B = this.batch;
    const o = this.config.lgm_outputs;
    const latents = f32([B, ...this.latentShape], x0);
    const want = [o.cameras, ...(this.plan.reward === 'motion' ? [] : [o.points])];
    const optional = [o.depth, o.confidence, ...(o.scene_flow ? [o.scene_flow] : [])];
    const fetch = [...want, ...optional.filter((n) => this.lgm.outputNames.includes(n))];
    const y = await this.lgm.run({ [o.latents_input]: latents }, [...new Set(fetch)]);
    const cot = this.cotangents(y);
    const feeds: Record<string, Tensor> = { [o.latents_input]: latents };
    for (const name of this.grad.inputNames) {
      if (!name.startsWith('grad:')) continue;
      const info = this.grad.inputs.find((i) => i.name === name)!;
      const shape = info.shape.map((d) => (typeof d === 'number' ? d : 0));
      feeds[name] = f32(shape, cot.get(name.slice(5)) ?? new Float32Array(shape.reduce((a, b) => a * b, 1)));
    }
    const res = await this.grad.run(feeds, [`grad:${o.latents_input}`]);
    return { grad: res[`grad:${o.latents_input}`]!.data as Float32Array, reward: cot.reward };
  }

  /** The reward's cotangents on the LGM outputs (by output name), per sample, and the rewards. */
  private cotangents(y: Record<string, Tensor>): Map<string, Float32Array> & { reward: Float64Array } {
    const B = this.batch;
    const o = this.config.lgm_outputs;
    const pose = y[o.cameras]!;
    const [, F] = pose.shape as [number, number];
    const depth = y[o.depth];
    const [, , h, w] = (depth?.shape ?? [B, F, 1, 1]) as [number, number, number, number];
    const n = F * h * w;
    const out = new Map<string, Float32Array>() as Map<string, Float32Array> & { reward: Float64Array };
    out.reward = new Float64Array(B);
    const gPose = new Float32Array(B * F * 9);
    const gDepth = new Float32Array(B * n);
    const gPoints = new Float32Array(B * 3 * n);
    const gConf = new Float32Array(B * n);
    const rw = this.config.rewards;
    const both = this.plan.reward === 'both';
    const wm = both ? this.plan.weights.motion : 1;
    const wg = both ? this.plan.weights.reprojection : 1;
    const data = (t: Tensor | undefined) => t?.data as Float32Array | undefined;
    for (let b = 0; b < B; b++) {
      const p = data(pose)!.subarray(b * F * 9, (b + 1) * F * 9);
      const d = data(depth)?.subarray(b * n, (b + 1) * n);
      if (!p.every(Number.isFinite) || (d && !d.every(Number.isFinite))) {
        out.reward[b] = Number.NaN;
        continue;
      }
      let r = 0;
      try {
        if (this.plan.reward !== 'reprojection') {
          const m = motionVjp(p, d, motion.parseOptions(rw.motion?.options), wm);
          r += wm * m.reward;
          addInto(gPose, b * F * 9, m.pose);
          if (m.depth) addInto(gDepth, b * n, m.depth);
        }
        if (this.plan.reward !== 'motion') {
          const cams = poseEncodingToCameras(p, h, w);
          const conf = data(y[o.confidence])?.subarray(b * n, (b + 1) * n);
          const flow = o.scene_flow ? data(y[o.scene_flow])?.subarray(3 * b * n, 3 * (b + 1) * n) : undefined;
          const g = reprojectionVjp(
            {
              frames: F,
              height: h,
              width: w,
              depth: d!,
              points: data(y[o.points])!.subarray(3 * b * n, 3 * (b + 1) * n),
              confidence: conf,
              extrinsics: cams.extrinsics,
              intrinsics: cams.intrinsics,
              sceneFlow: flow,
            },
            reprojection.parseOptions(rw.reprojection?.options),
            wg,
          );
          if (!Number.isFinite(g.reward)) throw new InputError('geometry', 'non-finite reprojection reward');
          r += wg * g.reward;
          addInto(gDepth, b * n, g.depth);
          addInto(gPoints, 3 * b * n, g.points);
          if (g.confidence) addInto(gConf, b * n, g.confidence);
          addInto(gPose, b * F * 9, poseEncodingVjp(poseFrames(p), g.extrinsics));
        }
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        // A degenerate sample (zero quaternion, NaN cameras) is left unsteered.
        for (const [arr, per] of [
          [gPose, F * 9],
          [gDepth, n],
          [gPoints, 3 * n],
          [gConf, n],
        ] as const)
          arr.fill(0, b * per, (b + 1) * per);
        r = Number.NaN;
      }
      out.reward[b] = r;
    }
    out.set(o.cameras, gPose);
    if (depth) out.set(o.depth, gDepth);
    if (this.plan.reward !== 'motion') {
      out.set(o.points, gPoints);
      if (y[o.confidence]) out.set(o.confidence, gConf);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.lgm.release();
    await this.grad.release();
    for (const d of this.denoiserGrad.values()) await d.release();
  }
}

function addInto(dst: Float32Array, at: number, src: ArrayLike<number>): void {
  for (let k = 0; k < src.length; k++) dst[at + k]! += src[k]!;
}
