/**
 * The two-stage bootstrap against its closed form. Resampling P prompts with replacement, then
 * the m videos within each with replacement, the mean's bootstrap variance is
 *   Var* = (1/P)·Var_p(x̄_p) + (1/(P·m))·mean_p Var_j(x_pj)      (population variances),
 * and with P·m large the percentile interval is mean ± 1.96·√Var*.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterBootstrap, excludesZero } from '../../src/metrics/bootstrap.js';
import { gaussian } from '../../src/rl/prng.js';

const popVar = (v: number[]) => {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
};

test('two-stage bootstrap interval matches the closed form on synthetic clustered data', () => {
  const P = 60;
  const m = 8;
  const z = gaussian(7n, P * (m + 1));
  // Prompt effects with sd 0.5, video noise with sd 1: clustering matters.
  const clusters = Array.from({ length: P }, (_, p) =>
    Array.from({ length: m }, (_, j) => 2 + 0.5 * (z[P * m + p] ?? 0) + (z[p * m + j] ?? 0)),
  );
  const means = clusters.map((c) => c.reduce((a, b) => a + b, 0) / m);
  const varStar = popVar(means) / P + clusters.reduce((a, c) => a + popVar(c), 0) / P / (P * m);
  const half = 1.96 * Math.sqrt(varStar);
  const all = clusters.flat();
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const r = clusterBootstrap(clusters, { draws: 4000, seed: 3 });
  assert.ok(r);
  assert.ok(Math.abs(r.mean - mean) < 1e-12);
  assert.ok(Math.abs(r.hi - r.lo - 2 * half) / (2 * half) < 0.08, `width ${r.hi - r.lo} vs ${2 * half}`);
  assert.ok(Math.abs((r.lo + r.hi) / 2 - mean) < 0.1 * half, 'centred on the mean');
  // Treating the videos as independent would understate the width here: the closed form above
  // is about twice the naive σ/√n, and the bootstrap follows the closed form.
  const naive = 1.96 * Math.sqrt(popVar(all) / all.length);
  assert.ok(r.hi - r.lo > 1.5 * 2 * naive);
});

test('same seed, same interval; a difference is resolved only when its interval excludes zero', () => {
  const c = [[1, 2, 3], [2, 3], [5]];
  assert.deepEqual(clusterBootstrap(c, { seed: 1 }), clusterBootstrap(c, { seed: 1 }));
  assert.equal(clusterBootstrap([[Number.NaN]]), null);
  assert.equal(excludesZero({ mean: 1, lo: 0.2, hi: 2 }), true);
  assert.equal(excludesZero({ mean: 0.1, lo: -0.2, hi: 0.4 }), false);
  assert.equal(excludesZero(null), false);
});
