/**
 * `vggrpo world | vggrpo score` on exact ground truth: within every group (one scene, one
 * camera-path family, jitter rising from 0), the smooth member scores the highest motion and
 * reprojection rewards and the highest advantage.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { readShard } from '../../src/shards/shard.js';
import { toNumbers } from '../../src/shards/tensor.js';
import { BIN, tempDir } from '../helpers.js';

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
