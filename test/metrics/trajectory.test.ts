import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IDENTITY3, type Mat3, matMul3, mulVec3, transpose3 } from '../../src/geometry/mat3.js';
import { axisAngle, geodesicAngle } from '../../src/geometry/so3.js';
import {
  absoluteTrajectoryError,
  applySim3,
  relativePoseError,
  umeyamaAlignment,
} from '../../src/metrics/trajectory.js';

/** Camera-from-world [R|t] from a world-from-camera rotation and a centre: R = Rwcᵀ, t = −R·c. */
function extrinsics(cams: { rwc: ArrayLike<number>; c: ArrayLike<number> }[]): Float64Array {
  const out = new Float64Array(12 * cams.length);
  cams.forEach(({ rwc, c }, f) => {
    const r = transpose3(rwc);
    const t = mulVec3(r, c);
    for (let i = 0; i < 3; i++) {
      out.set([r[3 * i]!, r[3 * i + 1]!, r[3 * i + 2]!, -t[i]!], 12 * f + 4 * i);
    }
  });
  return out;
}

/** Deterministic PRNG (mulberry32) and a Box–Muller normal. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function normal(u: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

function orbit(n: number): { rwc: Mat3; c: number[] }[] {
  return Array.from({ length: n }, (_, i) => {
    const a = (i / n) * 2.5;
    return {
      rwc: matMul3(axisAngle([0, 1, 0], a), axisAngle([1, 0, 0], 0.2 * Math.sin(3 * a))),
      c: [3 * Math.sin(a), 0.5 * Math.cos(2 * a), -3 * Math.cos(a)],
    };
  });
}

/** Re-express cameras in a world X' = s·Q·X + u: R' = R·Qᵀ, t' = s·t − R·Qᵀ·u, so c' = s·Q·c + u. */
function transformWorld(ext: Float64Array, s: number, q: Mat3, u: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ext.length);
  for (let f = 0; f < ext.length / 12; f++) {
    const o = 12 * f;
    const r = [
      ext[o]!,
      ext[o + 1]!,
      ext[o + 2]!,
      ext[o + 4]!,
      ext[o + 5]!,
      ext[o + 6]!,
      ext[o + 8]!,
      ext[o + 9]!,
      ext[o + 10]!,
    ];
    const t = [ext[o + 3]!, ext[o + 7]!, ext[o + 11]!];
    const r2 = matMul3(r, transpose3(q));
    const ru = mulVec3(r2, u);
    for (let i = 0; i < 3; i++) {
      out.set([r2[3 * i]!, r2[3 * i + 1]!, r2[3 * i + 2]!, s * t[i]! - ru[i]!], o + 4 * i);
    }
  }
  return out;
}

describe('geodesicAngle (the rotation error)', () => {
  it('recovers the angle of a known rotation and is 0 (not NaN) for equal rotations', () => {
    for (const angle of [0.05, 1, 2.5, Math.PI - 1e-6]) {
      const r = axisAngle([0.3, -1, 2], angle);
      assert.ok(Math.abs(geodesicAngle(IDENTITY3, r) - angle) < 1e-6);
      const base = axisAngle([1, 1, 0], 0.7);
      assert.ok(Math.abs(geodesicAngle(base, matMul3(base, r)) - angle) < 1e-6);
    }
    const r = axisAngle([1, 2, 3], 0.123456);
    assert.equal(geodesicAngle(r, r), 0);
  });
});

describe('umeyamaAlignment', () => {
  it('recovers a known similarity exactly', () => {
    const u = rng(1);
    const src = Float64Array.from({ length: 30 }, () => u() * 4 - 2);
    const sim = { scale: 2.5, rotation: axisAngle([1, -2, 0.5], 1.1), translation: [0.3, -4, 7] };
    const dst = applySim3(sim, src);
    const got = umeyamaAlignment(src, dst);
    assert.ok(Math.abs(got.scale - 2.5) < 1e-9);
    assert.ok(geodesicAngle(got.rotation, sim.rotation) < 1e-9);
    for (const [i, t] of got.translation.entries()) assert.ok(Math.abs(t - sim.translation[i]!) < 1e-9);
  });

  it('property: any similarity applied to a non-degenerate cloud is recovered', () => {
    const unit = fc.double({ min: -1, max: 1, noNaN: true });
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.tuple(unit, unit, unit).filter(([x, y, z]) => Math.hypot(x, y, z) > 0.1),
        fc.double({ min: 0, max: Math.PI - 1e-3, noNaN: true }),
        fc.tuple(unit, unit, unit),
        fc.integer({ min: 1, max: 1000 }),
        (scale, axis, angle, t, seed) => {
          const u = rng(seed);
          const src = Float64Array.from({ length: 3 * 10 }, () => u() * 2 - 1);
          const sim = { scale, rotation: axisAngle(axis, angle), translation: t.map((v) => 50 * v) };
          const got = umeyamaAlignment(src, applySim3(sim, src));
          return (
            Math.abs(got.scale / scale - 1) < 1e-9 &&
            geodesicAngle(got.rotation, sim.rotation) < 1e-7 &&
            got.translation.every((v, i) => Math.abs(v - sim.translation[i]!) < 1e-6 * (1 + scale))
          );
        },
      ),
      { numRuns: 200, seed: 42 },
    );
  });

  it('returns a proper rotation (det +1) for mirrored data', () => {
    const u = rng(2);
    const src = Float64Array.from({ length: 60 }, () => u() - 0.5);
    const dst = src.map((v, i) => (i % 3 === 0 ? -v : v)); // a reflection: no rotation fits exactly
    const { rotation } = umeyamaAlignment(src, dst);
    const d =
      rotation[0]! * (rotation[4]! * rotation[8]! - rotation[5]! * rotation[7]!) -
      rotation[1]! * (rotation[3]! * rotation[8]! - rotation[5]! * rotation[6]!) +
      rotation[2]! * (rotation[3]! * rotation[7]! - rotation[4]! * rotation[6]!);
    assert.ok(Math.abs(d - 1) < 1e-9);
  });
});

describe('absoluteTrajectoryError', () => {
  it('is 0 for a trajectory re-expressed by a known Sim(3) (also through float32)', () => {
    const ref = extrinsics(orbit(40));
    const est = transformWorld(ref, 0.37, axisAngle([2, 1, -1], 2.2), [5, -1, 0.5]);
    const ate = absoluteTrajectoryError(Float32Array.from(est), Float32Array.from(ref));
    assert.ok(ate.rmse < 1e-5, `rmse ${ate.rmse}`);
    assert.ok(ate.rotationMeanDeg < 1e-3, `rot ${ate.rotationMeanDeg}`);
    assert.ok(Math.abs(ate.alignment.scale - 1 / 0.37) < 1e-4);
    const rpe = relativePoseError(est, ref);
    assert.ok(rpe.translationRmse < 1e-9 && rpe.rotationMeanDeg < 1e-5);
  });

  it('hand case: centres (0,0,0),(2,0,0) vs (0,0,0),(1,0,0): 0 with scale, 0.5 without', () => {
    const est = extrinsics([
      { rwc: IDENTITY3, c: [0, 0, 0] },
      { rwc: IDENTITY3, c: [2, 0, 0] },
    ]);
    const ref = extrinsics([
      { rwc: IDENTITY3, c: [0, 0, 0] },
      { rwc: IDENTITY3, c: [1, 0, 0] },
    ]);
    assert.ok(absoluteTrajectoryError(est, ref).rmse < 1e-12);
    assert.ok(Math.abs(absoluteTrajectoryError(est, ref, { withScale: false }).rmse - 0.5) < 1e-12);
  });

  it('centre noise of std σ per axis gives ATE ≈ σ·√3 (Sim(3) absorbs only 7 of 3N dof)', () => {
    const u = rng(7);
    const sigma = 0.05;
    const cams = orbit(1500);
    const ref = extrinsics(cams);
    const noisy = extrinsics(cams.map(({ rwc, c }) => ({ rwc, c: c.map((v) => v + sigma * normal(u)) })));
    const est = transformWorld(noisy, 3, axisAngle([0, 0, 1], -0.8), [1, 2, 3]);
    const ate = absoluteTrajectoryError(est, ref);
    const expected = sigma * Math.sqrt(3 * (1 - 7 / (3 * 1500)));
    assert.ok(Math.abs(ate.rmse / expected - 1) < 0.05, `ate ${ate.rmse} expected ${expected}`);
    // Only the alignment rotation, fitted to noisy centres, tilts the orientations: ~σ/(extent·√N) rad,
    // largest about the axes where the orbit is flat (extent ≈ 0.35).
    assert.ok(ate.rotationMeanDeg < 0.3, `rot ${ate.rotationMeanDeg}`);
  });

  it('rejects mismatched frame counts and bad shapes', () => {
    const a = extrinsics(orbit(4));
    assert.throws(() => absoluteTrajectoryError(a, extrinsics(orbit(5))), /frame counts differ/);
    assert.throws(() => absoluteTrajectoryError(a.subarray(0, 13), a), /\[F, 3, 4\]/);
  });
});

describe('relativePoseError', () => {
  const line = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ rwc: IDENTITY3 as ArrayLike<number>, c: [i, 0, 0] }));

  it('hand case: last camera turned 10° → one pair off by 10°, no translation error', () => {
    const ref = extrinsics(line(3));
    const cams = line(3);
    cams[2]!.rwc = axisAngle([0, 1, 0], (10 * Math.PI) / 180);
    const rpe = relativePoseError(extrinsics(cams), ref);
    assert.equal(rpe.pairs, 2);
    assert.ok(Math.abs(rpe.rotationMeanDeg - 5) < 1e-9);
    assert.ok(Math.abs(rpe.rotationRmseDeg - Math.sqrt(50)) < 1e-9);
    assert.ok(rpe.translationRmse < 1e-12);
  });

  it('hand case: middle camera turned 10° → second step seen from a turned camera: 2·sin 5°', () => {
    const ref = extrinsics(line(3));
    const cams = line(3);
    cams[1]!.rwc = axisAngle([0, 1, 0], (10 * Math.PI) / 180);
    const rpe = relativePoseError(extrinsics(cams), ref);
    const e = 2 * Math.sin((5 * Math.PI) / 180);
    assert.ok(Math.abs(rpe.translationMean - e / 2) < 1e-12);
    assert.ok(Math.abs(rpe.translationRmse - Math.sqrt((e * e) / 2)) < 1e-12);
    assert.ok(Math.abs(rpe.rotationMeanDeg - 10) < 1e-9);
  });

  it('uses the trajectory scale, and δ selects the pair spacing', () => {
    const ref = extrinsics(line(5));
    const est = extrinsics(line(5).map(({ rwc, c }) => ({ rwc, c: c.map((v) => 4 * v) })));
    const rpe = relativePoseError(est, ref, { delta: 2 });
    assert.equal(rpe.pairs, 3);
    assert.ok(Math.abs(rpe.scale - 0.25) < 1e-12);
    assert.ok(rpe.translationRmse < 1e-12);
    // A given unit scale exposes the 4× step: error 3 per consecutive step, 6 at δ = 2.
    assert.ok(Math.abs(relativePoseError(est, ref, { delta: 2, scale: 1 }).translationRmse - 6) < 1e-12);
    assert.throws(() => relativePoseError(est, ref, { delta: 5 }), /delta/);
  });
});
