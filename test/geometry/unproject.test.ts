import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { intrinsicsFromFov, lookAt } from '../../src/geometry/cameras.js';
import { depthFromPoints, projectPoint, unprojectDepth } from '../../src/geometry/unproject.js';

test('hand-computed unprojection: identity camera, fx = fy = 10, principal point (2, 2)', () => {
  const ext = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];
  const K = [10, 0, 2, 0, 10, 2, 0, 0, 1];
  const depth = new Float32Array(16);
  depth[1 * 4 + 3] = 2; // row 1, column 3
  const pts = unprojectDepth(depth, ext, K, 1, 4, 4);
  // u = 3, v = 1 → X = 2·((3−2)/10, (1−2)/10, 1)
  const p = 3 * (1 * 4 + 3);
  assert.deepEqual(
    Array.from(pts.subarray(p, p + 3)).map((v) => Math.round(v * 1e6) / 1e6),
    [0.2, -0.2, 2],
  );
  // Pixels with no depth give NaN points.
  assert.ok(Number.isNaN(pts[0]!));
});

test('project ∘ unproject is the identity: pixel (i, j) comes back at (u = j, v = i) with its depth', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 3, maxLength: 3 }),
      fc.integer({ min: 0, max: 11 }),
      fc.integer({ min: 0, max: 15 }),
      fc.double({ min: 0.1, max: 20, noNaN: true }),
      (eye, dt, i, j, d) => {
        const target = [eye[0]! + 1 + dt[0]!, eye[1]! + dt[1]!, eye[2]! + dt[2]!];
        // lookAt needs a viewing direction away from the vertical.
        fc.pre(Math.hypot(1 + dt[0]!, dt[2]!) > 0.3);
        const ext = lookAt(eye, target);
        const K = intrinsicsFromFov(0.9, 1.1, 12, 16);
        const depth = new Float32Array(12 * 16);
        depth[i * 16 + j] = d;
        const pts = unprojectDepth(depth, ext, K, 1, 12, 16);
        const p = i * 16 + j;
        const pr = projectPoint(pts.subarray(3 * p, 3 * p + 3), ext, K);
        const tol = 1e-5 * (1 + d + Math.hypot(...eye));
        assert.ok(
          Math.abs(pr.u - j) < tol * 50 && Math.abs(pr.v - i) < tol * 50,
          `${pr.u},${pr.v} vs ${j},${i}`,
        );
        assert.ok(Math.abs(pr.z - d) < tol * d + tol);
        const back = depthFromPoints(pts, ext, 1, 12 * 16);
        assert.ok(Math.abs(back[p]! - d) < tol * d + tol);
      },
    ),
  );
});
