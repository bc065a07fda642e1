import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { groupAdvantages } from '../../src/rl/advantages.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('hand-computed: two rewards, two groups, weights ½ ½', () => {
  // Group 0 = samples 0,1,2; group 1 = samples 3,4,5 (interleaved on purpose: 0,1,0,1,0,1 below).
  const groupIndex = [0, 1, 0, 1, 0, 1];
  const motion = [1, 5, 2, 5, 3, 5]; // g0: 1,2,3 (mean 2, pop std √(2/3)); g1: all 5 (std 0)
  const reproj = [0, -1, 0, -3, 0, -2]; // g0: all 0; g1: −1,−3,−2 (mean −2, std √(2/3))
  const r = groupAdvantages({ motion, reprojection: reproj }, groupIndex, { motion: 0.5, reprojection: 0.5 });
  const sd = Math.sqrt(2 / 3) + 1e-4;
  const expected = [0.5 * (-1 / sd), 0.5 * (1 / sd), 0, 0.5 * (-1 / sd), 0.5 * (1 / sd), 0];
  close(r.advantages, expected, 1e-12);
  close(r.weighted, [0.5, 2, 1, 1, 1.5, 1.5], 1e-12);
  assert.equal(r.stats.motion!.zeroStdFraction, 0.5);
  assert.equal(r.stats.reprojection!.zeroStdFraction, 0.5);
  assert.ok(Math.abs(r.stats.motion!.mean - 3.5) < 1e-12);
  assert.ok(
    Math.abs(r.stats.motion!.std - Math.sqrt((2.5 ** 2 + 1.5 ** 2 + 0.5 ** 2 + 3 * 1.5 ** 2) / 6)) < 1e-12,
  );
  assert.ok(Math.abs(r.stats.motion!.groupStd - Math.sqrt(2 / 3) / 2) < 1e-12);
  assert.deepEqual(r.warnings, []);
});

test('weights are normalised, the result is clipped once to ±clip', () => {
  const r = groupAdvantages({ a: [0, 1], b: [1, 0] }, [7, 7], { a: 3, b: 1 });
  const z = 0.5 / (0.5 + 1e-4);
  close(r.advantages, [(-3 * z + z) / 4, (3 * z - z) / 4], 1e-12);
  // A group of 50 with one outlier: its z = √49 = 7. Averaged with a flat reward (z = 0) it is 3.5 —
  // clipping each reward first would give 2.5. Clipping happens once, after averaging.
  const x = new Array(50).fill(0);
  x[0] = 1;
  const g = new Array(50).fill(0);
  const flat = new Array(50).fill(1);
  const once = groupAdvantages({ a: x, b: flat }, g, { a: 1, b: 1 });
  const z0 = 1 - 1 / 50;
  const std = Math.sqrt(49) / 50;
  assert.ok(Math.abs(once.advantages[0]! - z0 / (std + 1e-4) / 2) < 1e-9);
  assert.ok(once.advantages[0]! > 3.4);
  assert.equal(groupAdvantages({ a: x }, g, { a: 1 }).advantages[0], 5);
  assert.equal(groupAdvantages({ a: x }, g, { a: 1 }, { clip: 2 }).advantages[0], 2);
});

test('a non-finite reward takes the group minimum and is reported', () => {
  const r = groupAdvantages({ m: [0.9, Number.NaN, 0.7, 0.8] }, [0, 0, 1, 1], { m: 1 });
  // Group 0 becomes [0.9, 0.9]: both z = 0.
  close(r.advantages, [0, 0, -0.05 / (0.05 + 1e-4), 0.05 / (0.05 + 1e-4)], 1e-9);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /sample 1/);
  // A group with no finite value: zeros, one warning per sample.
  const z = groupAdvantages({ m: [Number.NaN, Number.POSITIVE_INFINITY, 1, 2] }, [0, 0, 1, 1], { m: 1 });
  close(z.advantages.subarray(0, 2), [0, 0], 0);
  assert.equal(z.warnings.length, 2);
});

test('input errors: a group of one, mismatched lengths, a weight without values', () => {
  assert.throws(() => groupAdvantages({ m: [1, 2, 3] }, [0, 0, 1], { m: 1 }), InputError);
  assert.throws(() => groupAdvantages({ m: [1, 2] }, [0, 0, 1], { m: 1 }), InputError);
  assert.throws(() => groupAdvantages({ m: [1, 2] }, [0, 0], { m: 1, x: 1 }), InputError);
  assert.throws(() => groupAdvantages({ m: [1, 2] }, [0, 0], { m: 0 }), InputError);
});

test('within each group the advantages of one reward have mean 0 and are invariant to affine reward changes', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 6, maxLength: 6 }),
      fc.double({ min: 0.5, max: 100, noNaN: true }),
      fc.double({ min: -100, max: 100, noNaN: true }),
      (r, s, b) => {
        const g = [0, 0, 0, 1, 1, 1];
        const a = groupAdvantages({ m: r }, g, { m: 1 }, { clip: 1e9, stdEps: 0 });
        for (const grp of [0, 1]) {
          const idx = g.flatMap((v, i) => (v === grp ? [i] : []));
          const spread = Math.max(...idx.map((i) => r[i]!)) - Math.min(...idx.map((i) => r[i]!));
          fc.pre(spread > 1e-3);
        }
        assert.ok(Math.abs(a.advantages[0]! + a.advantages[1]! + a.advantages[2]!) < 1e-9);
        const a2 = groupAdvantages({ m: r.map((x) => s * x + b) }, g, { m: 1 }, { clip: 1e9, stdEps: 0 });
        close(a2.advantages, a.advantages, 1e-6);
      },
    ),
  );
});
