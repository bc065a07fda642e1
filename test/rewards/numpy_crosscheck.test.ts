/**
 * Cross-check of both rewards against bench/score_numpy.py, an independent vectorised NumPy
 * implementation of the same definitions. Skipped where /usr/bin/python3 cannot import numpy.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { motion } from '../../src/rewards/motion.js';
import { reprojection } from '../../src/rewards/reprojection.js';
import { groundTruth } from './helpers.js';

const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

test('TypeScript and NumPy rewards agree on static, dynamic and jittered videos', {
  skip: !hasNumpy && 'numpy not importable',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-xcheck-'));
  try {
    const videos = [
      groundTruth('orbit', { seed: 1 }),
      groundTruth('arc', { seed: 2, dynamic: true, jitterPos: 0.02, jitterRot: 0.01 }),
      groundTruth('pan', { seed: 3, frames: 5, size: 24 }),
    ];
    for (const [k, g] of videos.entries()) {
      const files: Record<string, string> = {};
      for (const [key, a] of Object.entries({
        depth: g.depth,
        points: g.points,
        confidence: g.confidence,
        extrinsics: g.extrinsics,
        intrinsics: g.intrinsics,
        scene_flow: g.sceneFlow,
      })) {
        if (!a) continue;
        const f = Float32Array.from(a);
        files[key] = join(dir, `${k}-${key}.f32`);
        writeFileSync(files[key]!, new Uint8Array(f.buffer));
      }
      const header = join(dir, `${k}.json`);
      writeFileSync(
        header,
        JSON.stringify({ frames: g.frames, height: g.height, width: g.width, repeats: 1, files }),
      );
      const r = spawnSync('/usr/bin/python3', ['bench/score_numpy.py', header], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const np = JSON.parse(r.stdout) as { motion: number; reprojection: number };
      const m = motion.compute(g);
      const geo = reprojection.compute(g);
      assert.ok(Math.abs(np.motion - m) < 1e-6, `video ${k}: motion ${m} vs numpy ${np.motion}`);
      assert.ok(
        Math.abs(np.reprojection - geo) < 1e-5,
        `video ${k}: reprojection ${geo} vs numpy ${np.reprojection}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
