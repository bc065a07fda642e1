/**
 * The Flow-GRPO SDE step: the flow-matching ODE x ← x + dt·v turned into a Gaussian transition,
 * so each denoising step of `sample` is a policy action with a log-probability (docs/METHOD.md,
 * "Flow-GRPO SDE step"). One step, diffusers-scheduler style: `sdeStep()` returns a typed record.
 *
 * Float32 arithmetic, exactly: every scalar and element operation is rounded with Math.fround.
 * Because Math.fround(a ∘ b) of float32 a, b equals the correctly rounded IEEE single-precision
 * result for ∘ ∈ {+, −, ×, ÷, sqrt}, this IS float32 arithmetic (as ONNX/torch f32 kernels do it
 * elementwise), not an approximation of it. Math.log is V8's deterministic fdlibm port. The one
 * reduction, the mean over a sample's elements, sums the float32 terms in float64 in index order
 * and rounds once — deterministic and more accurate than a float32 running sum. So the same
 * (x, v) or (next, mean) arrays give bit-identical results in `sample` and `grpo-step`.
 *
 * Sigmas are rounded to float32 on entry (the shard stores them as F32), so a float64 schedule
 * and the F32 one read back from a shard give the same step.
 *
 * Deliberate difference from Flow-GRPO's torch code: the velocity coefficient (1 + …)·dt is
 * folded into one float32 scalar `cv` (torch rounds v·(1+…) then ·dt), so the mean is exactly
 * linear in v with slope `cv`, which is what the VJP through the denoiser uses.
 */
import { check } from '../errors.js';

const f = Math.fround;
/** log √(2π), rounded to float32 once. */
const LOG_SQRT_2PI = f(Math.log(Math.sqrt(2 * Math.PI)));

/** The per-step scalars of the SDE transition, all float32 values. */
export interface SdeCoefficients {
  /** σ_i and σ_{i+1}, rounded to float32. */
  sigma: number;
  sigmaNext: number;
  /** dt = σ_{i+1} − σ_i (< 0). */
  dt: number;
  /** std_t = a·sqrt(σ/(1−σ)) (σ = 1: sigmas[1] in the denominator). */
  stdT: number;
  /** sqrt(−dt). */
  sqrtNegDt: number;
  /** The transition's standard deviation std_t·sqrt(−dt). */
  std: number;
  /** mean = cx·x + cv·v with cx = 1 + std_t²/(2σ)·dt and cv = (1 + std_t²(1−σ)/(2σ))·dt. */
  cx: number;
  cv: number;
}

/** What one SDE step produced (diffusers' `step()` record). */
export interface SdeStepResult extends SdeCoefficients {
  /** The Gaussian's mean, [B, …]. */
  mean: Float32Array;
  /** x_{i+1} = mean + std·ε (or the given `next` when recomputing), [B, …]. */
  next: Float32Array;
  /** log p(next | x) per batch item, averaged over the non-batch elements, [B]. */
  logProb: Float32Array;
}

/**
 * std_t = a·sqrt(σ/(1−σ)) at step i; at σ = 1 (step 0) the denominator uses sigmas[1] instead of
 * σ, as Flow-GRPO does, so the first step stays finite. Float32.
 *
 * @example
 *   stdDev(shiftedSigmas(4, 3), 0); // 0.7·sqrt(1/(1−0.9)) ≈ 2.2136
 */
export function stdDev(sigmas: ArrayLike<number>, i: number, noiseLevel = 0.7): number {
  check(
    i >= 0 && i < sigmas.length - 1,
    'sdeStep',
    `step ${i} outside the schedule of ${sigmas.length - 1} steps`,
  );
  const s = f(sigmas[i]!);
  const d = s === 1 ? f(sigmas[1]!) : s;
  return f(f(Math.sqrt(f(s / f(1 - d)))) * f(noiseLevel));
}

/**
 * All scalars of step i → i+1 (float32).
 *
 * @example
 *   const c = sdeCoefficients(sigmas, 3, 0.7); // mean = c.cx·x + c.cv·v, std = c.std
 */
export function sdeCoefficients(sigmas: ArrayLike<number>, i: number, noiseLevel = 0.7): SdeCoefficients {
  const stdT = stdDev(sigmas, i, noiseLevel);
  const sigma = f(sigmas[i]!);
  const sigmaNext = f(sigmas[i + 1]!);
  check(sigmaNext < sigma, 'sdeStep', `sigmas must decrease: σ_${i} = ${sigma}, σ_${i + 1} = ${sigmaNext}`);
  const dt = f(sigmaNext - sigma);
  const sqrtNegDt = f(Math.sqrt(-dt));
  const std2 = f(stdT * stdT);
  const twoSigma = f(2 * sigma);
  const cx = f(1 + f(f(std2 / twoSigma) * dt));
  const cv = f(f(1 + f(f(std2 * f(1 - sigma)) / twoSigma)) * dt);
  return { sigma, sigmaNext, dt, stdT, sqrtNegDt, std: f(stdT * sqrtNegDt), cx, cv };
}

/**
 * The SDE mean cx·x + cv·v, elementwise in float32.
 *
 * @example
 *   const mean = sdeMean(x, v, sdeCoefficients(sigmas, i));
 */
export function sdeMean(
  x: Float32Array,
  v: Float32Array,
  c: Pick<SdeCoefficients, 'cx' | 'cv'>,
): Float32Array {
  check(x.length === v.length, 'sdeStep', `x has ${x.length} elements, v has ${v.length}`);
  const out = new Float32Array(x.length);
  const { cx, cv } = c;
  for (let j = 0; j < x.length; j++) out[j] = f(x[j]! * cx) + f(v[j]! * cv);
  return out; // the store into Float32Array is the final rounding of the sum
}

/**
 * log N(next; mean, std²) per batch item, averaged over the non-batch elements:
 * −(next−mean)²/(2·std²) − log(std) − log√(2π), each element in float32, then the mean.
 * Used by `sample` (via sdeStep) and to recompute in `grpo-step`; bit-identical for equal inputs.
 *
 * @example
 *   const lp = logProb(next, mean, c.std, B); // Float32Array [B]
 */
export function logProb(next: Float32Array, mean: Float32Array, std: number, batch: number): Float32Array {
  check(next.length === mean.length, 'logProb', `next has ${next.length} elements, mean has ${mean.length}`);
  check(
    batch > 0 && next.length % batch === 0,
    'logProb',
    `${next.length} elements do not split into ${batch} items`,
  );
  const s = f(std);
  check(s > 0 && Number.isFinite(s), 'logProb', `std must be positive and finite, got ${std}`);
  const m = next.length / batch;
  const twoVar = f(2 * f(s * s));
  const logStd = f(Math.log(s));
  const out = new Float32Array(batch);
  for (let b = 0; b < batch; b++) {
    let sum = 0;
    for (let j = b * m; j < (b + 1) * m; j++) {
      const d = f(next[j]! - mean[j]!);
      const q = f(f(d * d) / twoVar);
      sum += f(f(-q - logStd) - LOG_SQRT_2PI);
    }
    out[b] = sum / m;
  }
  return out;
}

/**
 * One Flow-GRPO SDE step on a batch x [B, …] with velocity v [B, …]. Give `noise` (ε, [B, …])
 * to sample, or `next` to recompute the log-prob of a recorded transition.
 *
 * @example
 *   const r = sdeStep({ x, v, sigmas, i: 2, noiseLevel: 0.7, batch: 4, noise: batchNoise(seeds, 2, M) });
 *   r.next; r.logProb; // [4·M], [4]
 */
export function sdeStep(args: {
  x: Float32Array;
  v: Float32Array;
  sigmas: ArrayLike<number>;
  i: number;
  batch: number;
  noiseLevel?: number;
  noise?: Float32Array;
  next?: Float32Array;
}): SdeStepResult {
  const { x, v, sigmas, i, batch, noise } = args;
  const c = sdeCoefficients(sigmas, i, args.noiseLevel ?? 0.7);
  check(c.std > 0, '--noise-level', 'must be > 0 for stochastic steps (use --ode for a deterministic run)');
  const mean = sdeMean(x, v, c);
  let next: Float32Array;
  if (args.next) {
    check(
      args.next.length === x.length,
      'sdeStep',
      `next has ${args.next.length} elements, x has ${x.length}`,
    );
    next = args.next;
  } else {
    check(noise !== undefined, 'sdeStep', 'give noise (to sample) or next (to recompute)');
    check(noise.length === x.length, 'sdeStep', `noise has ${noise.length} elements, x has ${x.length}`);
    next = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) next[j] = mean[j]! + f(c.std * noise[j]!);
  }
  return { ...c, mean, next, logProb: logProb(next, mean, c.std, batch) };
}

/**
 * The sampler's SDE step, fused: x ← next = mean + std·ε in place, and each item's log-prob into
 * `logProbs[b]`, in one pass without the mean array. Element for element the same float32
 * operations as sdeStep (sdeMean, then logProb's terms summed in float64 in index order), so
 * the results are bit-identical to it (test/rl/sde.test.ts) at a fraction of the memory traffic.
 *
 * @example
 *   sdeSampleInPlace(x, v, noise, sdeCoefficients(sigmas, i, 0.7), G, logProbs); // x is now x_{i+1}
 */
export function sdeSampleInPlace(
  x: Float32Array,
  v: Float32Array,
  noise: Float32Array,
  c: SdeCoefficients,
  batch: number,
  logProbs: Float32Array,
): void {
  check(
    v.length === x.length && noise.length === x.length,
    'sdeStep',
    `x, v and noise have ${x.length}, ${v.length} and ${noise.length} elements`,
  );
  check(
    batch > 0 && x.length % batch === 0,
    'sdeStep',
    `${x.length} elements do not split into ${batch} items`,
  );
  check(c.std > 0, '--noise-level', 'must be > 0 for stochastic steps (use --ode for a deterministic run)');
  const { cx, cv, std } = c;
  const m = x.length / batch;
  const twoVar = f(2 * f(std * std));
  const logStd = f(Math.log(std));
  for (let b = 0; b < batch; b++) {
    let sum = 0;
    for (let j = b * m; j < (b + 1) * m; j++) {
      // f(…) of the sum is the rounding sdeStep's store into a Float32Array does.
      const mean = f(f(x[j]! * cx) + f(v[j]! * cv));
      const next = f(mean + f(std * noise[j]!));
      x[j] = next;
      const d = f(next - mean);
      const q = f(f(d * d) / twoVar);
      sum += f(f(-q - logStd) - LOG_SQRT_2PI);
    }
    logProbs[b] = sum / m;
  }
}

/**
 * The deterministic Euler step x + dt·v (steps outside the SDE window, and `--ode`), float32,
 * into `out` (a new array by default; `out = x` steps in place, as the sampler does).
 *
 * @example
 *   const x1 = odeStep(x, v, sigmas, 9); // the last step
 *   odeStep(x, v, sigmas, 9, x); // the same values, in place
 */
export function odeStep(
  x: Float32Array,
  v: Float32Array,
  sigmas: ArrayLike<number>,
  i: number,
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  check(x.length === v.length, 'odeStep', `x has ${x.length} elements, v has ${v.length}`);
  check(
    i >= 0 && i < sigmas.length - 1,
    'odeStep',
    `step ${i} outside the schedule of ${sigmas.length - 1} steps`,
  );
  check(out.length === x.length, 'odeStep', `out has ${out.length} elements, x has ${x.length}`);
  const dt = f(f(sigmas[i + 1]!) - f(sigmas[i]!));
  // Four at a time: the loop is memory-bound and V8 does not unroll it (≈ 30% faster).
  const n = x.length;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    out[j] = x[j]! + f(dt * v[j]!);
    out[j + 1] = x[j + 1]! + f(dt * v[j + 1]!);
    out[j + 2] = x[j + 2]! + f(dt * v[j + 2]!);
    out[j + 3] = x[j + 3]! + f(dt * v[j + 3]!);
  }
  for (; j < n; j++) out[j] = x[j]! + f(dt * v[j]!);
  return out;
}

/**
 * Classifier-free guidance v = v_u + g·(v_c − v_u), float32.
 *
 * @example
 *   const v = cfgCombine(vUncond, vCond, 5);
 */
export function cfgCombine(vUncond: Float32Array, vCond: Float32Array, guidance: number): Float32Array {
  check(
    vUncond.length === vCond.length,
    'cfg',
    `uncond has ${vUncond.length} elements, cond ${vCond.length}`,
  );
  const g = f(guidance);
  const out = new Float32Array(vCond.length);
  for (let j = 0; j < out.length; j++) out[j] = vUncond[j]! + f(g * f(vCond[j]! - vUncond[j]!));
  return out;
}

/**
 * The [2B, …] batch classifier-free guidance runs: the latents twice (uncond half, cond half).
 *
 * @example
 *   const v2B = await velocity(policy, cfgBatch(x), 2 * B, sigma, ctx2B);
 */
export function cfgBatch(x: Float32Array): Float32Array {
  const out = new Float32Array(2 * x.length);
  out.set(x);
  out.set(x, x.length);
  return out;
}

/**
 * CFG when cond and uncond ran as the two halves of one [2B, …] batch (uncond first by default).
 *
 * @example
 *   const v = cfgCombineHalves(v2B, 5); // [B, …]
 */
export function cfgCombineHalves(
  v2B: Float32Array,
  guidance: number,
  order: 'uncond-first' | 'cond-first' = 'uncond-first',
): Float32Array {
  check(v2B.length % 2 === 0, 'cfg', `a [2B, …] batch cannot have ${v2B.length} elements`);
  const h = v2B.length / 2;
  const first = v2B.subarray(0, h);
  const second = v2B.subarray(h);
  return order === 'uncond-first' ? cfgCombine(first, second, guidance) : cfgCombine(second, first, guidance);
}

/**
 * Vector–Jacobian product of the per-item log-prob w.r.t. the mean:
 * ∂logp_b/∂mean_j = (next_j − mean_j)/(std²·M) for j in item b (M elements per item), times the
 * incoming gradient gLogp_b. Chain with ∂mean/∂v = cv (sdeCoefficients) to get ∂L/∂v.
 *
 * @example
 *   const gMean = logProbVjp(next, mean, c.std, B, dLossDLogp); // then gV[j] = c.cv·gMean[j]
 */
export function logProbVjp(
  next: Float32Array,
  mean: Float32Array,
  std: number,
  batch: number,
  gLogp: ArrayLike<number>,
): Float32Array {
  check(
    next.length === mean.length,
    'logProbVjp',
    `next has ${next.length} elements, mean has ${mean.length}`,
  );
  check(
    gLogp.length === batch && next.length % batch === 0,
    'logProbVjp',
    `batch ${batch} does not fit the inputs`,
  );
  const m = next.length / batch;
  const s = f(std);
  const out = new Float32Array(next.length);
  for (let b = 0; b < batch; b++) {
    const k = gLogp[b]! / (s * s * m);
    for (let j = b * m; j < (b + 1) * m; j++) out[j] = k * (next[j]! - mean[j]!);
  }
  return out;
}
