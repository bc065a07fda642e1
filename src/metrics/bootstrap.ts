/**
 * 95% bootstrap intervals for the evaluation's means. Videos of one prompt are not independent
 * (same scene, same text), so the resampling is two-stage: prompts with replacement, then videos
 * within each chosen prompt with replacement. A base → final difference is resampled the same
 * way over the pairs (same prompt and seed in both sets), so what is shared cancels. The seed is
 * fixed: the same data give the same interval.
 */
import { seededRandom } from './fundamental.js';

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
}

/** Values grouped by prompt (non-finite values are left out before grouping). */
export type Clustered = number[][];

export const BOOTSTRAP_DRAWS = 2000;

/**
 * Percentile interval of the mean under the two-stage (prompt, then video) bootstrap.
 *
 * @example
 *   clusterBootstrap([[0.1, 0.2], [0.4]]); // { mean: 0.2333…, lo, hi }
 */
export function clusterBootstrap(
  clusters: Clustered,
  opts: { draws?: number; seed?: number; level?: number } = {},
): Interval | null {
  const groups = clusters.map((c) => c.filter(Number.isFinite)).filter((c) => c.length > 0);
  const n = groups.reduce((a, c) => a + c.length, 0);
  if (n === 0) return null;
  const mean = groups.reduce((a, c) => a + c.reduce((s, v) => s + v, 0), 0) / n;
  const draws = opts.draws ?? BOOTSTRAP_DRAWS;
  const rand = seededRandom(opts.seed ?? 0x5eed);
  const stats = new Float64Array(draws);
  for (let d = 0; d < draws; d++) {
    let sum = 0;
    let count = 0;
    for (let p = 0; p < groups.length; p++) {
      const g = groups[Math.floor(rand() * groups.length)] ?? [];
      for (let j = 0; j < g.length; j++) sum += g[Math.floor(rand() * g.length)] ?? 0;
      count += g.length;
    }
    stats[d] = sum / count;
  }
  stats.sort();
  const alpha = (1 - (opts.level ?? 0.95)) / 2;
  return { mean, lo: quantile(stats, alpha), hi: quantile(stats, 1 - alpha) };
}

/** Whether an interval of a difference excludes zero (the difference is resolved). */
export function excludesZero(i: Interval | null): boolean {
  return i !== null && (i.lo > 0 || i.hi < 0);
}

/** Linear-interpolated quantile of sorted values. */
export function quantile(sorted: Float64Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const a = sorted[i] ?? Number.NaN;
  const b = sorted[Math.min(i + 1, sorted.length - 1)] ?? a;
  return a + (pos - i) * (b - a);
}
