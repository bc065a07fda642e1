/**
 * Cost of scoring one video (motion + reprojection rewards on ground-truth geometry from the toy
 * world) at toy size (8 frames of 32×32), at the size of a realistic latent geometry model's output
 * (21 frames of 60×104), as frames grow (8/16/32 at 32×32), and against a vectorised NumPy version
 * of the same two rewards (bench/score_numpy.py, run with /usr/bin/python3 when numpy imports).
 * Goal: ours/numpy < 1.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { motion } from '../src/rewards/motion.js';
import { reprojection } from '../src/rewards/reprojection.js';
import type { GeometrySample } from '../src/rewards/types.js';
import { makeScene, makeTrajectory, renderVideo } from '../src/world/index.js';

const here = dirname(fileURLToPath(import.meta.url));

function video(frames: number, height: number, width: number): GeometrySample {
  return renderVideo(
    makeScene(2, { dynamic: true }),
    makeTrajectory('arc', { frames, jitterPos: 0.01, seed: 1 }),
    {
      height,
      width,
    },
  );
}

/** Median ms per video of motion + reprojection over `reps` runs (after one warm-up). */
function timeOurs(g: GeometrySample, reps: number): { ms: number; motion: number; reprojection: number } {
  let m = motion.compute(g);
  let r = reprojection.compute(g);
  const times: number[] = [];
  for (let k = 0; k < reps; k++) {
    const t0 = performance.now();
    m = motion.compute(g);
    r = reprojection.compute(g);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[times.length >> 1]!, motion: m, reprojection: r };
}

function numpyAvailable(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  return r.status === 0;
}

function timeNumpy(
  g: GeometrySample,
  reps: number,
): { ms: number; motion: number; reprojection: number } | string {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-bench-'));
  try {
    const files: Record<string, string> = {};
    const put = (key: string, a: Float32Array | Float64Array | undefined) => {
      if (!a) return;
      const f32 = a instanceof Float32Array ? a : Float32Array.from(a);
      const path = join(dir, `${key}.f32`);
      writeFileSync(path, new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength));
      files[key] = path;
    };
    put('depth', g.depth);
    put('points', g.points);
    put('confidence', g.confidence);
    put('extrinsics', g.extrinsics);
    put('intrinsics', g.intrinsics);
    put('scene_flow', g.sceneFlow);
    const header = join(dir, 'header.json');
    writeFileSync(
      header,
      JSON.stringify({ frames: g.frames, height: g.height, width: g.width, repeats: reps, files }),
    );
    const r = spawnSync('/usr/bin/python3', [join(here, 'score_numpy.py'), header], { encoding: 'utf8' });
    if (r.status !== 0) return `numpy run failed: ${(r.stderr || '').trim().split('\n').pop()}`;
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      ms_per_video: number;
      motion: number;
      reprojection: number;
    };
    return { ms: out.ms_per_video, motion: out.motion, reprojection: out.reprojection };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchScore(): Promise<Record<string, number | string>> {
  const res: Record<string, number | string> = {};
  const round = (x: number, d = 2) => Number(x.toFixed(d));
  const hasNumpy = numpyAvailable();
  if (!hasNumpy)
    res['numpy'] = 'skipped: /usr/bin/python3 cannot import numpy (apt-get install -y python3-numpy)';
  const cases: [string, number, number, number, number][] = [
    ['toy 8×32×32', 8, 32, 32, 20],
    ['lgm 21×60×104', 21, 60, 104, 5],
    ['frames 16×32×32', 16, 32, 32, 10],
    ['frames 32×32×32', 32, 32, 32, 5],
  ];
  for (const [name, f, h, w, reps] of cases) {
    const g = video(f, h, w);
    const ours = timeOurs(g, reps);
    res[`${name} ms/video`] = round(ours.ms);
    res[`${name} r_motion`] = round(ours.motion, 5);
    res[`${name} r_geo`] = round(ours.reprojection, 5);
    if (!hasNumpy) continue;
    const np = timeNumpy(g, Math.max(2, Math.min(reps, 5)));
    if (typeof np === 'string') {
      res[`${name} numpy`] = np;
      continue;
    }
    res[`${name} numpy ms/video`] = round(np.ms);
    res[`${name} ours/numpy`] = round(ours.ms / np.ms, 3);
    res[`${name} |Δr_motion| vs numpy`] = Number(Math.abs(np.motion - ours.motion).toExponential(2));
    res[`${name} |Δr_geo| vs numpy`] = Number(Math.abs(np.reprojection - ours.reprojection).toExponential(2));
  }
  return res;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchScore();
  for (const [k, v] of Object.entries(r)) process.stdout.write(`${k}: ${v}\n`);
}
