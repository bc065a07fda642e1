/**
 * `sample --reward-guidance` through the CLI: every bad value is exit 2 naming its flag (or the
 * config key, or the geometry model), a guided run records `vggrpo.reward_guidance` and its
 * rollouts are refused by `grpo-step` with the reason.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel, saveModel } from '../../src/onnx/model.js';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-guidance-');
const prompts = join(dir, 'p.txt');
writeFileSync(prompts, 'orbit around the red box\n');
const small = ['--prompts', prompts, '--group-size', '2', '--steps', '3', '--threads', '1'];
async function refused(args: string[], pattern: RegExp): Promise<void> {
  const r = await runCli(['sample', ...small, '--out', join(dir, 'never'), ...args]);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  oneLine(r.stderr);
  assert.match(r.stderr, pattern, args.join(' '));
}

test('bad scale, K, reward or cap: exit 2 naming the flag', async () => {
  for (const s of ['0', '-2', 'abc'])
    await refused(['--reward-guidance', s], /^vggrpo sample: --reward-guidance: expected a number > 0/);
  for (const k of ['0', '1.5'])
    await refused(
      ['--reward-guidance', '1', '--reward-guidance-every', k],
      /^vggrpo sample: --reward-guidance-every: expected an integer ≥ 1/,
    );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-reward', 'rgb'],
    /--reward-guidance-reward: expected motion, reprojection or both/,
  );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-factor-cap', '0'],
    /--reward-guidance-factor-cap: expected a number > 0/,
  );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-steps', '1-2'],
    /--reward-guidance-steps: expected START:END/,
  );
  await refused(
    ['--reward-guidance-every', '2', '--reward-guidance-through', 'denoiser'],
    /^vggrpo sample: --reward-guidance: not set: the --reward-guidance-\* flags need a scale/,
  );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-through', 'rgb'],
    /--reward-guidance-through: expected x0_hat or denoiser/,
  );
});

test('a guided step outside the schedule, or at σ = 1 without a cap: exit 2 naming --reward-guidance-steps', async () => {
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-steps', '1:4'],
    /--reward-guidance-steps \(sampler\.reward_guidance\.steps\): '1:4' is not a window .* of 3 steps/,
  );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-steps', '2:2'],
    /--reward-guidance-steps.*'2:2' is not a window/,
  );
  await refused(
    ['--reward-guidance', '1', '--reward-guidance-steps', '0:2'],
    /--reward-guidance-steps.*step 0 has σ = 1.*--reward-guidance-factor-cap/,
  );
});

test('a config key fault names the key', async () => {
  const cfg = join(dir, 'bad.yaml');
  writeFileSync(cfg, 'sampler:\n  reward_guidance:\n    scale: -1\n');
  const r = await runCli(['sample', ...small, '--config', cfg, '--out', join(dir, 'never')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /sampler\.reward_guidance\.scale/);
  writeFileSync(cfg, 'sampler:\n  reward_guidance:\n    scale: 1\n    evry: 2\n');
  const u = await runCli(['sample', ...small, '--config', cfg, '--out', join(dir, 'never')]);
  assert.equal(u.code, 2, u.stderr);
  assert.match(u.stderr, /unknown config key sampler\.reward_guidance\.evry/);
});

test('a geometry model without the outputs the chosen reward needs: exit 2 naming the model and the output', async () => {
  const m = loadModel(join(ROOT, 'onnx/fixtures/lgm.onnx'));
  m.graph!.output = m.graph!.output!.filter((o) => o.name !== 'world_points');
  const lgm = join(dir, 'lgm-no-points.onnx');
  saveModel(m, lgm);
  const cfg = join(dir, 'lgm.yaml');
  writeFileSync(cfg, `models:\n  lgm: ${lgm}\n`);
  const args = ['--config', cfg, '--reward-guidance', '1', '--reward-guidance-reward'];
  await refused(
    [...args, 'reprojection'],
    /lgm-no-points\.onnx: geometry model has no output 'world_points' \(lgm_outputs\.points\), which --reward-guidance-reward reprojection needs/,
  );
  await refused([...args, 'both'], /lgm-no-points\.onnx: .*'world_points'/);
  // Camera smoothness reads only the cameras: the same model guides by motion.
  const ok = await runCli([
    'sample',
    ...small,
    ...args,
    'motion',
    '--ode',
    '--out',
    join(dir, 'motion-only'),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('guided reprojection with a per-frame intrinsics output: exit 2 naming the key (it reads K from the pose encoding)', async () => {
  const cfg = join(dir, 'k.yaml');
  writeFileSync(cfg, 'lgm_outputs:\n  intrinsics_output: intrinsics\n');
  await refused(
    ['--config', cfg, '--reward-guidance', '1', '--reward-guidance-reward', 'reprojection'],
    /^vggrpo sample: lgm_outputs\.intrinsics_output: reward guidance with reprojection takes intrinsics from the VGGT pose encoding/,
  );
});

test('a guided run records vggrpo.reward_guidance; grpo-step refuses its rollouts with the reason', async () => {
  const run = join(dir, 'run');
  const s = await runCli([
    'sample',
    ...small,
    '--reward-guidance',
    '20',
    '--reward-guidance-every',
    '2',
    '--out',
    join(run, 'trajectory'),
  ]);
  assert.equal(s.code, 0, s.stderr);
  const shard = s.stdout.trim();
  const rec = JSON.parse(readSafetensors(shard).metadata['vggrpo.reward_guidance']!);
  assert.deepEqual(
    { scale: rec.scale, every: rec.every, guided: rec.guided, reward: rec.reward, through: rec.through },
    { scale: 20, every: 2, guided: [1], reward: 'motion', through: 'x0_hat' },
  );
  const g = await runCli(['decode-geometry', shard]);
  assert.equal(g.code, 0, g.stderr);
  const r = await runCli(['score', g.stdout.trim()]);
  assert.equal(r.code, 0, r.stderr);
  const p = await runCli(['grpo-step', r.stdout.trim(), '--out', join(run, 'policy')]);
  assert.equal(p.code, 2, p.stderr);
  oneLine(p.stderr);
  assert.match(
    p.stderr,
    /trajectory.*shard-0000\.safetensors: was sampled with test-time reward guidance .*not samples of the policy/,
  );
});
