import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import {
  sdeWindow,
  selectTrainSteps,
  shiftedSigmas,
  timestepOf,
  trainStepCount,
} from '../../src/rl/schedule.js';

test('shifted sigmas for N = 4, shift 3 (hand-computed)', () => {
  // linspace(1, 0, 5) = 1, .75, .5, .25, 0; 3σ/(1+2σ): 3/3, 2.25/2.5, 1.5/2, .75/1.5, 0.
  const s = shiftedSigmas(4, 3);
  assert.equal(s.length, 5);
  const expected = [1, 0.9, 0.75, 0.5, 0];
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(s[i]! - expected[i]!) < 1e-15, `σ_${i} = ${s[i]}`);
  assert.equal(s[0], 1); // exact: the σ = 1 branch of stdDev depends on it
  assert.equal(s[4], 0);
});

test('shift 1 is the plain linspace and a larger shift keeps more steps at high noise', () => {
  const plain = shiftedSigmas(8, 1);
  for (let i = 0; i <= 8; i++) assert.ok(Math.abs(plain[i]! - (1 - i / 8)) < 1e-15);
  const s3 = shiftedSigmas(8, 3);
  for (let i = 1; i < 8; i++) {
    assert.ok(s3[i]! > plain[i]!);
    assert.ok(s3[i]! < s3[i - 1]!);
  }
  assert.throws(() => shiftedSigmas(0), InputError);
  assert.throws(() => shiftedSigmas(4, 0), InputError);
});

test('timestep = 1000·σ on the float32 σ, identical for F64 and F32 schedules', () => {
  assert.equal(timestepOf(0.75), 750);
  assert.equal(timestepOf(1), 1000);
  const s64 = shiftedSigmas(10, 3);
  const s32 = Float32Array.from(s64);
  for (let i = 0; i <= 10; i++) {
    assert.equal(timestepOf(s64[i]!), timestepOf(s32[i]!));
    assert.ok(Math.abs(timestepOf(s64[i]!) - 1000 * s64[i]!) < 1e-3);
  }
});

test('sde window: END exclusive, defaults 0 and N−1, the last step never in it', () => {
  assert.deepEqual(sdeWindow(':', 5), [0, 1, 2, 3]);
  assert.deepEqual(sdeWindow('2:4', 10), [2, 3]);
  assert.deepEqual(sdeWindow('3:', 6), [3, 4]);
  assert.deepEqual(sdeWindow(':2', 6), [0, 1]);
  assert.throws(() => sdeWindow('0:10', 10), /last step/);
  assert.throws(() => sdeWindow('4:4', 10), InputError);
  assert.throws(() => sdeWindow('a:b', 10), /START:END/);
  assert.throws(() => sdeWindow(':', 1), InputError);
});

test('timestep fraction picks ⌊T·f⌋ ≥ 1 steps, first ones or a seeded subset', () => {
  assert.equal(trainStepCount(10, 0.3), 3);
  assert.equal(trainStepCount(10, 1), 10);
  assert.equal(trainStepCount(3, 0.1), 1);
  assert.deepEqual(selectTrainSteps(8, 0.5), [0, 1, 2, 3]);
  const a = selectTrainSteps(20, 0.25, 7);
  assert.equal(a.length, 5);
  assert.deepEqual(a, selectTrainSteps(20, 0.25, 7));
  assert.equal(new Set(a).size, 5);
  for (let i = 1; i < a.length; i++) assert.ok(a[i]! > a[i - 1]!);
  assert.ok(a.every((k) => k >= 0 && k < 20));
  // Over many seeds every position gets picked: the subset is not stuck at the front.
  const hit = new Set<number>();
  for (let s = 0; s < 50; s++) for (const k of selectTrainSteps(20, 0.25, s)) hit.add(k);
  assert.equal(hit.size, 20);
  assert.throws(() => trainStepCount(10, 0), InputError);
});
