/**
 * The GRPO objective (docs/METHOD.md, "GRPO update") as float64 reference code: the clipped
 * policy-ratio loss, the KL penalty to the LoRA-off model, their analytic gradients (which a
 * VJP through the denoiser consumes), and the logging statistics Flow-GRPO reports.
 *
 * Loss over one training step (one denoising step for B samples):
 *   r_b = exp(logp_new_b − logp_old_b)
 *   L = (1/B)·Σ_b max(−A_b·r_b, −A_b·clip(r_b, 1−ε, 1+ε))
 *
 * Gradient ∂L/∂logp_new_b = (1/B)·(−A_b·r_b) where the unclipped term is the active one, else 0
 * (∂r/∂logp_new = r). The unclipped term is active when
 *   1−ε ≤ r ≤ 1+ε (both terms equal), or A > 0 and r < 1−ε, or A < 0 and r > 1+ε.
 * Boundaries and ties follow torch's autograd: clamp passes the gradient at r = 1±ε exactly, and
 * maximum splits a tie in half between two branches that are then equal (−A·r each), so the
 * full −A·r flows. Elsewhere (A > 0, r > 1+ε; A < 0, r < 1−ε; or A = 0) the gradient is 0.
 * With r = 1 (one optimiser step per batch of rollouts) this is the plain policy gradient
 * −(1/B)·Σ A_b·∇logp_b.
 */
import { check, RuntimeFailure } from '../errors.js';
import { logProbVjp, type SdeCoefficients } from './sde.js';

export interface RatioStats {
  min: number;
  max: number;
  mean: number;
}

export interface GrpoLossResult {
  /** The clipped surrogate loss L. */
  loss: number;
  /** r_b per sample. */
  ratios: Float64Array;
  ratio: RatioStats;
  /** Fraction of samples with |r − 1| > ε (Flow-GRPO's `clipfrac`). */
  clipFraction: number;
  /** ½·mean((logp_new − logp_old)²) (Flow-GRPO's `approx_kl`). */
  approxKl: number;
  /** ∂L/∂logp_new_b. */
  gradLogpNew: Float64Array;
}

/**
 * The clipped GRPO policy loss and its gradient w.r.t. the new log-probs.
 *
 * @example
 *   const r = grpoLoss({ logpNew, logpOld, advantages, clipRange: 1e-3 });
 *   r.loss; r.gradLogpNew; // feed gradLogpNew to logProbVjp to reach the denoiser
 */
export function grpoLoss(args: {
  logpNew: ArrayLike<number>;
  logpOld: ArrayLike<number>;
  advantages: ArrayLike<number>;
  clipRange: number;
}): GrpoLossResult {
  const { logpNew, logpOld, advantages, clipRange: eps } = args;
  const n = logpNew.length;
  check(n > 0, 'grpoLoss', 'empty batch');
  check(
    logpOld.length === n && advantages.length === n,
    'grpoLoss',
    'logpNew, logpOld and advantages differ in length',
  );
  check(eps >= 0 && Number.isFinite(eps), 'grpoLoss', `clip range must be ≥ 0, got ${eps}`);
  const lo = 1 - eps;
  const hi = 1 + eps;
  const ratios = new Float64Array(n);
  const grad = new Float64Array(n);
  let loss = 0;
  let clipped = 0;
  let kl = 0;
  let rMin = Number.POSITIVE_INFINITY;
  let rMax = Number.NEGATIVE_INFINITY;
  let rSum = 0;
  for (let b = 0; b < n; b++) {
    const d = logpNew[b]! - logpOld[b]!;
    const r = Math.exp(d);
    const a = advantages[b]!;
    const rc = Math.min(Math.max(r, lo), hi);
    const unclipped = -a * r;
    const clippedTerm = -a * rc;
    loss += Math.max(unclipped, clippedTerm);
    const unclippedActive = (r >= lo && r <= hi) || (a > 0 && r < lo) || (a < 0 && r > hi);
    grad[b] = unclippedActive ? (-a * r) / n : 0;
    ratios[b] = r;
    rMin = Math.min(rMin, r);
    rMax = Math.max(rMax, r);
    rSum += r;
    if (Math.abs(r - 1) > eps) clipped++;
    kl += d * d;
  }
  return {
    loss: loss / n,
    ratios,
    ratio: { min: rMin, max: rMax, mean: rSum / n },
    clipFraction: clipped / n,
    approxKl: (0.5 * kl) / n,
    gradLogpNew: grad,
  };
}

export type KlForm = 'true' | 'sd3';

export interface KlResult {
  /** mean over the batch of kl_b. */
  kl: number;
  /** kl_b = mean_j (μθ−μref)²/(2·var) per sample. */
  perSample: Float64Array;
  /** ∂kl/∂μθ_j = (μθ−μref)_j/(var·M·B), [B·M] (float32, like the means). */
  gradMeanTheta: Float32Array;
  /** The variance used: (std_t·sqrt(−dt))² for 'true', std_t² for 'sd3'. */
  variance: number;
}

/**
 * KL penalty between the policy's and the reference (LoRA-off) model's Gaussian steps, which
 * share the variance, so KL = mean((μθ − μref)²)/(2·var):
 * - 'true': var = (std_t·sqrt(−dt))², the actual KL of the two transitions (Flow-GRPO, Wan);
 * - 'sd3':  var = std_t², Flow-GRPO's SD3 code. Since (std_t·√−dt)² = std_t²·|dt|, the 'sd3'
 *   value is |dt| times the true KL, i.e. |dt|⁻¹ times weaker per unit β: a β tuned for one
 *   form does not transfer to the other.
 * `std` is std_t·sqrt(−dt) and `stdT` is std_t (both in sdeCoefficients).
 *
 * @example
 *   const c = sdeCoefficients(sigmas, i);
 *   const k = klPenalty({ meanTheta, meanRef, batch: B, std: c.std, stdT: c.stdT, form: 'true' });
 */
export function klPenalty(args: {
  meanTheta: Float32Array;
  meanRef: Float32Array;
  batch: number;
  std: number;
  stdT: number;
  form: KlForm;
}): KlResult {
  const { meanTheta, meanRef, batch, form } = args;
  check(meanTheta.length === meanRef.length, 'klPenalty', 'meanTheta and meanRef differ in length');
  check(
    batch > 0 && meanTheta.length % batch === 0,
    'klPenalty',
    `${meanTheta.length} elements do not split into ${batch}`,
  );
  const s = form === 'true' ? args.std : args.stdT;
  const variance = s * s;
  check(variance > 0 && Number.isFinite(variance), 'klPenalty', `variance must be positive, got ${variance}`);
  const m = meanTheta.length / batch;
  const perSample = new Float64Array(batch);
  const grad = new Float32Array(meanTheta.length);
  const g = 1 / (variance * m * batch);
  let total = 0;
  for (let b = 0; b < batch; b++) {
    let sum = 0;
    for (let j = b * m; j < (b + 1) * m; j++) {
      const d = meanTheta[j]! - meanRef[j]!;
      sum += d * d;
      grad[j] = d * g;
    }
    perSample[b] = sum / m / (2 * variance);
    total += perSample[b]!;
  }
  return { kl: total / batch, perSample, gradMeanTheta: grad, variance };
}

/**
 * Fail (exit 1) unless every ratio is 1 within `tol` on the first inner step: the same inputs in
 * the same batch shape must give the same log-prob (docs/METHOD.md).
 *
 * @example
 *   assertRatioOne(logpNew, logpOld); // throws RuntimeFailure naming the worst sample
 */
export function assertRatioOne(logpNew: ArrayLike<number>, logpOld: ArrayLike<number>, tol = 1e-5): void {
  let worst = -1;
  let worstDev = 0;
  for (let b = 0; b < logpNew.length; b++) {
    const dev = Math.abs(Math.exp(logpNew[b]! - logpOld[b]!) - 1);
    if (!(dev <= tol) && (worst < 0 || !(dev <= worstDev))) {
      worst = b;
      worstDev = dev;
    }
  }
  if (worst >= 0) {
    throw new RuntimeFailure(
      `GRPO ratio ≠ 1 on the first inner step: sample ${worst} has logp_new ${logpNew[worst]} vs recorded ` +
        `${logpOld[worst]} (|r−1| = ${worstDev}, tolerance ${tol}); the denoiser must run with the same batch ` +
        'composition, graph and session options as in sample',
    );
  }
}

/**
 * ∂L/∂v for L = GRPO loss + β·KL at one denoising step, the cotangent to pull back through the
 * denoiser (VJP) to the LoRA parameters. Both terms reach v only through the SDE mean, which is
 * cx·x + cv·v with x the recorded latent (a constant), so
 *   ∂L/∂v_j = cv·( Σ_b ∂L/∂logp_b · (next_j − mean_j)/(std²·M) + β·(μθ−μref)_j/(var·M·B) ).
 * `gradLogpNew` is grpoLoss's per-sample gradient; `mean` is the policy's SDE mean (μθ).
 *
 * @example
 *   const c = sdeCoefficients(sigmas, i);
 *   const g = grpoLoss({ logpNew, logpOld, advantages, clipRange });
 *   const gV = velocityCotangent({ next, mean, coeffs: c, batch: B, gradLogpNew: g.gradLogpNew });
 */
export function velocityCotangent(args: {
  next: Float32Array;
  mean: Float32Array;
  coeffs: Pick<SdeCoefficients, 'std' | 'stdT' | 'cv'>;
  batch: number;
  gradLogpNew: ArrayLike<number>;
  kl?: { meanRef: Float32Array; beta: number; form: KlForm };
}): Float32Array {
  const { next, mean, coeffs, batch } = args;
  const g = logProbVjp(next, mean, coeffs.std, batch, args.gradLogpNew);
  if (args.kl && args.kl.beta !== 0) {
    const k = klPenalty({
      meanTheta: mean,
      meanRef: args.kl.meanRef,
      batch,
      std: coeffs.std,
      stdT: coeffs.stdT,
      form: args.kl.form,
    });
    const beta = args.kl.beta;
    for (let j = 0; j < g.length; j++) g[j] = g[j]! + beta * k.gradMeanTheta[j]!;
  }
  for (let j = 0; j < g.length; j++) g[j] = g[j]! * coeffs.cv;
  return g;
}
