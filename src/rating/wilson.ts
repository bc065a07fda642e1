/**
 * Wilson score intervals for a proportion k/n: unlike the normal approximation they stay inside
 * [0, 1] and are honest at 0/n and n/n, which small rating sessions hit often.
 */

/** z of a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

export interface Proportion {
  k: number;
  n: number;
  /** k/n, or null when n = 0. */
  rate: number | null;
  lo: number | null;
  hi: number | null;
}

/**
 * The Wilson interval of k successes in n trials.
 *
 * @example
 *   wilson(5, 10); // { k: 5, n: 10, rate: 0.5, lo: 0.2366, hi: 0.7634 } (rounded)
 */
export function wilson(k: number, n: number, z = Z95): Proportion {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || n < 0 || k > n)
    throw new RangeError(`wilson: need integers 0 ≤ k ≤ n, got k=${k}, n=${n}`);
  if (n === 0) return { k, n, rate: null, lo: null, hi: null };
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At k = 0 (k = n) the lower (upper) bound is exactly 0 (1); float noise must not move it.
  const lo = k === 0 ? 0 : Math.max(0, centre - half);
  const hi = k === n ? 1 : Math.min(1, centre + half);
  return { k, n, rate: p, lo, hi };
}
