import assert from 'node:assert/strict';
import { test } from 'node:test';
import { poseEncodingToCameras } from '../../src/geometry/cameras.js';
import { normalizeVjp, quatLog, quatLogVjp } from '../../src/geometry/pose-vjp.js';
import { expSO3, logSO3, matrixToQuat, quatToMatrix } from '../../src/geometry/so3.js';
import { seededRandom as mulberry32 } from '../../src/metrics/fundamental.js';
import { cameraSmoothness, MOTION_DEFAULTS, type MotionOptions, motion } from '../../src/rewards/motion.js';
import { medianPixels, motionVjp } from '../../src/rewards/motion-vjp.js';

/**
 * The reference r_motion of a pose encoding, in float64, written independently of motion-vjp.ts:
 * extrinsics from so3.ts's quatToMatrix (matrix path, logSO3 through Shepperd) and the scene
 * scale as a plain sorted median.
 */
function reference(pose: Float64Array, depth: Float64Array | undefined, o: MotionOptions): number {
  const F = pose.length / 9;
  const e = new Float64Array(12 * F);
  for (let f = 0; f < F; f++) {
    const R = quatToMatrix(pose.subarray(9 * f + 3, 9 * f + 7));
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) e[12 * f + 4 * r + c] = R[3 * r + c]!;
      e[12 * f + 4 * r + 3] = pose[9 * f + r]!;
    }
  }
  let scale = 1;
  if (o.epsUnit === 'scene') {
    const v = Array.from(depth ?? [])
      .filter((d) => d > 0 && Number.isFinite(d))
      .sort((a, b) => a - b);
    const n = v.length;
    scale = n % 2 ? v[n >> 1]! : (v[n / 2 - 1]! + v[n / 2]!) / 2;
  }
  return cameraSmoothness(e, F, o, scale).reward;
}

/** A jittered dolly-and-pan: rotations exp(ω_f) with steps of `rotStep` rad, raw (non-unit) quaternions. */
function poses(F: number, seed: number, rotStep: number, transStep = 0.3): Float64Array {
  const rnd = mulberry32(seed);
  const out = new Float64Array(9 * F);
  for (let f = 0; f < F; f++) {
    const w = [rotStep * f * (1 + 0.5 * rnd()), rotStep * (0.3 + rnd()) * f, rotStep * rnd() * f];
    const q = matrixToQuat(expSO3(w));
    const s = 0.5 + 1.5 * rnd();
    for (let k = 0; k < 3; k++) out[9 * f + k] = transStep * f * (k === 2 ? 1 : 0.3) + 0.1 * (rnd() - 0.5);
    for (let k = 0; k < 4; k++) out[9 * f + 3 + k] = s * q[k]!;
    out[9 * f + 7] = 1;
    out[9 * f + 8] = 1.2;
  }
  return out;
}

function depthMap(n: number, seed: number): Float64Array {
  const rnd = mulberry32(seed);
  return Float64Array.from({ length: n }, () => 1 + 4 * rnd());
}

/** Central differences of f at x along every coordinate in `idx`, step h·max(1, |x_i|). */
function fd(f: (x: Float64Array) => number, x: Float64Array, idx: number[], h: number): number[] {
  return idx.map((i) => {
    const step = h * Math.max(1, Math.abs(x[i]!));
    const a = Float64Array.from(x);
    const b = Float64Array.from(x);
    a[i]! += step;
    b[i]! -= step;
    return (f(a) - f(b)) / (2 * step);
  });
}

function close(got: ArrayLike<number>, want: number[], rel: number, what: string): void {
  const scale = Math.max(1e-12, ...want.map(Math.abs));
  want.forEach((w, k) => {
    const g = got[k]!;
    assert.ok(
      Math.abs(g - w) <= rel * scale,
      `${what}[${k}]: vjp ${g}, finite differences ${w} (scale ${scale})`,
    );
  });
}

const ALL = (n: number) => Array.from({ length: n }, (_, i) => i);

for (const rotationFrame of ['camera', 'world'] as const) {
  for (const [name, rotStep] of [
    ['generic', 0.08],
    ['small rotations (log_SO3 near 0)', 2e-5],
  ] as const) {
    test(`motion VJP w.r.t. the pose encoding = finite differences (${rotationFrame} frame, ${name})`, () => {
      const F = 7;
      const o: MotionOptions = { ...MOTION_DEFAULTS, rotationFrame, epsUnit: 'absolute', eps: 1e-3 };
      for (const seed of [1, 2, 3]) {
        const pose = poses(F, seed, rotStep);
        const g = motionVjp(pose, undefined, o, 1);
        assert.ok(Math.abs(g.reward - reference(pose, undefined, o)) < 1e-12);
        const want = fd((x) => reference(x, undefined, o), pose, ALL(9 * F), rotStep < 1e-3 ? 1e-9 : 1e-6);
        close(g.pose, want, rotStep < 1e-3 ? 1e-4 : 1e-6, `seed ${seed} ∂r/∂pose`);
      }
    });
  }
}

test('motion VJP: the scene-scale eps gives the median depth pixels a gradient (odd and even counts)', () => {
  const F = 6;
  const o: MotionOptions = { ...MOTION_DEFAULTS, eps: 0.05 };
  for (const n of [F * 9, F * 8]) {
    const pose = poses(F, 7, 0.05);
    const depth = depthMap(n, n);
    const g = motionVjp(pose, depth, o, 2.5);
    assert.ok(Math.abs(g.reward - reference(pose, depth, o)) < 1e-12);
    const want = fd((x) => 2.5 * reference(pose, x, o), depth, ALL(n), 1e-7);
    close(g.depth!, want, 1e-5, `n=${n} ∂r/∂depth`);
    assert.ok(
      want.some((v) => Math.abs(v) > 1e-6),
      'the scale matters in this case',
    );
    const wantPose = fd((x) => 2.5 * reference(x, depth, o), pose, ALL(9 * F), 1e-6);
    close(g.pose, wantPose, 1e-6, `n=${n} ∂r/∂pose`);
  }
});

test('motion VJP: the reward agrees with motion.compute on the float32 cameras', () => {
  const F = 8;
  const pose = poses(F, 11, 0.1);
  const depth = depthMap(F * 16, 3);
  const cams = poseEncodingToCameras(pose, 4, 4);
  const r = motion.compute({
    frames: F,
    height: 4,
    width: 4,
    depth: Float32Array.from(depth),
    points: new Float32Array(F * 48),
    extrinsics: cams.extrinsics,
    intrinsics: cams.intrinsics,
  });
  assert.ok(Math.abs(motionVjp(pose, depth).reward - r) < 1e-5);
  assert.ok(r < 0.99, 'a jittered path is not perfectly smooth');
});

test('medianPixels: the middle entry, or the two middle ones at ½ each; invalid depths ignored', () => {
  assert.deepEqual(medianPixels(Float64Array.of(3, 0, 1, 2)), { value: 2, index: [3], weight: [1] });
  assert.deepEqual(medianPixels(Float64Array.of(4, 1, Number.NaN, 3, 2)), {
    value: 2.5,
    index: [4, 3],
    weight: [0.5, 0.5],
  });
  assert.equal(medianPixels(Float64Array.of(0, -1)), null);
});

test('quatLog and its VJP = logSO3 of the rotation and its finite differences, both sides of the series threshold and near π', () => {
  const rnd = mulberry32(5);
  // Angles around the switch to the Taylor series (u = s/w = 1e-2 ⇔ θ ≈ 0.02), tiny ones and near π.
  for (const angle of [1e-7, 1e-3, 0.0199, 0.0201, 0.7, 3.1]) {
    const axis = [rnd() - 0.5, rnd() - 0.5, rnd() - 0.5];
    const n = Math.hypot(...axis);
    const q = matrixToQuat(expSO3(axis.map((a) => (a / n) * angle)));
    const gw = [rnd() - 0.5, rnd() - 0.5, rnd() - 0.5];
    const f = (x: Float64Array) => {
      const w = logSO3(quatToMatrix(x));
      return w[0]! * gw[0]! + w[1]! * gw[1]! + w[2]! * gw[2]!;
    };
    const w = quatLog(q);
    const ref = logSO3(quatToMatrix(q));
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(w[k]! - ref[k]!) < 1e-13, `angle ${angle}: ω`);
    const g = new Float64Array(4);
    quatLogVjp(q, gw, g);
    const proj = new Float64Array(4);
    normalizeVjp(q, 1, g, proj); // FD of the normalised function sees only the tangent part
    close(proj, fd(f, q, ALL(4), 1e-6), 1e-7, `angle ${angle} ∂ω/∂q`);
  }
});

test('motion VJP with the noise floor: a still axis scores S = 0 and passes no gradient; the moving one = finite differences', () => {
  const F = 7;
  // Translation steps of 0.3 (moving), rotation steps of 2e-4 rad (still under σ_r = 1e-3).
  const pose = poses(F, 5, 2e-4);
  const o: MotionOptions = {
    ...MOTION_DEFAULTS,
    epsUnit: 'absolute',
    eps: 1e-3,
    poseNoise: { translation: 1e-3, rotation: 1e-3 },
  };
  const g = motionVjp(pose, undefined, o, 1);
  assert.equal(g.sRot, 0);
  assert.ok(g.sTrans > 0.01, `translation is jittered: ${g.sTrans}`);
  assert.ok(Math.abs(g.reward - reference(pose, undefined, o)) < 1e-12);
  const plain = motionVjp(pose, undefined, { ...o, poseNoise: null }, 1);
  assert.ok(plain.sRot > 0.05, `without the floor the still axis is rough: ${plain.sRot}`);
  const want = fd((x) => reference(x, undefined, o), pose, ALL(9 * F), 1e-7);
  close(g.pose, want, 1e-5, '∂r/∂pose with the floor');
  // The still axis passes nothing: the gradient is the translation term's alone (centres c = −Rᵀt
  // still depend on the quaternions), i.e. the plain VJP with the rotation term's cotangent removed.
  const transOnly = fd((x) => 0.5 / (1 + motionVjp(x, undefined, o, 1).sTrans), pose, ALL(9 * F), 1e-7);
  close(g.pose, transOnly, 1e-5, '∂r/∂pose = the translation term alone');
});
