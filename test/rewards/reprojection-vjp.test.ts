import assert from 'node:assert/strict';
import { test } from 'node:test';
import { camerasToPoseEncoding } from '../../src/geometry/cameras.js';
import { poseEncodingVjp, poseFrames } from '../../src/geometry/pose-vjp.js';
import { seededRandom } from '../../src/metrics/fundamental.js';
import {
  REPROJECTION_DEFAULTS,
  type ReprojectionOptions,
  reprojection,
} from '../../src/rewards/reprojection.js';
import {
  frozenReprojection,
  type ReprojectionInputs,
  reprojectionVjp,
  traceReprojection,
} from '../../src/rewards/reprojection-vjp.js';
import type { GeometrySample } from '../../src/rewards/types.js';
import { groundTruth } from './helpers.js';

const S = 12;

/** Ground truth of a toy scene with noise on depth, points, cameras and confidence, so errors are not 0. */
function noisy(seed: number, family: 'orbit' | 'dolly' | 'arc' = 'orbit'): GeometrySample {
  const g = groundTruth(family, { seed, size: S, frames: 6 });
  const rnd = seededRandom(seed);
  const jit = (a: ArrayLike<number>, amp: number, rel: boolean) =>
    Float32Array.from(a, (x) => x + amp * (rnd() - 0.5) * (rel ? Math.abs(x) : 1));
  return {
    ...g,
    depth: jit(g.depth, 0.08, true),
    points: jit(g.points, 0.04, false),
    extrinsics: Float32Array.from(jit(g.extrinsics, 0.003, false)),
    confidence: Float32Array.from(g.depth, () => 0.2 + rnd()),
  };
}

const inputsOf = (g: GeometrySample): ReprojectionInputs => ({
  depth: Float64Array.from(g.depth),
  points: Float64Array.from(g.points),
  extrinsics: Float64Array.from(g.extrinsics),
  confidence: g.confidence ? Float64Array.from(g.confidence) : undefined,
});

type Key = 'depth' | 'points' | 'extrinsics' | 'confidence';

/** Central difference of the frozen reward along coordinate k of input `key`. */
function fd(
  trace: ReturnType<typeof traceReprojection>,
  x: ReprojectionInputs,
  key: Key,
  k: number,
  h: number,
): number {
  const a = { ...x, [key]: Float64Array.from(x[key]!) };
  const b = { ...x, [key]: Float64Array.from(x[key]!) };
  const step = h * Math.max(1, Math.abs(x[key]![k]!));
  (a[key] as Float64Array)[k]! += step;
  (b[key] as Float64Array)[k]! -= step;
  return (frozenReprojection(trace, a) - frozenReprojection(trace, b)) / (2 * step);
}

/** Coordinates to check: those with the largest gradients and a few random ones (zeros included). */
function coords(g: Float64Array, rnd: () => number, count = 12): number[] {
  const top = Array.from(g.keys())
    .sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!))
    .slice(0, count);
  const any = Array.from({ length: 6 }, () => Math.floor(rnd() * g.length));
  return [...new Set([...top, ...any])];
}

const CASES: [string, Partial<ReprojectionOptions>][] = [
  ['defaults (blended splats, support test, confidence weights)', {}],
  ['plain z-buffer, no support test', { blendTolerance: 0, holeTolerance: 0 }],
  [
    'absolute error, percentile cap 80, inverse form',
    { error: 'absolute', percentileCap: 80, form: 'inverse' },
  ],
  [
    'depth from points, no confidence, all points in',
    { depthSource: 'points', confidence: 'none', leaveOneOut: false },
  ],
];

for (const [name, opts] of CASES) {
  test(`reprojection VJP = finite differences of the frozen-visibility reward (float64): ${name}`, () => {
    for (const seed of [4, 9]) {
      const geom = noisy(seed);
      const o = { ...REPROJECTION_DEFAULTS, ...opts };
      const trace = traceReprojection(geom, o);
      const x = inputsOf(geom);
      // The frozen reward at the current values is the reward itself (up to float32 rounding).
      const real = reprojection.compute(geom, o);
      assert.ok(Math.abs(frozenReprojection(trace, x) - real) < 1e-5 * Math.max(1, Math.abs(real)), name);
      const g = reprojectionVjp(geom, o, 1.7);
      const rnd = seededRandom(seed + 100);
      let nonzero = 0;
      for (const key of ['depth', 'points', 'extrinsics', 'confidence'] as const) {
        const grad = g[key];
        if (!grad) continue;
        for (const k of coords(grad, rnd)) {
          const want = 1.7 * fd(trace, x, key, k, 1e-6);
          const tol = 1e-6 * Math.max(1, Math.abs(want)) + 1e-8;
          assert.ok(
            Math.abs(grad[k]! - want) <= tol,
            `seed ${seed} ∂r/∂${key}[${k}]: vjp ${grad[k]}, fd ${want}`,
          );
          if (Math.abs(want) > 1e-6) nonzero++;
        }
      }
      assert.ok(nonzero > 20, `gradients are exercised (${nonzero} non-zero coordinates)`);
    }
  });
}

test('reprojection VJP through the pose encoding = finite differences of the frozen reward of the pose', () => {
  const geom = noisy(5, 'arc');
  const pose = Float64Array.from(camerasToPoseEncoding(geom.extrinsics, geom.intrinsics, S, S));
  // Cameras exactly those of the pose (float64), so the trace and the chain read the same ones.
  const frames = poseFrames(pose);
  const g0 = { ...geom, extrinsics: Float32Array.from(frames.extrinsics) };
  const trace = traceReprojection(g0);
  const x = { ...inputsOf(g0), extrinsics: frames.extrinsics };
  const gPose = poseEncodingVjp(frames, reprojectionVjp(g0).extrinsics);
  const f = (p: Float64Array) => frozenReprojection(trace, { ...x, extrinsics: poseFrames(p).extrinsics });
  let nonzero = 0;
  for (let k = 0; k < pose.length; k++) {
    const h = 1e-6;
    const a = Float64Array.from(pose);
    const b = Float64Array.from(pose);
    a[k]! += h;
    b[k]! -= h;
    const want = (f(a) - f(b)) / (2 * h);
    assert.ok(
      Math.abs(gPose[k]! - want) <= 1e-6 * Math.max(1, Math.abs(want)),
      `∂r/∂pose[${k}]: ${gPose[k]} vs ${want}`,
    );
    if (Math.abs(want) > 1e-6) nonzero++;
    if (k % 9 >= 7) assert.equal(gPose[k], 0, 'fovs act only through visibility');
  }
  assert.ok(nonzero >= 12, `${nonzero} non-zero pose coordinates (t_z and q of the worst 3 views)`);
});

test('with a plain z-buffer the frozen gradient is the real reward’s: depth finite differences of reprojection.compute', () => {
  const geom = noisy(6, 'dolly');
  const o = { blendTolerance: 0, holeTolerance: 0 };
  const g = reprojectionVjp(geom, o);
  const rnd = seededRandom(1);
  const top = coords(g.depth, rnd, 10).filter((k) => Math.abs(g.depth[k]!) > 1e-4);
  assert.ok(top.length >= 5);
  for (const k of top) {
    // float32 geometry: a step of 1e-3 relative keeps rounding below the tolerance.
    const h = 1e-3 * geom.depth[k]!;
    const a = { ...geom, depth: geom.depth.slice() };
    const b = { ...geom, depth: geom.depth.slice() };
    a.depth[k]! += h;
    b.depth[k]! -= h;
    const want = (reprojection.compute(a, o) - reprojection.compute(b, o)) / (2 * h);
    assert.ok(
      Math.abs(g.depth[k]! - want) <= 2e-3 * Math.abs(want) + 1e-4,
      `∂r/∂depth[${k}]: ${g.depth[k]} vs ${want}`,
    );
  }
});

test('non-finite cameras: reward NaN, zero gradients (the sample is flagged, not steered)', () => {
  const geom = noisy(4);
  const ext = geom.extrinsics.slice();
  ext[5] = Number.NaN;
  const g = reprojectionVjp({ ...geom, extrinsics: ext });
  assert.ok(Number.isNaN(g.reward));
  assert.ok(g.depth.every((v) => v === 0) && g.points.every((v) => v === 0));
});
