/**
 * Group-relative advantages (docs/METHOD.md, "Advantage"): each reward is z-normalised within its group
 * (the samples of one prompt) with the population std + stdEps, the normalised rewards are
 * averaged with the config's weights, and the result is clipped to ±clip — once, here, so that
 * `grpo-step` uses exactly what the rewards shard records.
 *
 * A non-finite reward (a sample whose geometry came out NaN) gets its group's smallest finite
 * value of that reward — the worst outcome seen, without poisoning the group statistics — and a
 * warning; a group with no finite value of a reward gets 0 for all its samples (no signal).
 */
import { InputError } from '../errors.js';

export interface RewardGroupStats {
  /** Mean over all samples (after non-finite replacement). */
  mean: number;
  /** Population std over all samples. */
  std: number;
  /** Mean of the within-group population stds (what the z-normalisation divides by, less stdEps). */
  groupStd: number;
  /** Fraction of groups whose rewards are all equal (their z-scores are 0: no learning signal). */
  zeroStdFraction: number;
}

export interface AdvantageResult {
  /** [B] clipped weighted average of the group z-scores. */
  advantages: Float64Array;
  /** [B] weighted sum of the raw rewards (for logging: the shard's `reward`). */
  weighted: Float64Array;
  stats: Record<string, RewardGroupStats>;
  warnings: string[];
}

export interface AdvantageOptions {
  clip?: number;
  stdEps?: number;
}

/**
 * @example
 *   groupAdvantages({ motion: [0.9, 0.7, 0.6, 0.8] }, [0, 0, 1, 1], { motion: 1 });
 *   // advantages ≈ [1, −1, −1, 1] (each pair: ±0.1 / (0.1 + 1e-4))
 */
export function groupAdvantages(
  rewards: Record<string, Float64Array | Float32Array | number[]>,
  groupIndex: ArrayLike<number>,
  weights: Record<string, number>,
  options: AdvantageOptions = {},
): AdvantageResult {
  const clip = options.clip ?? 5;
  const stdEps = options.stdEps ?? 1e-4;
  const B = groupIndex.length;
  const names = Object.keys(weights);
  if (names.length === 0) throw new InputError('rewards', 'no reward has a weight');
  let wsum = 0;
  for (const name of names) {
    const w = weights[name]!;
    if (!Number.isFinite(w) || w < 0)
      throw new InputError(`rewards.${name}.weight`, `must be finite and ≥ 0, got ${w}`);
    if (!(name in rewards)) throw new InputError(`rewards.${name}`, 'has a weight but no reward values');
    wsum += w;
  }
  if (!(wsum > 0)) throw new InputError('rewards', 'the reward weights sum to 0');
  for (const [name, r] of Object.entries(rewards)) {
    if (r.length !== B) throw new InputError(`reward/${name}`, `${r.length} values for ${B} samples`);
  }

  // Groups: sample indices per group id, in first-seen order.
  const groups = new Map<number, number[]>();
  for (let b = 0; b < B; b++) {
    const g = groupIndex[b]!;
    let members = groups.get(g);
    if (!members) groups.set(g, (members = []));
    members.push(b);
  }
  for (const [g, members] of groups) {
    if (members.length < 2) {
      throw new InputError(
        'group_index',
        `group ${g} has a single sample: group-relative advantages need ≥ 2`,
      );
    }
  }

  const advantages = new Float64Array(B);
  const weighted = new Float64Array(B);
  const stats: Record<string, RewardGroupStats> = {};
  const warnings: string[] = [];
  for (const [name, raw] of Object.entries(rewards)) {
    const w = weights[name] ?? 0;
    const r = Float64Array.from(raw as ArrayLike<number>);
    const z = new Float64Array(B);
    let zeroStd = 0;
    let groupStdSum = 0;
    for (const [g, members] of groups) {
      let min = Number.POSITIVE_INFINITY;
      for (const b of members) if (Number.isFinite(r[b]!) && r[b]! < min) min = r[b]!;
      const fill = Number.isFinite(min) ? min : 0;
      for (const b of members) {
        if (!Number.isFinite(r[b]!)) {
          warnings.push(
            `reward/${name}: sample ${b} (group ${g}) is ${r[b]}; using the group minimum ${fill}`,
          );
          r[b] = fill;
        }
      }
      let mean = 0;
      for (const b of members) mean += r[b]!;
      mean /= members.length;
      let v = 0;
      for (const b of members) v += (r[b]! - mean) ** 2;
      const std = Math.sqrt(v / members.length);
      groupStdSum += std;
      // Rounding makes the std of equal values ~1e-17·|mean|, not 0.
      if (std <= 1e-12 * Math.max(1, Math.abs(mean))) zeroStd++;
      for (const b of members) z[b] = (r[b]! - mean) / (std + stdEps);
    }
    let mean = 0;
    for (let b = 0; b < B; b++) mean += r[b]!;
    mean /= B;
    let v = 0;
    for (let b = 0; b < B; b++) v += (r[b]! - mean) ** 2;
    stats[name] = {
      mean,
      std: Math.sqrt(v / B),
      groupStd: groupStdSum / groups.size,
      zeroStdFraction: zeroStd / groups.size,
    };
    for (let b = 0; b < B; b++) {
      advantages[b] = (advantages[b] ?? 0) + (w / wsum) * z[b]!;
      weighted[b] = (weighted[b] ?? 0) + w * r[b]!;
    }
  }
  for (let b = 0; b < B; b++) advantages[b] = Math.max(-clip, Math.min(clip, advantages[b]!));
  return { advantages, weighted, stats, warnings };
}
