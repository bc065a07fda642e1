/**
 * The ridge probe against hand-computed cases: an exact line, the shrinkage of one standardised
 * feature, R² of a small example, per-frame channel statistics of both layouts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fitRidge,
  frameChannelStats,
  linearProbeR2,
  predictRidge,
  rSquared,
} from '../../src/metrics/linear-probe.js';

test('an exact line is recovered without penalty', () => {
  const m = fitRidge([[0], [1], [2]], [[1], [3], [5]], 0);
  const [p] = predictRidge(m, [[3]]);
  assert.ok(Math.abs(p![0]! - 7) < 1e-9, `predicted ${p}`);
});

test('the penalty shrinks the standardised slope by n/(n + λn)', () => {
  // x = ±1 is already standardised (mean 0, std 1); XᵀX = 2, XᵀY = 4, λn = 2: slope 4/4 = 1.
  const m = fitRidge([[-1], [1]], [[-2], [2]], 1);
  assert.ok(Math.abs(m.weights.get(0, 0) - 1) < 1e-12);
  assert.ok(Math.abs(predictRidge(m, [[1]])[0]![0]! - 1) < 1e-12);
});

test('R² is 1 − SS_res/SS_tot per varying column, averaged', () => {
  // column 0: res 1, tot 2 → 0.5; column 1 constant → skipped.
  assert.equal(
    rSquared(
      [
        [1, 5],
        [2, 5],
        [3, 5],
      ],
      [
        [1, 0],
        [2, 0],
        [4, 0],
      ],
    ),
    0.5,
  );
  // two columns 0.5 and 1 → 0.75
  assert.equal(
    rSquared(
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
      [
        [1, 1],
        [2, 2],
        [4, 3],
      ],
    ),
    0.75,
  );
});

test('a probe of features unrelated to the target scores near zero, of related ones near one', () => {
  let s = 1;
  const rnd = () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
  const x = Array.from({ length: 400 }, () => [rnd(), rnd(), rnd()]);
  const noise = x.map(() => [rnd()]);
  const linear = x.map((r) => [2 * r[0]! - r[2]! + 0.01 * rnd()]);
  assert.ok(linearProbeR2(x.slice(0, 200), noise.slice(0, 200), x.slice(200), noise.slice(200)) < 0.05);
  assert.ok(linearProbeR2(x.slice(0, 200), linear.slice(0, 200), x.slice(200), linear.slice(200)) > 0.99);
});

test('per-frame channel statistics read both layouts', () => {
  // 2 channels × 2 frames × plane 2. CF: c0f0 [0,2], c0f1 [1,1], c1f0 [4,4], c1f1 [0,6].
  const cf = [0, 2, 1, 1, 4, 4, 0, 6];
  const rows = frameChannelStats(cf, 2, 2, 2, 'CF');
  assert.deepEqual(Array.from(rows[0]!), [1, 4, 1, 0]);
  assert.deepEqual(Array.from(rows[1]!), [1, 3, 0, 3]);
  // the same values in FC order: f0c0, f0c1, f1c0, f1c1
  const fc = [0, 2, 4, 4, 1, 1, 0, 6];
  assert.deepEqual(
    frameChannelStats(fc, 2, 2, 2, 'FC').map((r) => Array.from(r)),
    rows.map((r) => Array.from(r)),
  );
});
