/**
 * The fidelity measurement on held-out toy groups, checked where the answer is known: exact
 * geometry gives zero errors and perfect rankings; noise of a known size gives the errors that
 * size predicts; and the motion reward's noise floor (rotation noise on exact poses) is measured.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { cameraCentre } from '../../src/geometry/cameras.js';
import {
  exactPredictor,
  type GeometryPredictor,
  measureFidelity,
  noisyPredictor,
  perturbRotations,
  ranks,
  spearman,
} from '../../src/metrics/fidelity.js';
import { sceneScale } from '../../src/rewards/scale.js';
import { heldOutGroups, Rng, type ToyVideo } from '../../src/toy/videos.js';

let groups: ToyVideo[][] = [];
const DEG = Math.PI / 180;

before(() => {
  groups = heldOutGroups(48, 4);
});

test('spearman: hand-computed cases, ties averaged', () => {
  assert.deepEqual(ranks([3, 1, 3, 2]), [3.5, 1, 3.5, 2]);
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // ranks (1,2,3) vs (1,3,2): 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/24 = 0.5
  assert.ok(Math.abs(spearman([1, 2, 3], [10, 20, 15]) - 0.5) < 1e-12);
  assert.ok(Number.isNaN(spearman([1, 2, 3], [5, 5, 5])));
});

test('exact geometry: zero errors, r_motion ranks groups by jitter (≈ 0.975), smooth member always first', async () => {
  const { overall, perFamily } = await measureFidelity(exactPredictor, groups);
  assert.equal(overall.videos, 192);
  assert.equal(overall.depthRelErr, 0);
  // float32 extrinsics: relative poses agree to ~1e-6°
  assert.ok(overall.rotErrDeg < 1e-4 && overall.transDirErrDeg < 1e-4);
  assert.equal(overall.motionSpearman, 1);
  assert.equal(overall.smoothAbove, 1);
  // The exact-geometry figure is 0.975; these 48 groups of 4 give 0.979. Not 1: with
  // small jitter steps a member is sometimes smoother than a less jittered one.
  assert.ok(
    overall.withinGroupSpearman > 0.96 && overall.withinGroupSpearman < 1,
    `${overall.withinGroupSpearman}`,
  );
  assert.deepEqual(Object.keys(perFamily).sort(), ['arc', 'dolly', 'orbit', 'pan']);
  for (const f of Object.values(perFamily)) assert.equal(f.groups, 12);
});

test('rotation noise: error matches its size, rankings drop; the noise floor of r_motion and eps = 0.01', async () => {
  const sigma = 0.1 * DEG;
  const noisy = await measureFidelity(noisyPredictor(exactPredictor, sigma, 0), groups);
  // Two independent per-axis N(0, σ²) turns compose to N(0, 2σ²): mean angle 2√2·σ·√(2/π) = 4σ/√π.
  const expected = (4 * 0.1) / Math.sqrt(Math.PI);
  assert.ok(Math.abs(noisy.overall.rotErrDeg - expected) < 0.05 * expected, `${noisy.overall.rotErrDeg}`);
  assert.ok(noisy.overall.transDirErrDeg > 0);
  assert.equal(noisy.overall.depthRelErr, 0);
  // The noise floor: 0.1° of rotation noise on exact poses drops the Spearman to ≈ 0.90
  // (smooth pans never translate and smooth dollies never turn: noise/noise for that axis).
  const floor = noisy.overall.motionSpearman;
  assert.ok(floor > 0.85 && floor < 0.93, `noise floor ${floor}`);
  // eps = 0.01 on both axes lifts it.
  const eps = await measureFidelity(noisyPredictor(exactPredictor, sigma, 0), groups, {
    motion: { eps: 0.01, epsRot: 0.01 },
  });
  assert.ok(eps.overall.motionSpearman > floor + 0.03, `eps 0.01: ${eps.overall.motionSpearman} vs ${floor}`);
  console.log(
    `noise floor: 0.1° rotation noise → Spearman ${floor.toFixed(3)} (eps 1e-4), ${eps.overall.motionSpearman.toFixed(3)} (eps 0.01)`,
  );
  // Large noise destroys the ranking within groups.
  const wild = await measureFidelity(noisyPredictor(exactPredictor, 3 * DEG, 1), groups);
  assert.ok(
    wild.overall.withinGroupSpearman < noisy.overall.withinGroupSpearman - 0.1,
    `${wild.overall.withinGroupSpearman}`,
  );
  assert.ok(wild.overall.smoothAbove < 0.9, `${wild.overall.smoothAbove}`);
});

test('pose noise estimate: recovers the std of known rotation and camera-centre noise', async () => {
  const some = groups.slice(0, 24);
  const sigmaR = 0.1 * DEG;
  const rot = await measureFidelity(noisyPredictor(exactPredictor, sigmaR, 2), some);
  assert.ok(
    Math.abs(rot.overall.poseNoise.rotation / sigmaR - 1) < 0.05,
    `${rot.overall.poseNoise.rotation}`,
  );
  // Centres kept: only the first camera's turn (its axes carry the steps) reads as translation
  // noise, ≈ σ_rot × a step (0.1° × ~0.03 scene units): ~1% of the σ_t below.
  assert.ok(rot.overall.poseNoise.translation < 1e-4, `${rot.overall.poseNoise.translation}`);
  // N(0, (σ_t·scale)²) per component on each camera centre, rotations kept
  const sigmaT = 0.004;
  const rng = new Rng(4);
  const shifted: GeometryPredictor = async (videos) =>
    (await exactPredictor(videos)).map((g) => {
      const scale = sceneScale(g.depth);
      const ext = Float64Array.from(g.extrinsics);
      for (let f = 0; f < g.frames; f++) {
        const c = cameraCentre(g.extrinsics, f).map((x) => x + sigmaT * scale * rng.normal());
        for (let row = 0; row < 3; row++) {
          let t = 0;
          for (let k = 0; k < 3; k++) t -= ext[12 * f + 4 * row + k]! * c[k]!;
          ext[12 * f + 4 * row + 3] = t;
        }
      }
      return { ...g, extrinsics: ext };
    });
  const tr = await measureFidelity(shifted, some);
  assert.ok(
    Math.abs(tr.overall.poseNoise.translation / sigmaT - 1) < 0.05,
    `${tr.overall.poseNoise.translation}`,
  );
  assert.ok(tr.overall.poseNoise.rotation < 1e-5, `${tr.overall.poseNoise.rotation}`);
});

test('depth noise: the median relative error is 0.6745·σ for multiplicative N(0, σ²) noise', async () => {
  const rng = new Rng(3);
  const sigma = 0.05;
  const noisyDepth: GeometryPredictor = async (videos) =>
    (await exactPredictor(videos)).map((g) => ({
      ...g,
      depth: Float32Array.from(g.depth, (d) => d * (1 + sigma * rng.normal())),
    }));
  const { overall } = await measureFidelity(noisyDepth, groups.slice(0, 12));
  assert.ok(Math.abs(overall.depthRelErr - 0.6745 * sigma) < 0.05 * 0.6745 * sigma, `${overall.depthRelErr}`);
  assert.ok(overall.rotErrDeg < 1e-4);
  // depth enters r_motion only through eps's scene scale
  assert.ok(overall.motionSpearman > 0.999);
});

test('perturbRotations keeps camera centres and turns each camera by the drawn angle', () => {
  const ext = groups[0]![0]!.geometry.extrinsics;
  const out = perturbRotations(ext, 0.01, new Rng(0));
  for (let f = 0; f < 8; f++) {
    const a = cameraCentre(ext, f);
    const b = cameraCentre(out, f);
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(a[k]! - b[k]!) < 1e-5);
  }
  assert.ok(Math.abs(out[0]! - ext[0]!) > 1e-6);
});
