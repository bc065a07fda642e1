import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeShard } from '../../src/shards/shard.js';
import { f32, i64 } from '../../src/shards/tensor.js';
import { oneLine, runCli, tempDir } from '../helpers.js';

test('--help lists the five stages and inspect', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  for (const c of ['sample', 'decode-geometry', 'score', 'grpo-step', 'eval', 'inspect'])
    assert.match(r.stdout, new RegExp(`\\n  ${c} `));
});

test('inspect prints kind, metadata and tensor statistics; --json gives one summary', async () => {
  const dir = tempDir();
  const p = join(dir, 'r.safetensors');
  writeShard(
    p,
    'rewards',
    {
      group_index: i64([3], [0, 0, 0]),
      prompt_index: i64([3], [0, 0, 0]),
      reward: f32([3], [0.5, 1, Number.NaN]),
      advantages: f32([3], [-1, 1, 0]),
    },
    { config: { a: 1 } },
  );
  const r = await runCli(['inspect', p]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /kind: rewards/);
  assert.match(r.stdout, /reward\s+F32\s+\[3\]\s+min 0\.5000\s+max 1\.0000\s+mean 0\.7500\s+NaN 1/);
  const j = await runCli(['inspect', p, '--json']);
  const s = JSON.parse(j.stdout);
  assert.equal(s.files[0].kind, 'rewards');
  assert.equal(s.files[0].tensors.find((t: { name: string }) => t.name === 'advantages').mean, 0);
});

test('inspect reads paths from stdin when given none', async () => {
  const dir = tempDir();
  const p = join(dir, 'g.safetensors');
  writeShard(
    p,
    'rewards',
    {
      group_index: i64([1], [0]),
      prompt_index: i64([1], [0]),
      reward: f32([1], [1]),
      advantages: f32([1], [0]),
    },
    { config: {} },
  );
  const r = await runCli(['inspect'], { input: `${p}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(p.replace(/[.]/g, '\\.')));
});

test('bad input exits 2 with one line naming the file', async () => {
  const dir = tempDir();
  const trunc = join(dir, 'trunc.safetensors');
  writeFileSync(trunc, Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
  const r = await runCli(['inspect', trunc]);
  assert.equal(r.code, 2);
  oneLine(r.stderr);
  assert.match(r.stderr, /trunc\.safetensors: truncated/);
  const d = await runCli(['inspect', dir]);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /is a directory/);
  const m = await runCli(['inspect', join(dir, 'missing.onnx')]);
  assert.equal(m.code, 2);
  assert.match(m.stderr, /missing\.onnx: not found/);
});

test('a config with a typo’d key exits 2 naming the key path', async () => {
  const dir = tempDir();
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(cfg, 'sampler:\n  stpes: 10\n');
  const r = await runCli(['sample', '--config', cfg, '--prompts', cfg]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /exp\.yaml: unknown config key sampler\.stpes/);
  writeFileSync(cfg, 'grpo:\n  lr: fast\n');
  const t = await runCli(['sample', '--config', cfg]);
  assert.equal(t.code, 2);
  assert.match(t.stderr, /config key grpo\.lr/);
});

test('unknown flags and malformed numbers are usage errors (exit 2)', async () => {
  const r = await runCli(['score', '--no-such-flag']);
  assert.equal(r.code, 2);
  const n = await runCli(['grpo-step', '--lr', 'abc']);
  assert.equal(n.code, 2);
  assert.match(n.stderr, /--lr: expected a number/);
});

test('a wrong shard kind exits 2 naming file and expectation', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'rewards'));
  const p = join(dir, 'rewards', 'r.safetensors');
  writeShard(
    p,
    'rewards',
    {
      group_index: i64([1], [0]),
      prompt_index: i64([1], [0]),
      reward: f32([1], [1]),
      advantages: f32([1], [0]),
    },
    { config: {} },
  );
  const { readShard } = await import('../../src/shards/shard.js');
  assert.throws(() => readShard(p, 'geometry'), /is a rewards shard; expected geometry/);
});
