/**
 * `vggrpo world | vggrpo score` on exact ground truth: within every group (one scene, one
 * camera-path family, jitter rising from 0), the smooth member scores the highest motion and
 * reprojection rewards and the highest advantage.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { rgb8ToUnitFrames, VaeEncoder } from '../../src/media/vae.js';
import { readShard } from '../../src/shards/shard.js';
import { toNumbers } from '../../src/shards/tensor.js';
import { BIN, ROOT, tempDir } from '../helpers.js';

test('ground-truth groups: smooth cameras win both rewards and the advantage', () => {
  const dir = tempDir('vggrpo-world-');
  const out = execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} world --out ${dir}/geometry --scenes 4 --group-size 3 --seed 5 | node ${BIN} score`,
  ]).toString();
  const paths = out.trim().split('\n');
  assert.deepEqual(paths, [join(dir, 'rewards', 'world-0000.safetensors')]);
  const r = readShard(paths[0]!, 'rewards');
  const groups = toNumbers(r.tensors.get('group_index')!);
  for (const name of ['reward/motion', 'reward/reprojection', 'advantages']) {
    const v = r.tensors.get(name)!.data as Float32Array;
    for (const g of new Set(groups)) {
      const idx = groups.flatMap((gg, i) => (gg === g ? [i] : []));
      const best = idx.reduce((a, i) => (v[i]! > v[a]! ? i : a), idx[0]!);
      assert.equal(
        best,
        idx[0],
        `${name}, group ${g}: the smooth member should score highest (${idx.map((i) => v[i]!.toFixed(3))})`,
      );
    }
  }
  const reproj = r.tensors.get('reward/reprojection')!.data as Float32Array;
  for (const g of new Set(groups)) {
    const i = groups.indexOf(g);
    assert.ok(reproj[i]! > -0.15, `ground truth is near the optimum (0): ${reproj[i]}`);
  }
});

test('learned world (models.vae_encoder set): 64×64 frames and the VAE encoder’s latents of exactly those frames', async () => {
  const dir = tempDir('vggrpo-world-vae-');
  const cfg = join(dir, 'learned.yaml');
  writeFileSync(
    cfg,
    JSON.stringify({ models: { vae_encoder: join(ROOT, 'onnx/fixtures/vae_encoder.onnx') } }),
  );
  execFileSync('node', [
    BIN,
    'world',
    '--config',
    cfg,
    '--out',
    `${dir}/geometry`,
    '--scenes',
    '1',
    '--group-size',
    '2',
  ]);
  const s = readShard(join(dir, 'geometry', 'world-0000.safetensors'), 'geometry');
  const rgb = s.tensors.get('rgb')!;
  assert.deepEqual(rgb.shape, [2, 8, 64, 64, 3]);
  const lat = s.tensors.get('final_latents')!;
  assert.deepEqual(lat.shape, [2, 8, 8, 16, 16]);
  const enc = await VaeEncoder.open(
    resolveConfig([{ runtime: { threads: 1 } }]),
    join(ROOT, 'onnx/fixtures/vae_encoder.onnx'),
  );
  const frames = new Float32Array(2 * 8 * 3 * 64 * 64);
  const n = 8 * 64 * 64 * 3;
  for (let b = 0; b < 2; b++)
    frames.set(rgb8ToUnitFrames((rgb.data as Uint8Array).subarray(b * n, (b + 1) * n), 8, 64, 64), b * n);
  const want = (await enc.encode(frames, [2, 8, 64, 64])).latents;
  await enc.release();
  // The shard's latents come from the float render, these from its 8-bit frames: equal up to rounding.
  const got = lat.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  assert.ok(worst < 0.05, `largest latent difference ${worst}`);
  // Not the analytic latents: no channel is constant over a frame (the camera channels were).
  const plane = 16 * 16;
  for (let c = 0; c < 8; c++) {
    const v = got.subarray(c * 8 * plane, c * 8 * plane + plane);
    assert.ok(Math.max(...v) - Math.min(...v) > 0.1, `channel ${c} varies over the frame`);
  }
});
