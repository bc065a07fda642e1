/**
 * Ground truth → toy encoder → toy LGM fixture round trip on held-out scenes (seeds the
 * pretraining never uses), against the renderer's exact geometry.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { poseEncodingToCameras } from '../../src/geometry/cameras.js';
import { geodesicAngle } from '../../src/geometry/so3.js';
import { encodeModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32 } from '../../src/shards/tensor.js';
import { type EncodedVideo, encodeScene } from '../../src/toy/encoder.js';
import { LATENT_SIZE, TOY } from '../../src/toy/latent.js';
import { buildLgm, connectorWeights } from '../../src/toy/lgm.js';
import { makeScene, makeTrajectory, TRAJECTORY_FAMILIES } from '../../src/world/index.js';

interface Case {
  name: string;
  enc: EncodedVideo;
}
const cases: Case[] = [];
let out: Record<string, Float32Array> = {};
const F = TOY.frames;
const hw = TOY.geoHeight * TOY.geoWidth;

before(async () => {
  let seed = 5000;
  for (const family of TRAJECTORY_FAMILIES) {
    for (const jitter of [false, true]) {
      for (const dynamic of [false, true]) {
        seed++;
        const traj = makeTrajectory(family, jitter ? { jitterPos: 0.05, jitterRot: 0.02, seed } : {});
        cases.push({
          name: `${family}/${jitter ? 'jittery' : 'smooth'}/${dynamic ? 'dynamic' : 'static'}`,
          enc: encodeScene(makeScene(seed, { dynamic }), traj),
        });
      }
    }
  }
  const lat = new Float32Array(cases.length * LATENT_SIZE);
  cases.forEach((c, b) => {
    lat.set(c.enc.latents, b * LATENT_SIZE);
  });
  const s = await ModelSession.open(encodeModel(buildLgm()), { threads: 1 });
  const res = await s.run({ latents: f32([cases.length, TOY.channels, F, TOY.height, TOY.width], lat) });
  out = Object.fromEntries(Object.entries(res).map(([k, t]) => [k, t.data as Float32Array]));
  await s.release();
});

function angleDeg(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const dot = a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
  const na = Math.hypot(a[0]!, a[1]!, a[2]!);
  const nb = Math.hypot(b[0]!, b[1]!, b[2]!);
  return (Math.acos(Math.min(1, Math.max(-1, dot / (na * nb)))) * 180) / Math.PI;
}

test('cameras: rotation error < 1°, translation direction error < 2°, intrinsics exact', () => {
  let worstRot = 0;
  let worstDir = 0;
  cases.forEach((c, b) => {
    const pose = out.pose_enc!.subarray(b * F * 9, (b + 1) * F * 9);
    const { extrinsics, intrinsics } = poseEncodingToCameras(pose, TOY.geoHeight, TOY.geoWidth);
    const gt = c.enc.geometry.extrinsics;
    const R = (e: ArrayLike<number>, f: number) => [0, 1, 2, 4, 5, 6, 8, 9, 10].map((k) => e[12 * f + k]!);
    const t = (e: ArrayLike<number>, f: number) => [3, 7, 11].map((k) => e[12 * f + k]!);
    for (let f = 0; f < F; f++) {
      worstRot = Math.max(worstRot, (geodesicAngle(R(extrinsics, f), R(gt, f)) * 180) / Math.PI);
      worstDir = Math.max(worstDir, angleDeg(t(extrinsics, f), t(gt, f)));
      // Camera-centre displacement from frame 0: the scale-free direction the motion reward sees.
      if (f > 0) {
        const centre = (e: ArrayLike<number>, i: number) => {
          const r = R(e, i);
          const tt = t(e, i);
          return [0, 1, 2].map((k) => -(r[k]! * tt[0]! + r[3 + k]! * tt[1]! + r[6 + k]! * tt[2]!));
        };
        const d = (e: ArrayLike<number>) => centre(e, f).map((v, k) => v - centre(e, 0)[k]!);
        // A pan keeps its centre fixed: no direction to compare.
        if (Math.hypot(...d(gt)) > 0.05) worstDir = Math.max(worstDir, angleDeg(d(extrinsics), d(gt)));
      }
    }
    const K = c.enc.geometry.intrinsics;
    for (let i = 0; i < K.length; i++)
      assert.ok(Math.abs(intrinsics[i]! - K[i]!) < 1e-4, `${c.name}: K[${i}]`);
  });
  assert.ok(worstRot < 1, `rotation error ${worstRot}°`);
  assert.ok(worstDir < 2, `translation direction error ${worstDir}°`);
});

test('depth relative error < 2% and world points match the renderer', () => {
  let worstDepth = 0;
  let worstPoint = 0;
  cases.forEach((c, b) => {
    const n = F * hw;
    for (let p = 0; p < n; p++) {
      const gt = c.enc.geometry.depth[p]!;
      worstDepth = Math.max(worstDepth, Math.abs(out.depth![b * n + p]! / gt - 1));
      for (let k = 0; k < 3; k++) {
        const e = Math.abs(out.world_points![3 * (b * n + p) + k]! - c.enc.geometry.points[3 * p + k]!);
        worstPoint = Math.max(worstPoint, e / gt);
      }
    }
  });
  assert.ok(worstDepth < 0.02, `depth relative error ${worstDepth}`);
  assert.ok(worstPoint < 0.02, `world point error relative to depth ${worstPoint}`);
});

test('scene flow matches the renderer; static scenes have none', () => {
  cases.forEach((c, b) => {
    const n = 3 * F * hw;
    let err = 0;
    let mag = 0;
    for (let i = 0; i < n; i++) {
      err = Math.max(err, Math.abs(out.scene_flow![b * n + i]! - c.enc.geometry.sceneFlow[i]!));
      mag = Math.max(mag, Math.abs(out.scene_flow![b * n + i]!));
    }
    assert.ok(err < 1e-4, `${c.name}: flow error ${err}`);
    if (c.name.endsWith('static')) assert.equal(mag, 0, c.name);
  });
  const dynamicFlow = cases.some(
    (c, b) =>
      c.name.endsWith('dynamic') &&
      out.scene_flow!.subarray(b * 3 * F * hw, (b + 1) * 3 * F * hw).some((v) => v !== 0),
  );
  assert.ok(dynamicFlow, 'no moving pixel in any dynamic scene');
});

test('confidence is lower at depth edges than on smooth surfaces', () => {
  const { geoHeight: h, geoWidth: w } = TOY;
  let edgeSum = 0;
  let edgeN = 0;
  let flatSum = 0;
  let flatN = 0;
  cases.forEach((c, b) => {
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const d = (ii: number, jj: number) =>
            Math.log(
              c.enc.geometry.depth[
                f * hw + Math.min(h - 1, Math.max(0, ii)) * w + Math.min(w - 1, Math.max(0, jj))
              ]!,
            );
          const jump = Math.max(
            ...[
              [-1, 0],
              [1, 0],
              [0, -1],
              [0, 1],
            ].map(([di, dj]) => Math.abs(d(i + di!, j + dj!) - d(i, j))),
          );
          const conf = out.confidence![b * F * hw + f * hw + i * w + j]!;
          assert.ok(conf > 0 && conf <= 1);
          if (jump > 0.3) {
            edgeSum += conf;
            edgeN++;
          } else if (jump < 0.05) {
            flatSum += conf;
            flatN++;
          }
        }
      }
    }
  });
  assert.ok(edgeN > 20 && flatN > 20, `${edgeN} edge and ${flatN} flat pixels`);
  assert.ok(edgeSum / edgeN < flatSum / flatN - 0.2, `edge ${edgeSum / edgeN} vs flat ${flatSum / flatN}`);
});

test('connector: one 5×5×5 Conv3d whose depth taps sum to one and Laplacian taps to zero', () => {
  const model = buildLgm();
  const convs = model.graph!.node!.filter((n) => n.opType === 'Conv');
  assert.equal(convs.length, 1);
  const attr = (name: string) => convs[0]!.attribute!.find((a) => a.name === name)!.ints!.map(Number);
  assert.deepEqual(attr('kernel_shape'), [5, 5, 5]);
  assert.deepEqual(attr('strides'), [1, 2, 2]);
  assert.deepEqual(attr('pads'), [2, 2, 2, 2, 2, 2]);
  const w = connectorWeights();
  const per = TOY.channels * 125;
  const sum = (k: number) => w.subarray(k * per, (k + 1) * per).reduce((a, v) => a + v, 0);
  assert.ok(Math.abs(sum(0) - 1) < 1e-6);
  assert.ok(Math.abs(sum(1)) < 1e-6);
});
