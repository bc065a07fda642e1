/**
 * Exponential moving average of the LoRA weights (`grpo.ema`), updated after every optimiser
 * step: ema ← d·ema + (1 − d)·θ, element by element in float64, stored as float32. It starts as
 * a copy of the weights before the first step it follows. Kept in the checkpoint beside the
 * adapter (ema_model.safetensors, src/rl/checkpoint.ts) and sampled with `sampler.use_ema`.
 */
import type { ParamMap } from './adamw.js';

/** A fresh EMA: a copy of the weights. */
export function emaInit(params: ParamMap): ParamMap {
  return new Map([...params].map(([k, v]) => [k, Float32Array.from(v)]));
}

/**
 * One EMA update, in place; parameters the EMA does not hold yet start at their current value.
 *
 * @example
 *   emaUpdate(ema, policy.lora.params, 0.9);
 */
export function emaUpdate(ema: ParamMap, params: ParamMap, decay: number): void {
  for (const [name, p] of params) {
    const e = ema.get(name);
    if (!e || e.length !== p.length) {
      ema.set(name, Float32Array.from(p));
      continue;
    }
    for (let j = 0; j < p.length; j++) e[j] = decay * e[j]! + (1 - decay) * p[j]!;
  }
}
