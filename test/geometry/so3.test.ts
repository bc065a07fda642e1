import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { matMul3, matTMul3 } from '../../src/geometry/mat3.js';
import { expSO3, geodesicAngle, logSO3, matrixToQuat, quatToMatrix } from '../../src/geometry/so3.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, msg = '') => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${msg} [${i}] ${a[i]} vs ${b[i]}`);
};

const rotVec = fc
  .tuple(
    fc.double({ min: -1, max: 1, noNaN: true }),
    fc.double({ min: -1, max: 1, noNaN: true }),
    fc.double({ min: -1, max: 1, noNaN: true }),
  )
  .filter(([x, y, z]) => Math.hypot(x, y, z) > 1e-3)
  .chain(([x, y, z]) =>
    fc.double({ min: 0, max: Math.PI - 1e-6, noNaN: true }).map((angle) => {
      const n = Math.hypot(x, y, z);
      return Float64Array.of((x / n) * angle, (y / n) * angle, (z / n) * angle);
    }),
  );

test('hand-computed: 90° about z as a quaternion and a rotation vector', () => {
  const s = Math.SQRT1_2;
  const expected = [0, -1, 0, 1, 0, 0, 0, 0, 1];
  close(quatToMatrix([0, 0, s, s]), expected, 1e-15);
  close(quatToMatrix([0, 0, 2 * s, 2 * s]), expected, 1e-15, 'unnormalised quaternion');
  close(expSO3([0, 0, Math.PI / 2]), expected, 1e-15);
  close(logSO3(expected), [0, 0, Math.PI / 2], 1e-15);
  close(matrixToQuat(expected), [0, 0, s, s], 1e-15);
});

test('matrixToQuat picks w ≥ 0 and inverts quatToMatrix', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
      (q) => {
        const n = Math.hypot(...q);
        fc.pre(n > 1e-3);
        const back = matrixToQuat(quatToMatrix(q));
        assert.ok(back[3]! >= 0);
        const sign = q[3]! >= 0 ? 1 : -1;
        // q and −q are the same rotation; at w = 0 either sign is valid.
        if (Math.abs(q[3]! / n) > 1e-6)
          close(
            back,
            q.map((v) => (sign * v) / n),
            1e-9,
          );
        close(quatToMatrix(back), quatToMatrix(q), 1e-12);
      },
    ),
  );
});

test('log ∘ exp is the identity on rotation vectors, up to angles near π', () => {
  fc.assert(
    fc.property(rotVec, (w) => {
      close(logSO3(expSO3(w)), w, 1e-9);
    }),
  );
  // Small angles keep their relative accuracy.
  close(logSO3(expSO3([1e-9, -2e-9, 3e-9])), [1e-9, -2e-9, 3e-9], 1e-20);
  // 180°: the axis is recovered up to sign.
  const w = logSO3(expSO3([0, Math.PI, 0]));
  close(w.map(Math.abs), [0, Math.PI, 0], 1e-12);
});

test('exp gives orthonormal matrices with det 1', () => {
  fc.assert(
    fc.property(rotVec, (w) => {
      const r = expSO3(w);
      close(matTMul3(r, r), [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-12);
      const det =
        r[0]! * (r[4]! * r[8]! - r[5]! * r[7]!) -
        r[1]! * (r[3]! * r[8]! - r[5]! * r[6]!) +
        r[2]! * (r[3]! * r[7]! - r[4]! * r[6]!);
      assert.ok(Math.abs(det - 1) < 1e-12);
    }),
  );
});

test('geodesic angle agrees with arccos((tr(R1ᵀR2) − 1)/2) and composes about one axis', () => {
  fc.assert(
    fc.property(rotVec, rotVec, (a, b) => {
      const r1 = expSO3(a);
      const r2 = expSO3(b);
      const m = matTMul3(r1, r2);
      const ref = Math.acos(Math.max(-1, Math.min(1, (m[0]! + m[4]! + m[8]! - 1) / 2)));
      // arccos loses accuracy near 0 and π; compare loosely there.
      assert.ok(Math.abs(geodesicAngle(r1, r2) - ref) < 1e-6);
    }),
  );
  assert.ok(Math.abs(geodesicAngle(expSO3([0, 0, 0.3]), expSO3([0, 0, 0.1])) - 0.2) < 1e-14);
  const r = expSO3([0.2, 0.1, -0.3]);
  assert.ok(Math.abs(geodesicAngle(r, matMul3(r, expSO3([0, 0.05, 0]))) - 0.05) < 1e-14);
});
