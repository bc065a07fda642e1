import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { quatToMatrix } from '../../src/geometry/so3.js';
import { encodeRendered, encodeScene, toyQuaternion } from '../../src/toy/encoder.js';
import { CH, NORM, TOY } from '../../src/toy/latent.js';
import { makeScene, makeTrajectory, renderVideo } from '../../src/world/index.js';

const { frames: F, height: H, width: W, geoWidth: w } = TOY;
const at = (c: number, f: number, i: number, j: number) => ((c * F + f) * H + i) * W + j;

test('latent channels: upsampled log-depth, colour, constant cameras with x ≥ 0 quaternions', () => {
  const { latents, geometry, colour } = encodeScene(
    makeScene(77, { dynamic: true }),
    makeTrajectory('orbit', { jitterRot: 0.03, seed: 2 }),
  );
  for (let f = 0; f < F; f++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const d = geometry.depth[f * 64 + (i >> 1) * w + (j >> 1)]!;
        assert.ok(
          Math.abs(
            Math.exp(latents[at(CH.logDepth, f, i, j)]! * NORM.logDepthScale + NORM.logDepthMean) / d - 1,
          ) < 1e-5,
        );
        const red = colour.rgb[3 * (f * H * W + i * W + j)]! / 255;
        assert.ok(Math.abs(latents[at(CH.rgb, f, i, j)]! * NORM.rgbScale + NORM.rgbMean - red) < 1e-6);
        for (let c = CH.translation; c < CH.flow; c++)
          assert.equal(latents[at(c, f, i, j)], latents[at(c, f, 0, 0)]);
      }
    }
    const q = [0, 1, 2, 3].map(
      (k) => latents[at(CH.quaternion + k, f, 0, 0)]! * NORM.quaternionScale[k]! + NORM.quaternionMean[k]!,
    );
    assert.ok(q[0]! >= 0);
    const R = quatToMatrix(q);
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++)
        assert.ok(Math.abs(R[3 * r + c]! - geometry.extrinsics[12 * f + 4 * r + c]!) < 1e-5);
      assert.ok(
        Math.abs(
          latents[at(CH.translation + r, f, 0, 0)]! * NORM.translationScale[r]! +
            NORM.translationMean[r]! -
            geometry.extrinsics[12 * f + 4 * r + 3]!,
        ) < 1e-5,
      );
    }
  }
  // Roughly unit scale per channel over a video.
  for (let c = 0; c < TOY.channels; c++) {
    const plane = latents.subarray(at(c, 0, 0, 0), at(c + 1, 0, 0, 0));
    assert.ok(
      plane.every((v) => Math.abs(v) < 6),
      `channel ${c} out of scale`,
    );
  }
});

test('toyQuaternion picks the x ≥ 0 sign and keeps the rotation', () => {
  const halfTurnX = Float64Array.of(1, 0, 0, 0, -1, 0, 0, 0, -1);
  assert.deepEqual(Array.from(toyQuaternion(halfTurnX)), [1, 0, 0, 0]);
  const rz = Float64Array.of(0, -1, 0, 1, 0, 0, 0, 0, 1); // 90° about z: q = (0, 0, ±s, ±c)
  const q = toyQuaternion(rz);
  assert.ok(q[0] === 0 && q[3]! > 0);
  assert.ok(Array.from(quatToMatrix(q)).every((v, i) => Math.abs(v - rz[i]!) < 1e-12));
});

test('encodeRendered rejects renders at the wrong resolution', () => {
  const scene = makeScene(1);
  const traj = makeTrajectory('pan');
  const r16 = renderVideo(scene, traj, { height: 16, fov: TOY.fov });
  assert.throws(() => encodeRendered(r16, r16), InputError);
});
