import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { matMul3 } from '../../src/geometry/mat3.js';
import { expSO3 } from '../../src/geometry/so3.js';
import { unprojectDepth } from '../../src/geometry/unproject.js';
import {
  REPROJECTION_DEFAULTS,
  reprojection,
  reprojectionConsistency,
} from '../../src/rewards/reprojection.js';
import type { GeometrySample } from '../../src/rewards/types.js';
import { TRAJECTORY_FAMILIES } from '../../src/world/index.js';
import { groundTruth, transformSample } from './helpers.js';

const S = 32;
const HW = S * S;

/** Frame f's depth scaled by (1 + amount), its points re-derived from it (a consistent but wrong frame). */
function warpDepth(g: GeometrySample, f: number, amount: number): GeometrySample {
  const depth = g.depth.slice();
  for (let p = f * HW; p < (f + 1) * HW; p++) depth[p] = depth[p]! * (1 + amount);
  return { ...g, depth, points: unprojectDepth(depth, g.extrinsics, g.intrinsics, g.frames, S, S) };
}

/** Frame f's camera turned by `angle` about its own y axis, its points re-derived with it. */
function turnCamera(g: GeometrySample, f: number, angle: number): GeometrySample {
  const ext = Float32Array.from(g.extrinsics);
  const idx = [0, 1, 2, 4, 5, 6, 8, 9, 10].map((k) => 12 * f + k);
  const R = Float64Array.from(idx.map((k) => ext[k]!));
  const R2 = matMul3(expSO3([0, angle, 0]), R);
  idx.forEach((k, q) => {
    ext[k] = R2[q]!;
  });
  return { ...g, extrinsics: ext, points: unprojectDepth(g.depth, ext, g.intrinsics, g.frames, S, S) };
}

const gts = new Map(TRAJECTORY_FAMILIES.map((f) => [f, groundTruth(f, { seed: 3 })]));

test('ground truth of a static scene scores near the optimum for every trajectory family', (t) => {
  const report: string[] = [];
  for (const family of TRAJECTORY_FAMILIES) {
    for (const seed of [1, 2, 3]) {
      // Seed 3 takes a shaky path: consistency does not depend on smoothness.
      const g = groundTruth(family, seed === 3 ? { seed, jitterPos: 0.05, jitterRot: 0.03 } : { seed });
      const d = reprojectionConsistency(g);
      report.push(`${family}/${seed}: ${d.reward.toFixed(4)}`);
      // Within 4% mean relative depth error on the worst 3 views at 32×32 (silhouette pixels).
      assert.ok(d.reward > -0.04, `${family} seed ${seed}: ${d.reward}`);
      assert.ok(Math.min(...d.coverage) > 0.8, `${family}: coverage ${Array.from(d.coverage)}`);
      const inv = reprojection.compute(g, { form: 'inverse' });
      assert.ok(Math.abs(inv - 1 / (1 - d.reward)) < 1e-12);
    }
  }
  t.diagnostic(`r_geo (neg_mean, 8×32×32): ${report.join(', ')}`);
});

test('warping one frame’s depth or turning one camera lowers the reward, more for larger errors', () => {
  for (const family of TRAJECTORY_FAMILIES) {
    const g = gts.get(family)!;
    const r0 = reprojection.compute(g);
    let prev = r0;
    for (const amount of [0.03, 0.1, 0.3]) {
      const r = reprojection.compute(warpDepth(g, 4, amount));
      assert.ok(r < prev, `${family} depth ×${1 + amount}: ${r} vs ${prev}`);
      prev = r;
    }
    prev = r0;
    for (const angle of [0.03, 0.1, 0.3]) {
      const r = reprojection.compute(turnCamera(g, 2, angle));
      assert.ok(r < prev, `${family} camera turned ${angle}: ${r} vs ${prev}`);
      prev = r;
    }
  }
});

test('worst-3 reacts to one bad view: its error ranks first and the reward falls more than the mean error', () => {
  const g = gts.get('orbit')!;
  const base = reprojectionConsistency(g);
  const bad = reprojectionConsistency(warpDepth(g, 5, 0.2));
  const worst = bad.viewErrors.indexOf(Math.max(...bad.viewErrors));
  assert.equal(worst, 5);
  const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / a.length;
  const dropWorst = base.reward - bad.reward;
  const dropMean = mean(bad.viewErrors) - mean(base.viewErrors);
  assert.ok(dropWorst > 2 * dropMean, `worst-3 drop ${dropWorst} vs mean-error rise ${dropMean}`);
  // With k = F the reward is the plain mean of the view errors.
  const all = reprojection.compute(warpDepth(g, 5, 0.2), { worstViews: 8 });
  assert.ok(Math.abs(all + mean(bad.viewErrors)) < 1e-12);
});

test('a moving object does not lower the reward of an otherwise consistent dynamic scene', (t) => {
  for (const family of TRAJECTORY_FAMILIES) {
    const stat = groundTruth(family, { seed: 2 });
    const dyn = groundTruth(family, { seed: 2, dynamic: true });
    let moving = 0;
    for (const m of dyn.dynamicMask) moving += m;
    assert.ok(moving / dyn.dynamicMask.length > 0.05, 'the moving object is in view');
    const rs = reprojection.compute(stat);
    const rd = reprojection.compute(dyn);
    // Ignoring the scene flow, the moving object breaks consistency (so the test can fail).
    const rIgnored = reprojection.compute({ ...dyn, sceneFlow: undefined });
    t.diagnostic(
      `${family}: static ${rs.toFixed(4)}, dynamic ${rd.toFixed(4)}, flow ignored ${rIgnored.toFixed(4)}`,
    );
    assert.ok(rd > rs - 0.003, `${family}: dynamic ${rd} vs static ${rs}`);
    assert.ok(rIgnored < rd - 0.01, `${family}: flow ignored ${rIgnored} vs ${rd}`);
  }
});

test('a dynamic-mask output stands in for scene flow with dynamicMask exclude, and is not read by default', (t) => {
  for (const family of TRAJECTORY_FAMILIES) {
    const dyn = groundTruth(family, { seed: 2, dynamic: true });
    // A model's soft mask in [0, 1] (0.9 on moving pixels, 0.1 elsewhere) and no scene flow.
    const soft = Float32Array.from(dyn.dynamicMask, (m) => (m ? 0.9 : 0.1));
    const noFlow = { ...dyn, sceneFlow: undefined, dynamicMask: soft };
    const rFlow = reprojection.compute(dyn);
    const rIgnored = reprojection.compute(noFlow);
    const rMasked = reprojection.compute(noFlow, { dynamicMask: 'exclude' });
    t.diagnostic(
      `${family}: flow ${rFlow.toFixed(4)}, mask ignored ${rIgnored.toFixed(4)}, mask ${rMasked.toFixed(4)}`,
    );
    assert.equal(
      rIgnored,
      reprojection.compute({ ...noFlow, dynamicMask: undefined }),
      'default: mask not read',
    );
    assert.ok(rMasked > rIgnored + 0.01, `${family}: masked ${rMasked} vs ignored ${rIgnored}`);
    assert.ok(rMasked > rFlow - 0.003, `${family}: masked ${rMasked} vs scene flow ${rFlow}`);
    // Above the threshold nothing is dropped: the mask reads as static everywhere.
    const rHigh = reprojection.compute(noFlow, { dynamicMask: 'exclude', dynamicMaskThreshold: 0.95 });
    assert.equal(rHigh, rIgnored);
  }
});

test('invariant to the scene’s scale and to a rigid motion of scene and cameras', () => {
  const g = groundTruth('arc', { seed: 2, dynamic: true });
  const bad = warpDepth(g, 3, 0.1);
  for (const base of [g, bad]) {
    const r0 = reprojection.compute(base);
    const a0 = reprojection.compute(base, { error: 'absolute' });
    fc.assert(
      fc.property(
        fc.double({ min: 0.05, max: 20, noNaN: true }),
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 3, maxLength: 3 }),
        (s, w, T) => {
          const moved = transformSample(base, s, w, T);
          const r = reprojection.compute(moved);
          assert.ok(Math.abs(r - r0) < 2e-3 * Math.abs(r0) + 1e-4, `scale ${s}: ${r} vs ${r0}`);
          const a = reprojection.compute(moved, { error: 'absolute' });
          assert.ok(Math.abs(a - a0) < 2e-3 * Math.abs(a0) + 1e-4, `absolute, scale ${s}: ${a} vs ${a0}`);
        },
      ),
      { numRuns: 8 },
    );
  }
});

test('leave-one-out: with its own points in, a view cannot see its own frame pulled in front of the surface', () => {
  const g = gts.get('pan')!;
  // Frame 4 predicts everything 10% too near, depth and points alike (consistent within itself).
  const near = warpDepth(g, 4, -0.1);
  const loo = reprojectionConsistency(near).viewErrors[4]!;
  const all = reprojectionConsistency(near, { leaveOneOut: false }).viewErrors[4]!;
  const truth = reprojectionConsistency(g).viewErrors[4]!;
  assert.ok(loo > truth + 0.08, `leave-one-out sees it: ${loo} vs ${truth}`);
  assert.ok(all < truth + 0.01, `its own nearer points hide it: ${all} vs ${truth}`);
});

test('confidence: a corrupted region with zero confidence is ignored when weighting or masking', () => {
  const g = gts.get('dolly')!;
  const bad = { ...g, depth: g.depth.slice(), confidence: new Float32Array(8 * HW).fill(1) };
  for (let q = 0; q < HW / 2; q++) {
    bad.depth[2 * HW + q] = bad.depth[2 * HW + q]! * 2;
    bad.confidence[2 * HW + q] = 0;
  }
  const r0 = reprojection.compute(g);
  assert.ok(reprojection.compute(bad, { confidence: 'none' }) < r0 - 0.05);
  for (const confidence of ['weight', 'mask'] as const) {
    const r = reprojection.compute(bad, { confidence });
    assert.ok(Math.abs(r - r0) < 0.01, `${confidence}: ${r} vs ${r0}`);
  }
});

test('percentile cap bounds the influence of outlier pixels', () => {
  const g = gts.get('orbit')!;
  const spiky = { ...g, depth: g.depth.slice() };
  // A few pixels of view 0 predicted 50× too near: relative errors of 49 there.
  for (let q = 0; q < HW; q += 37) spiky.depth[q] = spiky.depth[q]! / 50;
  const plain = reprojection.compute(spiky);
  const capped = reprojection.compute(spiky, { percentileCap: 90 });
  assert.ok(plain < -0.3, `${plain}`);
  assert.ok(capped > -0.03, `${capped}`);
});

test('geometry that leaves a view uncovered scores the uncovered error', () => {
  const g = gts.get('orbit')!;
  const away = { ...g, points: g.points.map((x, i) => (i % 3 === 2 ? x + 1000 : x)) };
  assert.equal(reprojection.compute(away), -REPROJECTION_DEFAULTS.uncoveredError);
});

test('options: unknown keys and bad values are input errors naming the key', () => {
  assert.deepEqual(reprojection.parseOptions(undefined), REPROJECTION_DEFAULTS);
  assert.equal(reprojection.parseOptions({ percentileCap: null }).percentileCap, null);
  assert.throws(() => reprojection.parseOptions({ form: 'log' }), /rewards\.reprojection\.options\.form/);
  assert.throws(() => reprojection.parseOptions({ worstViews: 2.5 }), InputError);
  assert.throws(() => reprojection.parseOptions({ tau: 1 }), InputError);
});

test('non-finite cameras give NaN (a per-sample warning downstream); wrong sizes are input errors', () => {
  const g = gts.get('arc')!;
  const ext = Float32Array.from(g.extrinsics);
  ext[13] = Number.NaN;
  assert.ok(Number.isNaN(reprojection.compute({ ...g, extrinsics: ext })));
  // NaN depth or points only remove those pixels.
  const depth = g.depth.slice();
  depth.fill(Number.NaN, 0, 100);
  assert.ok(Number.isFinite(reprojection.compute({ ...g, depth })));
  assert.throws(() => reprojection.compute({ ...g, confidence: new Float32Array(5) }), /confidence/);
  assert.throws(() => reprojection.compute({ ...g, frames: 7 }), InputError);
});
