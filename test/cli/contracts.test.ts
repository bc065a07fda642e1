/**
 * Contracts checked before any model runs, each fault one line naming the shard, flag, key or
 * model: latent channels against the geometry model, a wrong or empty denoiser, an adapter
 * whose lora_alpha differs from the config, unknown reward options in `sample`, `--shape` sizes,
 * and metrics.jsonl written only once the checkpoint it describes is in place.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { checkpointHooks } from '../../src/rl/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../../src/shards/safetensors.js';
import { runGrpoStep } from '../../src/stages/grpo-step.js';
import { oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-contracts-');
const prompts = join(dir, 'p.txt');
writeFileSync(prompts, 'orbit around the red box\n');
const small = ['--group-size', '2', '--steps', '3', '--threads', '1'];
test('latents whose channels do not fit the geometry model: exit 2 naming shard, tensor and model', async () => {
  const w = await runCli(['world', '--scenes', '1', '--group-size', '2', '--out', join(dir, 'w', 'world')]);
  assert.equal(w.code, 0, w.stderr);
  const f = readSafetensors(w.stdout.trim());
  const lat = f.tensors.get('final_latents')!;
  const [B, C, ...rest] = lat.shape as [number, number, ...number[]];
  const per = rest.reduce((a, b) => a * b, 1);
  f.tensors.set('final_latents', {
    dtype: 'F32',
    shape: [B, C - 1, ...rest],
    data: new Float32Array(B * (C - 1) * per),
  });
  const p = join(dir, 'w', 'bad', 'c.safetensors');
  mkdirSync(join(dir, 'w', 'bad'), { recursive: true });
  writeSafetensors(p, f.tensors, f.metadata);
  const r = await runCli(['decode-geometry', p, '--out', join(dir, 'w', 'geometry')]);
  assert.equal(r.code, 2, r.stderr);
  oneLine(r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `c\\.safetensors: tensor 'final_latents' is \\[${B}, ${C - 1}, .*lgm\\.onnx input 'latents' takes \\[B, ${C}, `,
    ),
  );
});

test('a wrong or empty denoiser is named as such, not blamed on LoRA targets', async () => {
  const empty = join(dir, 'empty.onnx');
  writeFileSync(empty, '');
  const cfg = join(dir, 'den.yaml');
  for (const model of [empty, join(ROOT, 'onnx/fixtures/lgm.onnx')]) {
    writeFileSync(cfg, `models:\n  denoiser: ${model}\n`);
    const r = await runCli([
      'sample',
      '--config',
      cfg,
      '--prompts',
      prompts,
      ...small,
      '--out',
      join(dir, 'den'),
    ]);
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr);
    assert.match(r.stderr, /not a denoiser: no inputs? .*'timestep'/);
    assert.doesNotMatch(r.stderr, /lora\.targets/);
  }
});

test('sample refuses a bad reward option instead of recording it', async () => {
  const cfg = join(dir, 'rew.yaml');
  writeFileSync(cfg, 'rewards:\n  motion:\n    weight: 1\n    options:\n      epss: 1\n');
  const r = await runCli([
    'sample',
    '--config',
    cfg,
    '--prompts',
    prompts,
    ...small,
    '--out',
    join(dir, 'rew'),
  ]);
  assert.equal(r.code, 2, r.stderr);
  oneLine(r.stderr);
  assert.match(r.stderr, /rew\.yaml: .*rewards\.motion\.options\.epss.*unknown option/);
  assert.ok(!existsSync(join(dir, 'rew')));
});

test('--shape beyond any allocation, --out under a file: exit 2 naming the flag', async () => {
  const s = await runCli([
    'onnx',
    'grad',
    join(ROOT, 'onnx/fixtures/denoiser.onnx'),
    '--out',
    join(dir, 'g.onnx'),
    '--shape',
    'B=100000000000',
  ]);
  assert.equal(s.code, 2, s.stderr);
  assert.match(s.stderr, /^vggrpo onnx grad: --shape B=100000000000: too large/);
  writeFileSync(join(dir, 'plain'), 'x');
  const o = await runCli(['sample', '--prompts', prompts, ...small, '--out', join(dir, 'plain', 'sub')]);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /^vggrpo sample: --out: .*a folder on its path is an existing file\n$/);
});

test('an adapter whose lora_alpha differs from the config, and metrics.jsonl only after the checkpoint', async () => {
  const run = join(dir, 'run');
  const s = await runCli(['sample', '--prompts', prompts, ...small, '--out', join(run, 'trajectory')]);
  assert.equal(s.code, 0, s.stderr);
  const g = await runCli(['decode-geometry', s.stdout.trim()]);
  const r = await runCli(['score', g.stdout.trim()]);
  assert.equal(r.code, 0, r.stderr);
  const rewards = r.stdout.trim();
  const p = await runCli(['grpo-step', rewards, '--out', join(run, 'policy')]);
  assert.equal(p.code, 0, p.stderr);
  // An adapter edited to another α is refused against the config's lora.alpha.
  const other = join(run, 'policy-alpha');
  cpSync(join(run, 'policy'), other, { recursive: true });
  const cfgFile = join(other, 'adapter_config.json');
  const ac = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...ac, lora_alpha: ac.lora_alpha * 2 }));
  const a = await runCli([
    'sample',
    '--prompts',
    prompts,
    ...small,
    '--policy',
    other,
    '--out',
    join(run, 'next'),
  ]);
  assert.equal(a.code, 2, a.stderr);
  oneLine(a.stderr);
  assert.match(a.stderr, /adapter_config\.json: lora_alpha \d+ differs from lora\.alpha \d+ in the config/);
  // A checkpoint that fails to land leaves no metrics line describing it.
  const metrics = join(run, 'fail', 'metrics.jsonl');
  checkpointHooks.beforeRename = () => {
    throw new Error('disk full');
  };
  try {
    await assert.rejects(
      runGrpoStep(
        (async function* () {
          yield rewards;
        })(),
        { out: join(run, 'fail', 'policy'), gradsOnly: false, apply: false },
        (recorded) => resolveConfig([recorded ?? {}]),
        { emit: () => {}, note: () => {} },
      ),
      /disk full/,
    );
  } finally {
    checkpointHooks.beforeRename = undefined;
  }
  assert.ok(!existsSync(metrics), 'no metrics line for a checkpoint that does not exist');
  assert.ok(existsSync(join(run, 'metrics.jsonl')), 'the successful step wrote its line');
});
