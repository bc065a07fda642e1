import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cameraCentre } from '../../src/geometry/cameras.js';
import { depthFromPoints, unprojectDepth } from '../../src/geometry/unproject.js';
import { sliceGeometry } from '../../src/rewards/types.js';
import {
  batchGeometry,
  makeScene,
  makeTrajectory,
  objectPose,
  Rng,
  renderVideo,
  TRAJECTORY_FAMILIES,
} from '../../src/world/index.js';

test('the PRNG is deterministic and roughly uniform / normal', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 20000 }, () => a.next());
  assert.deepEqual(
    xs.slice(0, 5),
    Array.from({ length: 5 }, () => b.next()),
  );
  assert.notEqual(new Rng(1).next(), new Rng(2).next());
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const ns = Array.from({ length: 20000 }, () => a.normal());
  const m = ns.reduce((s, x) => s + x, 0) / ns.length;
  const v = ns.reduce((s, x) => s + (x - m) ** 2, 0) / ns.length;
  assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.05, `${m} ${v}`);
});

test('scenes are deterministic per seed and differ across seeds', () => {
  assert.deepEqual(makeScene(5, { dynamic: true }), makeScene(5, { dynamic: true }));
  assert.notDeepEqual(makeScene(5), makeScene(6));
  const d = makeScene(5, { dynamic: true });
  assert.equal(d.objects.filter((o) => o.motion).length, 1);
  assert.equal(makeScene(5).objects.filter((o) => o.motion).length, 0);
});

test('rendered geometry is self-consistent: depth, points and cameras agree for every family', () => {
  for (const family of TRAJECTORY_FAMILIES) {
    const v = renderVideo(makeScene(1), makeTrajectory(family, { frames: 4 }), { height: 24, width: 32 });
    const hw = 24 * 32;
    assert.equal(v.depth.length, 4 * hw);
    assert.equal(v.points.length, 12 * hw);
    assert.equal(v.extrinsics.length, 48);
    assert.equal(v.intrinsics.length, 36);
    const dp = depthFromPoints(v.points, v.extrinsics, 4, hw);
    const up = unprojectDepth(v.depth, v.extrinsics, v.intrinsics, 4, 24, 32);
    for (let p = 0; p < 4 * hw; p++) {
      assert.ok(v.depth[p]! > 0.05 && v.depth[p]! < 20, `${family}: depth ${v.depth[p]}`);
      assert.ok(Math.abs(dp[p]! - v.depth[p]!) < 1e-4 * v.depth[p]!, `${family}: depth vs points`);
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(up[3 * p + k]! - v.points[3 * p + k]!) < 1e-4);
    }
    // The room is bounded: every point lies inside it.
    for (let p = 0; p < 4 * hw; p++) {
      assert.ok(Math.abs(v.points[3 * p]!) <= 4.001 && Math.abs(v.points[3 * p + 2]!) <= 4.001);
      assert.ok(v.points[3 * p + 1]! >= -0.001 && v.points[3 * p + 1]! <= 3.001);
    }
    // Colour varies (textures, several objects).
    const colours = new Set<number>();
    for (let p = 0; p < 4 * hw; p++)
      colours.add((v.rgb[3 * p]! << 16) | (v.rgb[3 * p + 1]! << 8) | v.rgb[3 * p + 2]!);
    assert.ok(colours.size > 20, `${family}: ${colours.size} colours`);
  }
});

test('static scenes have zero scene flow; a moving object carries its points to the next frame', () => {
  const traj = makeTrajectory('orbit', { frames: 4 });
  const s = renderVideo(makeScene(2), traj, { height: 32 });
  assert.ok(s.sceneFlow.every((x) => x === 0));
  assert.ok(s.dynamicMask.every((x) => x === 0));

  const scene = makeScene(2, { dynamic: true });
  const v = renderVideo(scene, traj, { height: 32 });
  const obj = scene.objects.find((o) => o.motion)!;
  let moving = 0;
  for (let f = 0; f < 4; f++) {
    const now = objectPose(obj, f);
    const next = objectPose(obj, f + 1);
    for (let q = 0; q < 32 * 32; q++) {
      const p = f * 32 * 32 + q;
      const flow = [v.sceneFlow[3 * p]!, v.sceneFlow[3 * p + 1]!, v.sceneFlow[3 * p + 2]!];
      const mag = Math.hypot(...flow);
      assert.equal(v.dynamicMask[p] === 1, mag > 0, 'mask ⇔ nonzero flow');
      if (!v.dynamicMask[p]) continue;
      moving++;
      // Object coordinates of X at f and of X + flow at f+1 coincide (rigid motion).
      const x = [v.points[3 * p]!, v.points[3 * p + 1]!, v.points[3 * p + 2]!];
      const y = [x[0]! + flow[0]!, x[1]! + flow[1]!, x[2]! + flow[2]!];
      for (let k = 0; k < 3; k++) {
        let a = 0;
        let b = 0;
        for (let r = 0; r < 3; r++) {
          a += now.rotation[3 * r + k]! * (x[r]! - now.centre[r]!);
          b += next.rotation[3 * r + k]! * (y[r]! - next.centre[r]!);
        }
        assert.ok(Math.abs(a - b) < 1e-4);
      }
      // Constant-speed circular motion: the object never pauses.
      assert.ok(mag > 0.02, `flow ${mag}`);
    }
  }
  assert.ok(moving > 50, `${moving} moving pixels`);
});

test('trajectories: smooth paths are deterministic, jitter has the asked amplitude', () => {
  for (const family of TRAJECTORY_FAMILIES) {
    const a = makeTrajectory(family, { frames: 16 });
    assert.deepEqual(
      a,
      makeTrajectory(family, { frames: 16, seed: 9 }),
      'no jitter: the seed does not matter',
    );
    const j = makeTrajectory(family, { frames: 400, jitterPos: 0.05, seed: 3 });
    const b = makeTrajectory(family, { frames: 400 });
    let ss = 0;
    for (let f = 0; f < 400; f++) {
      const c1 = cameraCentre(j.extrinsics, f);
      const c0 = cameraCentre(b.extrinsics, f);
      for (let k = 0; k < 3; k++) ss += (c1[k]! - c0[k]!) ** 2;
    }
    const std = Math.sqrt(ss / 1200);
    assert.ok(Math.abs(std - 0.05) < 0.006, `${family}: position jitter std ${std}`);
  }
});

test('rendering is deterministic; batching then slicing gives each video back', () => {
  const scene = makeScene(4, { dynamic: true });
  const a = renderVideo(scene, makeTrajectory('orbit', { frames: 3, jitterRot: 0.01, seed: 2 }), {
    height: 12,
    width: 20,
  });
  const b = renderVideo(scene, makeTrajectory('orbit', { frames: 3, jitterRot: 0.01, seed: 2 }), {
    height: 12,
    width: 20,
  });
  assert.deepEqual(a, b);
  const c = renderVideo(scene, makeTrajectory('pan', { frames: 3 }), { height: 12, width: 20 });
  const batch = batchGeometry([a, c]);
  assert.equal(batch.depth.length, 2 * 3 * 12 * 20);
  const back = sliceGeometry(batch, 1, 3, 12, 20);
  assert.deepEqual(Array.from(back.depth), Array.from(c.depth));
  assert.deepEqual(Array.from(back.points), Array.from(c.points));
  assert.deepEqual(Array.from(back.extrinsics), Array.from(c.extrinsics));
  assert.deepEqual(Array.from(back.intrinsics), Array.from(c.intrinsics));
  assert.deepEqual(Array.from(back.sceneFlow!), Array.from(c.sceneFlow));
  assert.throws(() =>
    batchGeometry([a, renderVideo(scene, makeTrajectory('pan', { frames: 2 }), { height: 12 })]),
  );
});
