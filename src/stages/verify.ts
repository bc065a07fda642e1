/**
 * `inspect --verify`: is an existing output still good? A shard verifies when it reads whole
 * (header, schema, finite values) and each input its lineage names is still there with the
 * recorded content hash; a policy folder verifies when its checkpoint loads. Job scripts use
 * this to skip a task whose output is already done (examples/slurm/).
 */
import { statSync } from 'node:fs';
import { loadCheckpoint } from '../rl/checkpoint.js';
import { checkedInput, type LineageRoots } from '../shards/lineage.js';
import type { ShardKind } from '../shards/schema.js';
import { readShard } from '../shards/shard.js';

const KINDS: ShardKind[] = ['trajectory', 'geometry', 'rewards', 'gradients', 'embeddings'];

/** Throws an InputError naming the file and the fault; returns what was checked. */
export function verifyOutput(path: string, roots: LineageRoots): { kind: string; inputs: number } {
  if (statSync(path).isDirectory()) {
    loadCheckpoint(path);
    return { kind: 'policy', inputs: 0 };
  }
  const shard = readShard(path, KINDS);
  for (let k = 0; k < shard.recordedInputs.length; k++) checkedInput(shard, k, roots);
  return { kind: shard.kind, inputs: shard.recordedInputs.length };
}
