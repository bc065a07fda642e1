import assert from 'node:assert/strict';
import { test } from 'node:test';
import { intrinsicsFromFov } from '../../src/geometry/cameras.js';
import { unprojectDepth } from '../../src/geometry/unproject.js';
import { DEFAULT_SPLAT, DepthSplatter, pointCloudFromFrames } from '../../src/geometry/zbuffer.js';

const H = 16;
const W = 16;
const K = intrinsicsFromFov(1, 1, H, W);
const I34 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];

/** A camera looking down world +z from (0, 0, z0): t = (0, 0, −z0). */
function camera(z0: number): number[] {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, -z0];
}

test('a frame rendered from its own points reproduces its depth (no blending artefacts on a slanted plane)', () => {
  const depth = new Float32Array(H * W);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) depth[i * W + j] = 3 + 0.1 * j + 0.05 * i;
  const pts = unprojectDepth(depth, I34, K, 1, H, W);
  const cloud = pointCloudFromFrames(pts, I34, K, 1, H * W);
  assert.equal(cloud.count, H * W);
  const out = new Float32Array(H * W);
  new DepthSplatter(H, W).render(cloud, I34, 0, K, 0, out);
  for (let p = 0; p < H * W; p++)
    assert.ok(Math.abs(out[p]! - depth[p]!) / depth[p]! < 0.01, `${p}: ${out[p]} vs ${depth[p]}`);
});

test('the nearer of two surfaces wins; leaving its frame out shows the farther one', () => {
  const near = new Float32Array(H * W).fill(2);
  const far = new Float32Array(H * W).fill(5);
  const depth = Float32Array.from([...near, ...far]);
  const ext = [...I34, ...I34];
  const KK = [...K, ...K];
  const pts = unprojectDepth(depth, ext, KK, 2, H, W);
  const cloud = pointCloudFromFrames(pts, ext, KK, 2, H * W);
  const out = new Float32Array(H * W);
  const s = new DepthSplatter(H, W);
  s.render(cloud, ext, 0, KK, 0, out);
  assert.ok(out.every((d) => Math.abs(d - 2) < 1e-5));
  s.render(cloud, ext, 0, KK, 0, out, DEFAULT_SPLAT, cloud.frameStart[0]!, cloud.frameStart[1]!);
  assert.ok(out.every((d) => Math.abs(d - 5) < 1e-5));
});

test('footprints close the gaps of a surface sampled from twice as far; one-pixel splats do not', () => {
  // Source at z = 0 sees a wall at depth 4 (world z = 4); the target at z = 2 sees it at depth 2,
  // so the source's samples land two target pixels apart.
  const depthSrc = new Float32Array(H * W).fill(4);
  const src = camera(0);
  const pts = unprojectDepth(depthSrc, src, K, 1, H, W);
  const cloud = pointCloudFromFrames(pts, src, K, 1, H * W);
  const tgt = camera(2);
  const zWall = 2;
  const out = new Float32Array(H * W);
  const s = new DepthSplatter(H, W);
  s.render(cloud, tgt, 0, K, 0, out, { ...DEFAULT_SPLAT, holeTolerance: 0 });
  // The wall covers the middle of the target; every pixel there is filled at its depth.
  let filled = 0;
  for (let i = 5; i < 11; i++)
    for (let j = 5; j < 11; j++) {
      const d = out[i * W + j]!;
      assert.ok(Math.abs(d - zWall) < 1e-4, `(${i},${j}) = ${d}`);
      filled++;
    }
  assert.equal(filled, 36);
  // With one-pixel splats, a quarter of those pixels would stay empty.
  s.render(cloud, tgt, 0, K, 0, out, { ...DEFAULT_SPLAT, splatScale: 0, holeTolerance: 0 });
  let empty = 0;
  for (let i = 5; i < 11; i++) for (let j = 5; j < 11; j++) if (out[i * W + j] === 0) empty++;
  assert.ok(empty >= 9, `${empty} empty pixels`);
});

test('support test: a far surface seen through a one-pixel hole is dropped', () => {
  const depth = new Float32Array(H * W).fill(2);
  depth[8 * W + 8] = 6; // the hole shows the far wall
  const pts = unprojectDepth(depth, I34, K, 1, H, W);
  const cloud = pointCloudFromFrames(pts, I34, K, 1, H * W);
  const out = new Float32Array(H * W);
  const s = new DepthSplatter(H, W);
  s.render(cloud, I34, 0, K, 0, out, { ...DEFAULT_SPLAT, splatScale: 0, blendTolerance: 0 });
  assert.equal(out[8 * W + 8], 0);
  assert.ok(Math.abs(out[8 * W + 9]! - 2) < 1e-6);
  s.render(cloud, I34, 0, K, 0, out, {
    ...DEFAULT_SPLAT,
    splatScale: 0,
    blendTolerance: 0,
    holeTolerance: 0,
  });
  assert.ok(Math.abs(out[8 * W + 8]! - 6) < 1e-5);
});

test('points behind the camera or outside the image are ignored', () => {
  const pts = Float32Array.of(0, 0, -1, 100, 0, 1, 0, 0, 3);
  const cloud = pointCloudFromFrames(pts, I34, K, 1, 3);
  const out = new Float32Array(H * W);
  new DepthSplatter(H, W).render(cloud, I34, 0, K, 0, out, { ...DEFAULT_SPLAT, splatScale: 0 });
  const hit = Array.from(out).filter((d) => d > 0);
  assert.deepEqual(hit, [3]);
  assert.equal(out[8 * W + 8], 3);
});
