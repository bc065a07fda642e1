/**
 * Lineage metadata (`vggrpo.inputs`, `vggrpo.shard`, `vggrpo.covers`) is data a user's tool may
 * write badly: any value either parses or is a one-line InputError naming the file, and a
 * path that parses is only ever opened if it is a regular file under an allowed root.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { shardPlaces } from '../../src/shards/completeness.js';
import { followInput, LineageRoots } from '../../src/shards/lineage.js';
import { readShard, writeShard } from '../../src/shards/shard.js';
import { f32, i64 } from '../../src/shards/tensor.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-lineage-');
mkdirSync(join(dir, 'run', 'rewards'), { recursive: true });
const target = join(dir, 'run', 'geometry.bin');
writeFileSync(target, 'not a shard');

const tensors = {
  group_index: i64([2], [0, 0]),
  prompt_index: i64([2], [0, 0]),
  reward: f32([2], [0, 1]),
  advantages: f32([2], [-1, 1]),
};

const jsonish = fc.oneof(
  fc.json(),
  fc.string(),
  fc.constantFrom(
    '[{"path":"/dev/zero","sha256":"' + '0'.repeat(64) + '"}]',
    '[{"path":"../../../../etc/passwd","sha256":"' + 'a'.repeat(64) + '"}]',
    '[{"path":"../geometry.bin","sha256":"' + 'b'.repeat(64) + '"}]',
    '[{"path":"","sha256":"x"}]',
    '{"run":"r","index":3,"count":2}',
    '{"run":"r","index":-1,"count":2}',
    '[{"run":"r","index":0,"count":1}]',
    '{"run":"","index":0,"count":1,"extra":1}',
  ),
);

test('any lineage metadata parses or is a one-line InputError; nothing outside the roots is opened', () => {
  let n = 0;
  fc.assert(
    fc.property(jsonish, jsonish, jsonish, (inputs, shard, covers) => {
      const p = join(dir, 'run', 'rewards', `f${n++ % 8}.safetensors`);
      writeShard(p, 'rewards', tensors, {
        config: {},
        extra: { 'vggrpo.inputs': inputs, 'vggrpo.shard': shard, 'vggrpo.covers': covers },
      });
      try {
        const s = readShard(p, 'rewards');
        shardPlaces(s.metadata, p);
        // Roots: only the rewards folder, so ../geometry.bin is refused too.
        followInput(s, 0, 'geometry', new LineageRoots([], join(dir, 'run', 'rewards')));
        assert.fail('no input here is a valid geometry shard');
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        assert.ok(!err.message.includes('\n'), err.message);
        assert.ok(err.message.startsWith(p), err.message);
      }
    }),
    { numRuns: 400 },
  );
});
