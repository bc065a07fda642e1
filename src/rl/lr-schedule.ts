/**
 * The learning rate of optimiser step t (1-based, counted across iterations, as AdamW's own step
 * counter in the checkpoint): `grpo.lr_schedule` (README.md, Configuration).
 *
 *   constant  lr
 *   warmup    lr·min(1, t/W)
 *   cosine    lr·t/W for t ≤ W, then min_lr + (lr − min_lr)·½(1 + cos(π·p)), p = (t − W)/(N − W)
 *             clamped to [0, 1]: `lr` right after the warm-up, `min_lr` from step N on
 *
 * t is 1-based so that a warm-up's first step already learns (lr/W, not 0).
 */
import type { Config } from '../config/schema.js';

export type LrSchedule = NonNullable<Config['grpo']['lr_schedule']>;

/**
 * @example
 *   learningRate(1e-3, { kind: 'warmup', warmup_steps: 4, min_lr: 0 }, 1); // 2.5e-4
 */
export function learningRate(lr: number, schedule: LrSchedule | undefined, t: number): number {
  if (!schedule || schedule.kind === 'constant') return lr;
  const w = schedule.warmup_steps;
  if (t <= w) return (lr * t) / w;
  if (schedule.kind === 'warmup') return lr;
  const n = schedule.total_steps!;
  const p = Math.min(1, Math.max(0, (t - w) / (n - w)));
  return schedule.min_lr + (lr - schedule.min_lr) * 0.5 * (1 + Math.cos(Math.PI * p));
}

/**
 * The toy trainers' schedule (onnx/pretrain.ts, train-vae.ts, train-geometry.ts, the stitch's
 * phases) at 0-based step s of n: linear warm-up over the first w steps (lr·(s+1)/w), then a
 * cosine from lr down to floor·lr at the last step.
 *
 * @example
 *   warmupCosine(2e-3, 0, 1500, 30, 0.1); // 6.67e-5
 */
export function warmupCosine(lr: number, s: number, n: number, w: number, floor: number): number {
  if (s < w) return lr * ((s + 1) / w);
  const p = (s - w) / Math.max(1, n - w);
  return lr * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
}
