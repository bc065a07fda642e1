import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import {
  cameraCentre,
  cameraCentres,
  camerasToPoseEncoding,
  cameraToWorldToExtrinsics,
  extrinsicsToCameraToWorld,
  intrinsicsFromFov,
  intrinsicsFromParams,
  lookAt,
  poseEncodingToCameras,
} from '../../src/geometry/cameras.js';
import { projectPoint } from '../../src/geometry/unproject.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, msg = '') => {
  assert.equal(a.length, b.length, msg);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${msg} [${i}] ${a[i]} vs ${b[i]}`);
};

test('hand-computed pose encoding: 90° about z, t = (1, 2, 3), fov 90°×60°', () => {
  const s = Math.SQRT1_2;
  const enc = [1, 2, 3, 0, 0, s, s, Math.PI / 2, Math.PI / 3];
  const { extrinsics, intrinsics } = poseEncodingToCameras(enc, 64, 48);
  close(extrinsics, [0, -1, 0, 1, 1, 0, 0, 2, 0, 0, 1, 3], 1e-6);
  // fy = 32/tan(45°) = 32, fx = 24/tan(30°) = 24√3, principal point (W/2, H/2) = (24, 32).
  close(intrinsics, [24 * Math.sqrt(3), 0, 24, 0, 32, 32, 0, 0, 1], 1e-4);
  // c = −Rᵀt: Rᵀ = [[0,1,0],[−1,0,0],[0,0,1]] → Rᵀt = (2, −1, 3).
  close(cameraCentre(extrinsics, 0), [-2, 1, -3], 1e-6);
});

test('pose encoding round trip, with quaternions normalised first', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
      fc.double({ min: 0.3, max: 2.5, noNaN: true }),
      fc.double({ min: 0.3, max: 2.5, noNaN: true }),
      fc.double({ min: 0.2, max: 5, noNaN: true }),
      (t, q, fh, fw, qs) => {
        const n = Math.hypot(...q);
        fc.pre(n > 0.05);
        const enc = [...t, ...q.map((v) => v * qs), fh, fw];
        const cams = poseEncodingToCameras(enc, 60, 104);
        const back = camerasToPoseEncoding(cams.extrinsics, cams.intrinsics, 60, 104);
        const sign = q[3]! >= 0 ? 1 : -1;
        const expected = [...t, ...q.map((v) => (sign * v) / n), fh, fw];
        if (Math.abs(q[3]! / n) > 1e-3) close(back, expected, 2e-5);
        // Either way the decoded cameras agree.
        const again = poseEncodingToCameras(back, 60, 104);
        close(again.extrinsics, cams.extrinsics, 2e-5);
        close(again.intrinsics, cams.intrinsics, 2e-3);
      },
    ),
  );
});

test('a zero quaternion is an input error', () => {
  assert.throws(() => poseEncodingToCameras([0, 0, 0, 0, 0, 0, 0, 1, 1], 8, 8), InputError);
});

test('camera-to-world ↔ camera-from-world round trip; c2w maps the camera origin to the centre', () => {
  const e1 = lookAt([1, 2, 3], [0, 0.5, 0]);
  const e2 = lookAt([-2, 1, 0.5], [0.3, 0, 0.2]);
  const ext = Float32Array.from([...e1, ...e2]);
  const c2w = extrinsicsToCameraToWorld(ext);
  close(cameraToWorldToExtrinsics(c2w), ext, 1e-6);
  close([c2w[3]!, c2w[7]!, c2w[11]!], [1, 2, 3], 1e-6);
  close([c2w[16 + 3]!, c2w[16 + 7]!, c2w[16 + 11]!], [-2, 1, 0.5], 1e-6);
  close([c2w[12]!, c2w[13]!, c2w[14]!, c2w[15]!], [0, 0, 0, 1], 0);
  close(cameraCentre(ext, 1), [-2, 1, 0.5], 1e-6);
  // The batched form: every frame's centre, [F, 3].
  close(cameraCentres(ext), [1, 2, 3, -2, 1, 0.5], 1e-6);
  assert.throws(() => cameraCentres(ext.subarray(0, 13)), /extrinsics.*multiple of 12/);
});

test('lookAt: the target projects to the principal point, world up points up the image', () => {
  const ext = lookAt([2, 1.5, 3], [0, 0.5, 0]);
  const K = intrinsicsFromFov(Math.PI / 3, Math.PI / 3, 32, 32);
  const p = projectPoint([0, 0.5, 0], ext, K);
  close([p.u, p.v], [16, 16], 1e-9);
  assert.ok(p.z > 0);
  const above = projectPoint([0, 1.0, 0], ext, K);
  assert.ok(above.v < p.v, 'a point above the target appears higher (smaller row)');
});

test('intrinsicsFromParams repeats [fx, fy, cx, cy] for each frame', () => {
  const k = intrinsicsFromParams([50, 40, 31, 17], 2);
  close(k, [50, 0, 31, 0, 40, 17, 0, 0, 1, 50, 0, 31, 0, 40, 17, 0, 0, 1], 0);
  assert.throws(() => intrinsicsFromParams([1, 2, 3], 1), InputError);
});
