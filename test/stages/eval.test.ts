/**
 * `eval` on ground truth: the toy geometry model decoding the toy encoder's latents recovers
 * the world's cameras and depth (ATE, rotation and depth errors near 0), and the report holds
 * the metrics, plots and videos.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, runCli, tempDir } from '../helpers.js';

test('world → decode-geometry → eval: metrics against ground truth and a complete report', async () => {
  const dir = tempDir('vggrpo-eval-');
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} world --out ${dir}/world/geometry --scenes 2 --group-size 2 --dynamic | node ${BIN} decode-geometry --out ${dir}/decoded > /dev/null`,
  ]);
  // The decoded shards' lineage leads to a sibling folder, outside the input folder: allowed by name.
  const refused = await runCli(['eval', join(dir, 'decoded'), '--out', join(dir, 'refused')]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /vggrpo\.inputs\[0\].*outside the allowed folders/);
  const r = await runCli([
    'eval',
    join(dir, 'decoded'),
    '--allow-root',
    dir,
    '--out',
    join(dir, 'report'),
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  const m = res.metrics.decoded;
  assert.ok(m.rotErrDeg < 1, `rotation error ${m.rotErrDeg}°`);
  assert.ok(m.depthRelErr < 0.02, `depth error ${m.depthRelErr}`);
  assert.ok(m.ate < 1e-3, `ATE ${m.ate}`);
  assert.ok(m.sTrans >= 0 && m.sTrans <= 1 && m.sRot >= 0 && m.sRot <= 1);
  assert.ok(m['reward/motion'] >= 0.5 && m['reward/motion'] <= 1);
  assert.ok(m.epipolar === null || (m.epipolar >= 0 && m.epipolar < 5), `epipolar ${m.epipolar}`);
  const html = readFileSync(res.html, 'utf8');
  assert.match(html, /<video src="videos\/decoded-0\.mp4"/);
  assert.ok(existsSync(join(dir, 'report', 'videos', 'decoded-0.mp4')));
  assert.match(html, /ORB features/);
  const json = JSON.parse(readFileSync(res.report, 'utf8'));
  assert.equal(json.summary.rows[0][0], 'decoded');
  // Every mean carries its 95% interval; metrics.csv has one row per video with every metric.
  const cells = json.summary.rows[0].slice(2);
  for (const c of cells.filter((x: unknown) => x !== null))
    assert.ok(c.lo <= c.mean && c.mean <= c.hi, JSON.stringify(c));
  const csv = readFileSync(join(dir, 'report', 'metrics.csv'), 'utf8')
    .trim()
    .split('\n');
  assert.equal(csv.length, 1 + 4, 'header + 2 scenes × 2 videos');
  const head = csv[0]!.split(',');
  for (const k of [
    'set',
    'prompt_index',
    'seed',
    'reward/motion',
    'coverage',
    'epipolar',
    'ate',
    'epipolar_pairs_tried',
  ])
    assert.ok(head.includes(k), `metrics.csv has ${k}`);
  assert.ok(csv.slice(1).every((l) => l.startsWith('decoded,')));
});
