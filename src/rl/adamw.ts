/**
 * AdamW as torch.optim.AdamW does it (decoupled weight decay, bias-corrected moments), over named
 * float32 parameters, plus gradient-norm clipping as torch.nn.utils.clip_grad_norm_.
 *
 * Per step t (1-based), for every element:
 *   p ← p·(1 − lr·wd)                      (decoupled decay, before the Adam update)
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
 * Parameters and moments are stored as float32; each update is evaluated in float64 and rounded
 * once per stored value (p after the decay and after the update, m, v).
 */
import { check, RuntimeFailure } from '../errors.js';

export type ParamMap = Map<string, Float32Array>;

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** The optimiser's state: first and second moments per parameter and the step counter. */
export interface AdamWState {
  /** Steps taken so far (the next step is step + 1). */
  step: number;
  expAvg: ParamMap;
  expAvgSq: ParamMap;
}

/**
 * Fresh state (zero moments, step 0) for the given parameters.
 *
 * @example
 *   const state = adamwInit(params);
 */
export function adamwInit(params: ParamMap): AdamWState {
  const expAvg: ParamMap = new Map();
  const expAvgSq: ParamMap = new Map();
  for (const [name, p] of params) {
    expAvg.set(name, new Float32Array(p.length));
    expAvgSq.set(name, new Float32Array(p.length));
  }
  return { step: 0, expAvg, expAvgSq };
}

/**
 * One AdamW step, in place on `params` and `state`. Every parameter needs a gradient of its size.
 *
 * @example
 *   clipGradNorm(grads, 1.0);
 *   adamwStep(params, grads, state, { lr: 1e-4, weightDecay: 1e-4 });
 */
export function adamwStep(params: ParamMap, grads: ParamMap, state: AdamWState, opts: AdamWOptions): void {
  const { lr } = opts;
  const [b1, b2] = opts.betas ?? [0.9, 0.999];
  const eps = opts.eps ?? 1e-8;
  const wd = opts.weightDecay ?? 0;
  check(lr >= 0 && Number.isFinite(lr), 'adamw', `lr must be ≥ 0, got ${lr}`);
  check(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, 'adamw', `betas must lie in [0, 1), got ${b1}, ${b2}`);
  for (const [name, p] of params) {
    const g = grads.get(name);
    check(g !== undefined, 'adamw', `no gradient for parameter '${name}'`);
    check(
      g.length === p.length,
      'adamw',
      `gradient '${name}' has ${g.length} elements, the parameter ${p.length}`,
    );
    if (!state.expAvg.has(name)) {
      state.expAvg.set(name, new Float32Array(p.length));
      state.expAvgSq.set(name, new Float32Array(p.length));
    }
    check(state.expAvg.get(name)!.length === p.length, 'adamw', `moment of '${name}' has the wrong size`);
  }
  const t = state.step + 1;
  const bc1 = 1 - b1 ** t;
  const bc2Sqrt = Math.sqrt(1 - b2 ** t);
  const stepSize = lr / bc1;
  const decay = 1 - lr * wd;
  for (const [name, p] of params) {
    const g = grads.get(name)!;
    const m = state.expAvg.get(name)!;
    const v = state.expAvgSq.get(name)!;
    for (let j = 0; j < p.length; j++) {
      const gj = g[j]!;
      p[j] = p[j]! * decay;
      m[j] = b1 * m[j]! + (1 - b1) * gj;
      v[j] = b2 * v[j]! + (1 - b2) * gj * gj;
      p[j] = p[j]! - (stepSize * m[j]!) / (Math.sqrt(v[j]!) / bc2Sqrt + eps);
    }
  }
  state.step = t;
}

/**
 * Names of the gradients holding NaN or ±Inf.
 *
 * @example
 *   const bad = nonFiniteGrads(grads); // [] when all finite
 */
export function nonFiniteGrads(grads: ParamMap): string[] {
  const bad: string[] = [];
  for (const [name, g] of grads) {
    for (let j = 0; j < g.length; j++) {
      if (!Number.isFinite(g[j]!)) {
        bad.push(name);
        break;
      }
    }
  }
  return bad;
}

/**
 * Scale all gradients in place so their global L2 norm is at most `maxNorm`, as
 * torch.nn.utils.clip_grad_norm_: coef = min(1, maxNorm/(total + 1e-6)). Returns the norm before
 * clipping. A non-finite gradient is a RuntimeFailure (exit 1) naming the parameters, unless
 * `errorIfNonfinite` is false (then the norm is returned and nothing is scaled).
 *
 * @example
 *   const norm = clipGradNorm(grads, 1.0);
 */
export function clipGradNorm(grads: ParamMap, maxNorm: number, errorIfNonfinite = true): number {
  let sq = 0;
  for (const g of grads.values()) for (let j = 0; j < g.length; j++) sq += g[j]! * g[j]!;
  const total = Math.sqrt(sq);
  if (!Number.isFinite(total)) {
    if (errorIfNonfinite) {
      const bad = nonFiniteGrads(grads);
      throw new RuntimeFailure(
        `non-finite gradient (norm ${total})` +
          (bad.length ? `: ${bad.join(', ')}` : ' (overflow in the norm)'),
      );
    }
    return total;
  }
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) for (const g of grads.values()) for (let j = 0; j < g.length; j++) g[j] = g[j]! * coef;
  return total;
}
