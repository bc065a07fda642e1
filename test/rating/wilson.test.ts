/**
 * Wilson 95% intervals against values worked by hand from the closed form
 * (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964, and against the
 * published example 81/263 → [0.2553, 0.3662] (Newcombe 1998, method 3).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wilson } from '../../src/rating/wilson.js';

const close = (got: number | null, want: number, tol = 5e-5) =>
  assert.ok(got !== null && Math.abs(got - want) < tol, `got ${got}, want ${want}`);

test('Wilson intervals match hand-computed values', () => {
  // 0/10: centre = (z²/20)/(1 + z²/10) = 0.19207/1.38415 = 0.13877 = half-width → [0, 0.27753].
  const zero = wilson(0, 10);
  assert.equal(zero.rate, 0);
  assert.equal(zero.lo, 0);
  close(zero.hi, 0.277533);
  // 5/10: centre 0.5; half = (1.95996/1.38415)·sqrt(0.025 + 0.0096036) = 1.41600·0.18602 = 0.26341.
  const half = wilson(5, 10);
  close(half.lo, 0.236593);
  close(half.hi, 0.763407);
  // 1/1: centre = (1 + z²/2)/(1 + z²) = 2.92073/4.84146 = 0.60327; half = (z/4.84146)·(z/2) = 0.39673.
  const one = wilson(1, 1);
  close(one.lo, 0.206549);
  assert.equal(one.hi, 1);
  // 8/20: centre = (0.4 + 0.096046)/1.192073 = 0.416121; half = 1.644163·sqrt(0.012 + 0.0024011) = 0.197306.
  const some = wilson(8, 20);
  close(some.lo, 0.218807);
  close(some.hi, 0.613418);
  const pub = wilson(81, 263);
  close(pub.lo, 0.2553, 5e-5);
  close(pub.hi, 0.3662, 5e-5);
});

test('Wilson: no trials is no interval; impossible counts throw', () => {
  assert.deepEqual(wilson(0, 0), { k: 0, n: 0, rate: null, lo: null, hi: null });
  assert.throws(() => wilson(3, 2), RangeError);
  assert.throws(() => wilson(-1, 2), RangeError);
  assert.throws(() => wilson(0.5, 2), RangeError);
});

test('Wilson intervals hold the rate, stay in [0, 1] and are symmetric in k ↔ n − k', () => {
  for (let n = 1; n <= 40; n++)
    for (let k = 0; k <= n; k++) {
      const w = wilson(k, n);
      const m = wilson(n - k, n);
      assert.ok(w.lo! >= 0 && w.hi! <= 1 && w.lo! <= w.rate! && w.rate! <= w.hi!);
      assert.ok(Math.abs(w.lo! - (1 - m.hi!)) < 1e-12 && Math.abs(w.hi! - (1 - m.lo!)) < 1e-12);
    }
});
