import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  batchNoise,
  gaussian,
  groupSeed,
  hashString,
  initialNoise,
  sampleSeed,
  splitSeed,
  stepNoise,
  uniform,
  Xoshiro128,
} from '../../src/rl/prng.js';

test('xoshiro128** matches the reference C code from state {1, 2, 3, 4}', () => {
  // Outputs of the published xoshiro128** (Blackman & Vigna) for s = {1, 2, 3, 4}.
  const g = Xoshiro128.fromState(1, 2, 3, 4);
  const got = Array.from({ length: 6 }, () => g.nextUint32());
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
});

test('gaussian is deterministic, prefix-stable and seed-dependent', () => {
  const a = gaussian(123n, 1001);
  const b = gaussian(123, 1001);
  assert.deepEqual(a, b);
  assert.deepEqual(gaussian(123n, 7), a.subarray(0, 7));
  const c = gaussian(124n, 1001);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === c[i]) same++;
  assert.ok(same < 5, `${same} equal draws for different seeds`);
});

test('gaussian has standard normal moments', () => {
  const n = 200_000;
  const z = gaussian(splitSeed(9, 4), n);
  let m1 = 0;
  let m2 = 0;
  let m4 = 0;
  let tail = 0;
  for (const x of z) {
    m1 += x;
    m2 += x * x;
    m4 += x ** 4;
    if (Math.abs(x) > 1.959964) tail++;
  }
  m1 /= n;
  m2 /= n;
  m4 /= n;
  // 5-sigma bands: se(mean) = 1/√n, se(var) = √(2/n), se(m4) = √(96/n), se(tail) = √(.05·.95/n).
  assert.ok(Math.abs(m1) < 5 / Math.sqrt(n), `mean ${m1}`);
  assert.ok(Math.abs(m2 - 1) < 5 * Math.sqrt(2 / n), `var ${m2}`);
  assert.ok(Math.abs(m4 - 3) < 5 * Math.sqrt(96 / n), `4th moment ${m4}`);
  assert.ok(Math.abs(tail / n - 0.05) < 5 * Math.sqrt(0.0475 / n), `two-sided 5% tail ${tail / n}`);
});

test('uniform stays in [lo, hi) and fills it', () => {
  const u = uniform(5n, 50_000, -0.25, 0.25);
  let lo = 1;
  let hi = -1;
  let sum = 0;
  for (const x of u) {
    assert.ok(x >= -0.25 && x < 0.25);
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
    sum += x;
  }
  assert.ok(lo < -0.249 && hi > 0.249);
  assert.ok(Math.abs(sum / u.length) < (5 * (0.5 / Math.sqrt(12))) / Math.sqrt(u.length));
});

test('streams of one seed are unrelated; sample seeds fit I64', () => {
  const s = 77n;
  const streams = new Set([
    splitSeed(s, 0),
    splitSeed(s, 1),
    splitSeed(s, 2),
    splitSeed(s, -1n),
    splitSeed(78n, 0),
  ]);
  assert.equal(streams.size, 5);
  const e0 = stepNoise(s, 0, 64);
  const e1 = stepNoise(s, 1, 64);
  const x0 = initialNoise(s, 64);
  let corr = 0;
  for (let i = 0; i < 64; i++) corr += e0[i]! * e1[i]!;
  assert.notDeepEqual(e0, e1);
  assert.notDeepEqual(e0, x0);
  assert.ok(Math.abs(corr / 64) < 0.6);
  for (let i = 0; i < 100; i++) {
    const ss = sampleSeed(3, i);
    assert.ok(ss >= 0n && ss < 1n << 63n);
  }
  assert.notEqual(hashString('a.weight'), hashString('b.weight'));
});

test('group seeds: deterministic, one per group and base seed, apart from every sample seed', () => {
  const samples = new Set(Array.from({ length: 4096 }, (_, i) => sampleSeed(0, i)));
  const groups = Array.from({ length: 256 }, (_, p) => groupSeed(0, p));
  assert.equal(new Set(groups).size, 256);
  assert.ok(groups.every((g) => !samples.has(g) && g >= 0n && g < 1n << 63n));
  assert.equal(groupSeed(0, 5), groups[5]);
  assert.notEqual(groupSeed(1, 5), groups[5]);
});

test("a sample's noise does not depend on its batch position or the batch size", () => {
  const m = 37;
  const seeds = [sampleSeed(1, 0), sampleSeed(1, 1), sampleSeed(1, 2), sampleSeed(1, 3)];
  const four = batchNoise(seeds, 5, m);
  for (let b = 0; b < 4; b++) {
    assert.deepEqual(batchNoise([seeds[b]!], 5, m), four.subarray(b * m, (b + 1) * m));
  }
  const reversed = batchNoise([...seeds].reverse(), 5, m);
  assert.deepEqual(reversed.subarray(3 * m, 4 * m), four.subarray(0, m));
  assert.deepEqual(batchNoise([seeds[2]!], null, m), initialNoise(seeds[2]!, m));
});
