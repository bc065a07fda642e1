/**
 * The independent judge in `eval` (src/stages/judge.ts): on `world` shards, with the toy's judge
 * (onnx/fixtures/judge.onnx, sharing nothing with the analytic toy LGM that decodes the latents),
 * the report carries the judge's rewards and its own errors against ground truth, bounded, and
 * each judge value in metrics.csv equals the judge run by hand on the decoded frames resized to
 * its input; the reward-hacking flag fires
 * exactly when a resolved reward change and the judge's disagree in sign; a missing judge or one
 * whose input does not fit the frames is exit 2 naming it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { resizeBilinear } from '../../src/media/resize.js';
import { rgb8ToUnitFrames, VaeDecoder } from '../../src/media/vae.js';
import { motion } from '../../src/rewards/motion.js';
import { sliceGeometry } from '../../src/rewards/types.js';
import { ModelSession } from '../../src/runtime/session.js';
import { readShard } from '../../src/shards/shard.js';
import { f32 } from '../../src/shards/tensor.js';
import { hackingFlags } from '../../src/stages/eval.js';
import { geometryFetch, readGeometryOutputs } from '../../src/stages/geometry-outputs.js';
import { BIN, oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const JUDGE = join(ROOT, 'onnx/fixtures/judge.onnx');

function worldRun(): string {
  const dir = tempDir('vggrpo-judge-');
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} world --out ${dir}/world/geometry --scenes 2 --group-size 3 | node ${BIN} decode-geometry --out ${dir}/decoded > /dev/null`,
  ]);
  return dir;
}

function judgeConfig(dir: string, judge: Record<string, unknown>): string {
  const path = join(dir, 'judge.yaml');
  writeFileSync(path, JSON.stringify({ eval: judge }));
  return path;
}

test('eval with a judge: its rewards and own errors beside the reward model’s, equal to the judge run by hand', async () => {
  const dir = worldRun();
  const cfg = judgeConfig(dir, { judge: JUDGE, judge_outputs: { frames_size: [64, 64] } });
  const out = join(dir, 'report');
  const r = await runCli([
    'eval',
    join(dir, 'decoded'),
    '--allow-root',
    dir,
    '--config',
    cfg,
    '--out',
    out,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout).metrics.decoded;
  for (const k of [
    'judge/reward/motion',
    'judge/reward/reprojection',
    'judge/rotErrDeg',
    'judge/depthRelErr',
  ])
    assert.ok(Number.isFinite(m[k]), `${k} = ${m[k]}`);
  // The analytic LGM is exact on these latents; the judge reads the decoded 16×16 colour (blown up
  // to 64×64) and errs more, but within bounds set above its measured held-out errors
  // (test/toy/judge.test.ts: about 2° and 2.4% on decoded frames).
  assert.ok(m['judge/rotErrDeg'] > m.rotErrDeg, `judge ${m['judge/rotErrDeg']}° vs LGM ${m.rotErrDeg}°`);
  assert.ok(m['judge/rotErrDeg'] < 4, `judge rotation error ${m['judge/rotErrDeg']}°`);
  assert.ok(m['judge/depthRelErr'] < 0.06, `judge depth error ${m['judge/depthRelErr']}`);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /Reward model and independent judge/);

  // Each judge value of metrics.csv = the judge by hand on the decoded frames of the world's latents.
  const csv = readFileSync(join(out, 'metrics.csv'), 'utf8').trim().split('\n');
  const head = csv[0]!.split(',');
  const col = head.indexOf('judge/reward/motion');
  assert.ok(col > 0);
  const world = readShard(join(dir, 'world/geometry/world-0000.safetensors'), 'geometry');
  const lat = world.tensors.get('final_latents')!;
  const B = lat.shape[0]!;
  const F = lat.shape[2]!;
  const decoder = (await VaeDecoder.open(resolveConfig([])))!;
  const frames = new Float32Array(B * F * 3 * 64 * 64);
  const per = lat.data.length / B;
  for (let b = 0; b < B; b++) {
    const v = await decoder.decode(
      (lat.data as Float32Array).slice(b * per, (b + 1) * per),
      lat.shape.slice(1) as [number, number, number, number],
    );
    const unit = rgb8ToUnitFrames(v.rgb, F, v.height, v.width);
    frames.set(resizeBilinear(unit, [F, 3, v.height, v.width], 64, 64), b * F * 3 * 64 * 64);
  }
  await decoder.release();
  const judge = await ModelSession.open(JUDGE, { threads: 1 });
  const o = resolveConfig([]).geometry_outputs;
  const g = readGeometryOutputs(
    await judge.run({ frames: f32([B, F, 3, 64, 64], frames) }, geometryFetch(judge, o)),
    o,
    'geometry_outputs',
    JUDGE,
  );
  await judge.release();
  const [, , h, w] = g.depth.shape as [number, number, number, number];
  assert.equal(B, 6);
  const batch = {
    depth: g.depth.data as Float32Array,
    points: g.points.data as Float32Array,
    extrinsics: g.extrinsics.data as Float32Array,
    intrinsics: g.intrinsics.data as Float32Array,
  };
  for (let b = 0; b < B; b++) {
    const want = motion.compute(sliceGeometry(batch, b, F, h, w), motion.parseOptions({}));
    const got = Number(csv[1 + b]!.split(',')[col]);
    assert.ok(Math.abs(got - want) < 1e-5, `video ${b}: csv ${got}, by hand ${want}`);
  }
});

test('reward-hacking flag: a resolved reward change that the judge reads with the other sign', () => {
  const iv = (mean: number, lo: number, hi: number) => ({ mean, lo, hi });
  const flags = hackingFlags({
    'reward/motion': iv(0.1, 0.05, 0.15),
    'judge/reward/motion': iv(-0.04, -0.07, -0.01),
    'reward/reprojection': iv(0.02, 0.01, 0.03),
    'judge/reward/reprojection': iv(0.01, -0.01, 0.03),
  });
  assert.equal(flags.length, 1);
  assert.match(flags[0]!, /^motion: .*\(resolved\).*disagree in sign/);
  // Unresolved reward change, or agreement in sign: no flag.
  assert.deepEqual(
    hackingFlags({ 'reward/motion': iv(0.1, -0.05, 0.25), 'judge/reward/motion': iv(-0.04, -0.07, -0.01) }),
    [],
  );
  assert.deepEqual(
    hackingFlags({ 'reward/motion': iv(0.1, 0.05, 0.15), 'judge/reward/motion': iv(0.02, -0.1, 0.1) }),
    [],
  );
});

test('bad judge: missing file, or frames that do not fit its input, is exit 2 naming it', async () => {
  const dir = worldRun();
  const missing = await runCli([
    'eval',
    join(dir, 'decoded'),
    '--allow-root',
    dir,
    '--config',
    judgeConfig(dir, { judge: 'nope.onnx' }),
    '--out',
    join(dir, 'r1'),
  ]);
  assert.equal(missing.code, 2);
  oneLine(missing.stderr);
  assert.match(missing.stderr, /nope\.onnx.*judge model not found \(eval\.judge\)/);
  // The judge takes 64×64 frames; the decoded ones are 32×32 and no frames_size is given.
  const unfit = await runCli([
    'eval',
    join(dir, 'decoded'),
    '--allow-root',
    dir,
    '--config',
    judgeConfig(dir, { judge: JUDGE }),
    '--out',
    join(dir, 'r2'),
  ]);
  assert.equal(unfit.code, 2);
  oneLine(unfit.stderr);
  assert.match(unfit.stderr, /judge\.onnx/);
});
