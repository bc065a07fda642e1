import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matMul3, matTMul3, mulVec3 } from '../../src/geometry/mat3.js';
import { axisAngle } from '../../src/geometry/so3.js';
import {
  eightPoint,
  ransacFundamental,
  sampsonDistance,
  sampsonDistances,
  seededRandom,
} from '../../src/metrics/fundamental.js';

const K = [300, 0, 160, 0, 300, 120, 0, 0, 1];
const Kinv = [1 / 300, 0, -160 / 300, 0, 1 / 300, -120 / 300, 0, 0, 1];

function normal(u: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** A known two-view geometry: camera 1 = K[I|0], camera 2 = K[R|t], random points in front of both. */
function twoView(n: number, seed: number) {
  const u = seededRandom(seed);
  const R = axisAngle([0.2, 1, 0.1], 0.15);
  const t = [0.6, 0.1, 0.05];
  const p1 = new Float64Array(2 * n);
  const p2 = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const X = [u() * 4 - 2, u() * 3 - 1.5, 4 + u() * 4];
    const a = mulVec3(K, X);
    const Y = mulVec3(R, X).map((v, k) => v + t[k]!);
    const b = mulVec3(K, Y);
    p1.set([a[0]! / a[2]!, a[1]! / a[2]!], 2 * i);
    p2.set([b[0]! / b[2]!, b[1]! / b[2]!], 2 * i);
  }
  const tx = [0, -t[2]!, t[1]!, t[2]!, 0, -t[0]!, -t[1]!, t[0]!, 0];
  const F = matMul3(matTMul3(Kinv, matMul3(tx, R)), Kinv);
  const norm = Math.hypot(...F);
  return { p1, p2, F: F.map((v) => v / norm) };
}

function sameUpToSign(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const plus = Math.hypot(...Array.from(a, (v, i) => v - b[i]!));
  const minus = Math.hypot(...Array.from(a, (v, i) => v + b[i]!));
  return Math.min(plus, minus);
}

function rms(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]! ** 2;
  return Math.sqrt(s / xs.length);
}

describe('sampsonDistance', () => {
  it('hand case: F = [e₁]× (pure x-translation): distance = |Δv|/√2', () => {
    // x₂ᵀ[e₁]×x₁ = v₁ − v₂ (for w = 1); gradients (Fx₁)₁,₂ = (0, −1), (Fᵀx₂)₁,₂ = (0, 1).
    const F = [0, 0, 0, 0, 0, -1, 0, 1, 0];
    assert.ok(Math.abs(sampsonDistance(F, 10, 20, 35, 23) - 3 / Math.SQRT2) < 1e-12);
    assert.equal(sampsonDistance(F, 10, 20, 99, 20), 0);
    // Scale of F does not matter.
    assert.ok(
      Math.abs(
        sampsonDistance(
          F.map((v) => 7 * v),
          10,
          20,
          35,
          23,
        ) -
          3 / Math.SQRT2,
      ) < 1e-12,
    );
  });
});

describe('eightPoint', () => {
  it('recovers F of a known two-view geometry from exact correspondences (Sampson ≈ 0)', () => {
    const { p1, p2, F } = twoView(60, 1);
    const est = eightPoint(p1, p2)!;
    assert.ok(sameUpToSign(est, F) < 1e-6, `F differs by ${sameUpToSign(est, F)}`);
    assert.ok(Math.max(...sampsonDistances(est, p1, p2)) < 1e-6);
    // Rank 2 after enforcement.
    const det =
      est[0]! * (est[4]! * est[8]! - est[5]! * est[7]!) -
      est[1]! * (est[3]! * est[8]! - est[5]! * est[6]!) +
      est[2]! * (est[3]! * est[7]! - est[4]! * est[6]!);
    assert.ok(Math.abs(det) < 1e-12);
  });

  it('is exact from the minimal 8 points and null below 8', () => {
    const { p1, p2, F } = twoView(8, 2);
    assert.ok(sameUpToSign(eightPoint(p1, p2)!, F) < 1e-5);
    assert.equal(eightPoint(p1.subarray(0, 14), p2.subarray(0, 14)), null);
  });

  it('pixel noise σ on both views gives RMS Sampson distance ≈ σ (true F) and just below (fitted F)', () => {
    const sigma = 0.5;
    const n = 800;
    const { p1, p2, F } = twoView(n, 3);
    const u = seededRandom(33);
    const q1 = p1.map((v) => v + sigma * normal(u));
    const q2 = p2.map((v) => v + sigma * normal(u));
    // First-order: the residual's gradient norm is the Sampson denominator, so d ~ |N(0, σ²)|.
    const trueRms = rms(sampsonDistances(F, q1, q2));
    assert.ok(Math.abs(trueRms / sigma - 1) < 0.08, `true-F rms ${trueRms}`);
    const fitRms = rms(sampsonDistances(eightPoint(q1, q2)!, q1, q2));
    assert.ok(fitRms <= trueRms * 1.001 && fitRms > 0.85 * sigma, `fitted rms ${fitRms} vs ${trueRms}`);
  });
});

describe('ransacFundamental', () => {
  it('finds the inliers among 35% gross outliers and recovers F', () => {
    const n = 200;
    const { p1, p2, F } = twoView(n, 4);
    const u = seededRandom(44);
    const isOutlier = Array.from({ length: n }, () => u() < 0.35);
    const q2 = Float64Array.from(p2);
    isOutlier.forEach((o, i) => {
      if (o) q2.set([u() * 320, u() * 240], 2 * i);
      else q2.set([p2[2 * i]! + 0.2 * normal(u), p2[2 * i + 1]! + 0.2 * normal(u)], 2 * i);
    });
    const fit = ransacFundamental(p1, q2, { threshold: 1.5, seed: 5 })!;
    let truePos = 0;
    let falsePos = 0;
    isOutlier.forEach((o, i) => {
      if (fit.inliers[i] && !o) truePos++;
      if (fit.inliers[i] && o) falsePos++;
    });
    const nIn = isOutlier.filter((o) => !o).length;
    assert.ok(truePos >= 0.97 * nIn, `recall ${truePos}/${nIn}`);
    // A random point lands within 1.5 px of its epipolar line with probability ≈ 3/300.
    assert.ok(falsePos <= 4, `false positives ${falsePos}`);
    assert.ok(sameUpToSign(fit.F, F) < 0.05, `F differs by ${sameUpToSign(fit.F, F)}`);
    // Plain least squares over the contaminated set is far off: RANSAC is what makes this work.
    const ls = eightPoint(p1, q2)!;
    const inl = Array.from({ length: n }, (_, i) => i).filter((i) => !isOutlier[i]);
    const err = (G: ArrayLike<number>) =>
      rms(inl.map((i) => sampsonDistance(G, p1[2 * i]!, p1[2 * i + 1]!, q2[2 * i]!, q2[2 * i + 1]!)));
    assert.ok(err(fit.F) < 0.3 && err(ls) > 1, `ransac ${err(fit.F)} ls ${err(ls)}`);
  });

  it('is deterministic for a seed and null with fewer than 8 matches', () => {
    const { p1, p2 } = twoView(30, 6);
    const a = ransacFundamental(p1, p2, { seed: 9 })!;
    const b = ransacFundamental(p1, p2, { seed: 9 })!;
    assert.deepEqual(a.F, b.F);
    assert.equal(ransacFundamental(p1.subarray(0, 14), p2.subarray(0, 14)), null);
  });
});
