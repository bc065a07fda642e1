/**
 * `sample --part I/N`: the parts of a run together write exactly the shards one process writes
 * (same bytes: global prompt indices, seeds, shard indices and run id), so a job array can
 * split a prompts file without changing what is sampled.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { runCli, tempDir } from '../helpers.js';

test('three parts write byte for byte the shards of one process; a bad --part is exit 2', async () => {
  const dir = tempDir('vggrpo-parts-');
  const prompts = join(dir, 'p.txt');
  writeFileSync(prompts, ['orbit the box', 'dolly in', 'pan left', 'arc over', 'orbit again'].join('\n'));
  const common = [
    '--prompts',
    prompts,
    '--group-size',
    '2',
    '--steps',
    '3',
    '--per-shard',
    '1',
    '--threads',
    '1',
  ];
  const one = await runCli(['sample', ...common, '--out', join(dir, 'one')]);
  assert.equal(one.code, 0, one.stderr);
  const parts: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await runCli(['sample', ...common, '--part', `${i}/3`, '--out', join(dir, 'split')]);
    assert.equal(r.code, 0, r.stderr);
    parts.push(...r.stdout.trim().split('\n').filter(Boolean));
  }
  assert.equal(parts.length, 5, 'five shards over the three parts');
  const names = readdirSync(join(dir, 'one')).sort();
  assert.deepEqual(readdirSync(join(dir, 'split')).sort(), names);
  for (const n of names)
    assert.ok(readFileSync(join(dir, 'one', n)).equals(readFileSync(join(dir, 'split', n))), `${n} differs`);
  // Where a part runs (threads, device) does not change which run it belongs to.
  const other = await runCli([
    'sample',
    ...common.slice(0, -2),
    '--threads',
    '2',
    '--part',
    '1/3',
    '--out',
    join(dir, 'threads'),
  ]);
  assert.equal(other.code, 0, other.stderr);
  const runOf = (p: string) =>
    JSON.parse(readSafetensors(p, { select: () => false }).metadata['vggrpo.shard'] ?? '{}').run;
  assert.equal(runOf(other.stdout.trim().split('\n')[0]!), runOf(join(dir, 'one', names[0]!)));
  for (const bad of ['3/3', '1', 'a/b', '0/0']) {
    const r = await runCli(['sample', ...common, '--part', bad, '--out', join(dir, 'bad')]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /^vggrpo sample: --part: expected I\/N/);
  }
});
