/**
 * The toy's independent judge (onnx/fixtures/judge.onnx, src/toy/judge.ts): the in-graph
 * quaternion composition against matrix products, its outputs against its own contract, its
 * training graph's gradient against finite differences, and its fidelity on held-out groups
 * against ground truth for both kinds of frames it judges (sharp renders, the analytic toy
 * decoder's frames resized). The byte-identical rebuild is test/toy/fixtures.test.ts's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURE_FILES, FIXTURES_DIR } from '../../onnx/build-fixtures.js';
import { geometryTargets, targetFeeds, trainingGraph } from '../../onnx/train-geometry.js';
import { JUDGE_TRAIN_DEFAULTS, judgeFidelity } from '../../onnx/train-judge.js';
import { matMul3 } from '../../src/geometry/mat3.js';
import { quatToMatrix } from '../../src/geometry/so3.js';
import { framesFeed } from '../../src/metrics/fidelity.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { buildJudge } from '../../src/toy/judge.js';
import { Net, quaternionProduct } from '../../src/toy/nn.js';
import { VIDEO } from '../../src/toy/spaces.js';
import { heldOutGroups, Rng, sampleVideo } from '../../src/toy/videos.js';
import { directionalDerivatives, waveDirections } from './directional-check.js';
import { assertPointsAgree } from './geometry-checks.js';

const FIXTURE = join(FIXTURES_DIR, FIXTURE_FILES.judge);
const { frames: F } = VIDEO;

test('quaternionProduct: R(p ⊗ q) = R(p)·R(q) for random unit quaternions', async () => {
  const n = 16;
  const g = new GraphBuilder('qp', 18);
  const net = new Net(g, { seed: 0 });
  const p = g.input('p', 'float32', [1, n, 4]);
  const q = g.input('q', 'float32', [1, n, 4]);
  g.output(quaternionProduct(net, p, q, 2), 'pq', 'float32', [1, n, 4]);
  const rng = new Rng(3);
  const unit = () => {
    const v = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    const m = Math.hypot(...v);
    return v.map((x) => x / m);
  };
  const ps = Array.from({ length: n }, unit);
  const qs = Array.from({ length: n }, unit);
  const s = await ModelSession.open(encodeModel(g.toModel('test')), { threads: 1 });
  const out = (await s.run({ p: f32([1, n, 4], ps.flat()), q: f32([1, n, 4], qs.flat()) })).pq!
    .data as Float32Array;
  await s.release();
  for (let k = 0; k < n; k++) {
    const got = quatToMatrix(out.subarray(4 * k, 4 * k + 4));
    const want = matMul3(quatToMatrix(ps[k]!), quatToMatrix(qs[k]!));
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `pair ${k}`);
    assert.ok(Math.abs(Math.hypot(...out.subarray(4 * k, 4 * k + 4)) - 1) < 1e-5);
  }
});

test('judge outputs agree with its own cameras; frame 0 is the world; a video alone = in a batch', async () => {
  const rng = new Rng(78);
  const videos = [sampleVideo(rng, 'heldout'), sampleVideo(rng, 'heldout')];
  const s = await ModelSession.open(FIXTURE, { threads: 1 });
  const out = await s.run(framesFeed(videos));
  const one = await s.run(framesFeed([videos[1]!]));
  await s.release();
  assertPointsAgree(out);
  const pose = out.pose_enc!.data as Float32Array;
  // Composed from steps: frame 0's camera is the identity exactly, not approximately (x + 0 reads −0 as 0).
  for (let b = 0; b < 2; b++) {
    const first = Array.from(pose.subarray(b * F * 9, b * F * 9 + 7), (x) => x + 0);
    assert.deepEqual(first, [0, 0, 0, 0, 0, 0, 1]);
  }
  const a = one.pose_enc!.data as Float32Array;
  for (let k = 0; k < F * 9; k++) assert.ok(Math.abs(a[k]! - pose[F * 9 + k]!) < 1e-5);
  assert.ok(!('scene_flow' in out));
});

test('judge training graph: the autodiff gradient matches a directional finite difference of the loss', async () => {
  const { bytes, params, hasFlow } = trainingGraph(1, JUDGE_TRAIN_DEFAULTS, buildJudge);
  assert.equal(hasFlow, false);
  const s = await ModelSession.open(bytes, { threads: 1 });
  const v = sampleVideo(new Rng(79), 'train');
  const t = geometryTargets(v);
  const base: Record<string, Tensor> = {
    ...framesFeed([v]),
    ...targetFeeds([t], hasFlow),
  };
  // the strided stem, the pair network and the step head: every path to the composed cameras
  const chosen = [
    'encoder.conv0.weight',
    'pose_net.conv0.weight',
    'pose_net.fc3.weight',
    'dense_head.conv2.bias',
  ];
  const { analytic, numeric } = await directionalDerivatives(s, params, base, waveDirections(params, chosen));
  await s.release();
  assert.ok(Math.abs(analytic) > 1e-3, `degenerate direction (${analytic})`);
  assert.ok(
    Math.abs(numeric - analytic) < 2e-2 * Math.abs(analytic),
    `numeric ${numeric} vs analytic ${analytic}`,
  );
});

test('judge on held-out groups: fidelity against ground truth on sharp and on decoded frames', async () => {
  const reports = await judgeFidelity(FIXTURE, heldOutGroups(GROUPS, 4));
  const fmt = (o: object) => JSON.stringify(o, (_, x) => (typeof x === 'number' ? +x.toFixed(4) : x));
  for (const kind of ['sharp', 'decoded'] as const) {
    const o = reports[kind].overall;
    const b = JUDGE_BOUNDS[kind];
    console.log(`judge, ${kind}: ${fmt(o)}`);
    assert.ok(o.depthRelErr < b.depthRelErr, `${kind} depth ${o.depthRelErr}`);
    assert.ok(o.rotErrDeg < b.rotErrDeg, `${kind} rotation ${o.rotErrDeg}°`);
    assert.ok(o.motionSpearman > b.motionSpearman, `${kind} Spearman ${o.motionSpearman}`);
    assert.ok(o.withinGroupSpearman > b.withinGroupSpearman, `${kind} within-group ${o.withinGroupSpearman}`);
    assert.ok(o.smoothAbove >= b.smoothAbove, `${kind} smooth above ${o.smoothAbove}`);
  }
});

/** Held-out groups of 4 the fidelity test measures (onnx/train-judge.ts prints 48). */
const GROUPS = 48;

/**
 * What the committed judge reaches on those groups (onnx/train-judge.ts --eval-only): sharp
 * depth 0.017, 1.92°, Spearman 0.696, within-group 0.867, smooth above 81% (39 of 48); decoded
 * 0.024, 2.08°, 0.712, 0.900, 98% (47 of 48) — with a margin for float noise. The aim of
 * 90% smooth above is met on decoded frames only (onnx/fixtures/README.md).
 */
const JUDGE_BOUNDS = {
  sharp: {
    depthRelErr: 0.02,
    rotErrDeg: 2.1,
    motionSpearman: 0.67,
    withinGroupSpearman: 0.84,
    smoothAbove: 0.79,
  },
  decoded: {
    depthRelErr: 0.028,
    rotErrDeg: 2.3,
    motionSpearman: 0.69,
    withinGroupSpearman: 0.88,
    smoothAbove: 0.95,
  },
};
