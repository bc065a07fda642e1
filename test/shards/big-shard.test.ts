/**
 * Shards of any size: a 4 GiB + 2 MiB safetensors file (sparse: written here by hand with
 * positioned writes, so it costs no disk) is read tensor by tensor at offsets past 2^32, and a
 * file over 2 GiB is hashed in chunks, checked against coreutils' sha256sum; writers stream
 * ranges of other files chunk by chunk, leaving their holes as holes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { atomicWrite } from '../../src/shards/atomic.js';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { fileHash } from '../../src/shards/shard.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-bigshard-');
after(() => rmSync(dir, { recursive: true, force: true }));

const PAD = 2 ** 32 + 2 ** 20;
const head = Float32Array.of(1.5, -2, 3.25, 4);
const tail = Float32Array.of(-7, 0.125, 9, 1e-3, 42, -0.5);

/** Header + `head` [4] F32 + `pad` U8 [PAD] (a hole) + `tail` [6] F32 at data offset 16 + PAD. */
function writeSparseShard(path: string): number {
  const header = {
    __metadata__: { 'vggrpo.kind': 'test' },
    head: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
    pad: { dtype: 'U8', shape: [PAD], data_offsets: [16, 16 + PAD] },
    tail: { dtype: 'F32', shape: [6], data_offsets: [16 + PAD, 16 + PAD + 24] },
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const start = 8 + json.length;
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, json, 0, json.length, 8);
    writeSync(fd, new Uint8Array(head.buffer), 0, 16, start);
    writeSync(fd, new Uint8Array(tail.buffer), 0, 24, start + 16 + PAD);
    ftruncateSync(fd, start + 16 + PAD + 24);
  } finally {
    closeSync(fd);
  }
  return start + 16 + PAD + 24;
}

test('a > 4 GiB shard: tensors past offset 2^32 read into their own buffers, an oversized one refused', () => {
  const path = join(dir, 'big.safetensors');
  const size = writeSparseShard(path);
  assert.ok(statSync(path).size === size && size > 2 ** 32);
  const { tensors, metadata } = readSafetensors(path, { select: (n) => n !== 'pad' });
  assert.deepEqual(metadata, { 'vggrpo.kind': 'test' });
  assert.deepEqual([...tensors.keys()].sort(), ['head', 'tail']);
  assert.deepEqual(tensors.get('head')!.data, head);
  assert.deepEqual(tensors.get('tail')!.data, tail);
  assert.equal(tensors.get('tail')!.data.byteLength, 24, 'a buffer of its own, not a view into the file');
  assert.equal((tensors.get('tail')!.data.buffer as ArrayBuffer).byteLength, 24);
  // `pad` alone is over one buffer's 4 GiB: one line naming the file and the tensor, nothing allocated.
  assert.throws(
    () => readSafetensors(path),
    (e: unknown) =>
      e instanceof InputError &&
      e.message === `${path}: tensor 'pad': ${PAD} bytes is more than one buffer can hold`,
  );
});

test('fileHash streams a file over 2 GiB (readFileSync refuses it) and agrees with sha256sum', () => {
  const path = join(dir, 'two-gib.bin');
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('start'), 0, 5, 0);
  writeSync(fd, Buffer.from('end'), 0, 3, 2 ** 31 + 7);
  closeSync(fd);
  const expected = execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];
  assert.equal(fileHash(path), expected);
});

test('atomicWrite streams file ranges chunk by chunk and keeps a sparse source sparse', () => {
  const src = join(dir, 'sparse.bin');
  const size = 64 << 20;
  const fd = openSync(src, 'w');
  writeSync(fd, Buffer.from('head'), 0, 4, 3);
  writeSync(fd, Buffer.from('tail'), 0, 4, size - 9);
  ftruncateSync(fd, size);
  closeSync(fd);
  const dst = join(dir, 'copy.bin');
  atomicWrite(dst, [Buffer.from('<'), { file: src, offset: 1, length: size - 2 }, Buffer.from('>')]);
  const want = Buffer.concat([Buffer.from('<'), readFileSync(src).subarray(1, size - 1), Buffer.from('>')]);
  assert.ok(readFileSync(dst).equals(want));
  assert.ok(statSync(dst).blocks * 512 < 1 << 20, `${statSync(dst).blocks * 512} bytes allocated`);
});
