/**
 * The flow-matching noise schedule and which of its steps are stochastic and trained.
 *
 * Sigmas run from 1 (pure noise) to 0 (clean latent); step i moves σ_i → σ_{i+1}. Shard files
 * store sigmas as F32, so every consumer here (and in `sde.ts`) rounds σ to float32 first:
 * `sample` (float64 schedule in memory) and `grpo-step` (F32 schedule from the shard) then
 * compute identical timesteps and log-probs.
 */
import { InputError } from '../errors.js';
import { type Seed, splitSeed, Xoshiro128 } from './prng.js';

/**
 * σ_i = linspace(1, 0, N+1) shifted by σ ← shift·σ / (1 + (shift−1)·σ).
 *
 * @example
 *   shiftedSigmas(4, 3); // [1, 0.9, 0.75, 0.5, 0]
 */
export function shiftedSigmas(steps: number, shift = 3): Float64Array {
  if (!Number.isInteger(steps) || steps < 1)
    throw new InputError('--steps', `expected a positive integer, got ${steps}`);
  if (!(shift > 0) || !Number.isFinite(shift))
    throw new InputError('--shift', `expected a positive number, got ${shift}`);
  const out = new Float64Array(steps + 1);
  for (let i = 0; i <= steps; i++) {
    // (N−i)/N rather than 1 − i/N: exact at both ends and symmetric.
    const s = (steps - i) / steps;
    out[i] = (shift * s) / (1 + (shift - 1) * s);
  }
  return out;
}

/**
 * The denoiser's timestep input for σ: 1000·σ, with σ rounded to float32 first and the
 * product rounded to float32 (what the f32 `timestep` tensor holds).
 *
 * @example
 *   timestepOf(0.75); // 750
 */
export function timestepOf(sigma: number): number {
  return Math.fround(1000 * Math.fround(sigma));
}

/**
 * The recorded (stochastic) steps: `START:END`, END exclusive, either side may be empty.
 * Defaults are 0 and N−1: the last step (σ_{N−1} → 0) is never stochastic, since its noise
 * would stay in the final latent, and so never trained.
 *
 * @example
 *   sdeWindow(':', 10);   // [0, 1, …, 8]
 *   sdeWindow('2:5', 10); // [2, 3, 4]
 */
export function sdeWindow(spec: string, steps: number): number[] {
  const m = /^\s*(\d*)\s*:\s*(\d*)\s*$/.exec(spec);
  if (!m) throw new InputError('--sde-window', `expected START:END, got '${spec}'`);
  const last = steps - 1;
  const start = m[1] === '' ? 0 : Number(m[1]);
  const end = m[2] === '' ? last : Number(m[2]);
  if (end > last) {
    throw new InputError(
      '--sde-window',
      `END ${end} is past step ${last - 1}: with ${steps} steps the last step (${last}) is never stochastic`,
    );
  }
  if (start >= end) throw new InputError('--sde-window', `empty window ${start}:${end} (${steps} steps)`);
  return Array.from({ length: end - start }, (_, k) => start + k);
}

/** Stream id of the train-step selection (far from the small step-index streams). */
const TRAIN_STEP_STREAM = 0x7157e9n << 40n;

/** How many of T recorded steps `--timestep-fraction` trains: ⌊T·f⌋, at least 1. */
export function trainStepCount(recorded: number, fraction: number): number {
  if (!(fraction > 0 && fraction <= 1))
    throw new InputError('--timestep-fraction', `expected (0, 1], got ${fraction}`);
  // The small epsilon keeps e.g. 0.3·10 = 2.9999999999999996 at 3.
  return Math.max(1, Math.min(recorded, Math.floor(recorded * fraction + 1e-9)));
}

/**
 * Which recorded steps (positions 0..T−1 in the trajectory) `grpo-step` trains on. Without a
 * seed, the first ⌊T·f⌋ in order (Flow-GRPO's default); with one, a seeded random subset,
 * returned sorted.
 *
 * @example
 *   selectTrainSteps(8, 0.5);     // [0, 1, 2, 3]
 *   selectTrainSteps(8, 0.5, 7);  // four distinct positions, the same for seed 7 every time
 */
export function selectTrainSteps(recorded: number, fraction: number, seed?: Seed): number[] {
  const k = trainStepCount(recorded, fraction);
  const idx = Array.from({ length: recorded }, (_, i) => i);
  if (seed === undefined) return idx.slice(0, k);
  // Partial Fisher–Yates; floor(u·n) from 53-bit uniforms has negligible bias for small n.
  const g = new Xoshiro128(splitSeed(seed, TRAIN_STEP_STREAM));
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(g.nextFloat64() * (recorded - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}
