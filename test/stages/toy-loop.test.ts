/**
 * The toy experiment's plumbing, at a tiny setting on the demo's models (examples/toy/config.yaml:
 * the learned world): two iterations of the Makefile's loop (sample → decode-geometry → score →
 * grpo-step), then its evaluation. Checks the checkpoints, ratio 1 on the first inner step, a
 * finite loss, the recorded rewards, resuming and the report.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeLayers, readConfigFile } from '../../src/config/load.js';
import { Config } from '../../src/config/schema.js';
import { readShard } from '../../src/shards/shard.js';
import { ROOT, tempDir } from '../helpers.js';

test('two iterations of the toy loop through make, then eval', { timeout: 600_000 }, () => {
  const dir = tempDir('vggrpo-loop-');
  const cfg = join(dir, 'tiny.yaml');
  const demo = Config.parse(mergeLayers([readConfigFile(join(ROOT, 'examples/toy/config.yaml'))]));
  const models = Object.entries(demo.models).filter(([, v]) => typeof v === 'string');
  writeFileSync(
    cfg,
    [
      'models:',
      ...models.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
      'sampler:',
      '  steps: 3',
      '  group_size: 2',
      '  per_shard: 2',
      'lora:',
      '  rank: 2',
      '  alpha: 4',
      '  targets: ["*attn.q.weight"]',
      'eval:',
      '  videos: 1',
      `  judge: ${JSON.stringify(demo.eval.judge)}`,
      '  judge_outputs:',
      '    frames_size: [64, 64]',
      '',
    ].join('\n'),
  );
  const prompts = join(dir, 'p.txt');
  writeFileSync(prompts, 'orbit around the red box\npan across the room\n');
  const held = join(dir, 'h.txt');
  writeFileSync(held, 'dolly toward the green box\n');
  const run = join(dir, 'run');
  const make = (target: string) =>
    execFileSync(
      'make',
      [
        '-s',
        '-C',
        join(ROOT, 'examples/toy'),
        target,
        'K=2',
        `RUN=${run}`,
        `CONFIG=${cfg}`,
        `PROMPTS=${prompts}`,
        `HELDOUT=${held}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  make('train');
  for (const it of ['iter-0000', 'iter-0001']) {
    for (const f of [
      'adapter_model.safetensors',
      'adapter_config.json',
      'optimizer.safetensors',
      'state.json',
    ]) {
      assert.ok(existsSync(join(run, it, 'policy', f)), `${it}/policy/${f}`);
    }
    const m = JSON.parse(
      readFileSync(join(run, it, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .at(-1)!,
    );
    assert.ok(Number.isFinite(m.loss), `${it}: loss ${m.loss}`);
    assert.ok(Math.abs(m.ratio_min - 1) <= 1e-5 && Math.abs(m.ratio_max - 1) <= 1e-5, `${it}: ratio`);
    // The learned world's latents: the toy VAE's 8 channels of 16×16 per frame.
    const traj = readShard(join(run, it, 'trajectory', 'shard-0000.safetensors'), 'trajectory');
    assert.deepEqual(traj.tensors.get('final_latents')!.shape.slice(1), [8, 8, 16, 16]);
    const r = readShard(join(run, it, 'rewards', 'shard-0000.safetensors'), 'rewards');
    for (const k of ['reward/motion', 'reward/reprojection', 'advantages']) {
      assert.ok((r.tensors.get(k)!.data as Float32Array).every(Number.isFinite), `${it}: ${k}`);
    }
  }
  assert.equal(JSON.parse(readFileSync(join(run, 'iter-0001', 'policy', 'state.json'), 'utf8')).step, 2);

  // An interrupted iteration (no complete checkpoint) is redone; finished ones are kept.
  const kept = readFileSync(join(run, 'iter-0000', 'policy', 'adapter_model.safetensors'));
  rmSync(join(run, 'iter-0001', 'policy'), { recursive: true });
  make('train');
  assert.ok(existsSync(join(run, 'iter-0001', 'policy', 'state.json')));
  assert.deepEqual(readFileSync(join(run, 'iter-0000', 'policy', 'adapter_model.safetensors')), kept);

  make('eval');
  const report = JSON.parse(readFileSync(join(run, 'report', 'report.json'), 'utf8'));
  for (const set of [
    'base-train',
    'base-heldout',
    'final-train',
    'final-heldout',
    'iter-0000',
    'iter-0001',
  ]) {
    assert.ok(report.meta.metrics[set], `report has ${set}`);
  }
  assert.ok(existsSync(join(run, 'report', 'report.html')));
  // The evaluation opened a blind A/B rating session; the report links to it.
  const rating = report.sections.find((x: { title: string }) => x.title === 'Blind A/B rating');
  assert.equal(rating.links.length, 1);
  assert.match(rating.links[0].href, /^http:\/\/127\.0\.0\.1:8765\/r\/\w+/);
});
