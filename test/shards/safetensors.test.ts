import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { atomicHooks } from '../../src/shards/atomic.js';
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
  writeSafetensorsAsync,
} from '../../src/shards/safetensors.js';
import { fileHash } from '../../src/shards/shard.js';
import { halfToFloat, type Tensor, tensor, toFloat32 } from '../../src/shards/tensor.js';

const REF = new URL('../fixtures/reference.safetensors', import.meta.url).pathname;
const tmp = () => mkdtempSync(join(tmpdir(), 'vggrpo-st-'));

function refTensors(): Record<string, Tensor> {
  return {
    a_f32: tensor(
      'F32',
      [2, 3],
      Float32Array.from([0, 1, 2, 3, 4, 5], (v) => v / 4),
    ),
    b_i64: tensor('I64', [3], BigInt64Array.from([-3n, 0n, 2n ** 40n])),
    c_u8: tensor('U8', [1, 3], Uint8Array.from([1, 2, 255])),
    // IEEE half bits of 1.5, -2, 65504, 2^-24
    d_f16: tensor('F16', [4], Uint16Array.from([0x3e00, 0xc000, 0x7bff, 0x0001])),
    e_bool: tensor('BOOL', [3], Uint8Array.from([1, 0, 1])),
    f_f64: tensor('F64', [1], Float64Array.from([Math.PI])),
    g_i32: tensor('I32', [1, 2], Int32Array.from([7, -7])),
  };
}
const REF_META = { 'vggrpo.kind': 'test', note: 'made by numpy' };

test('reads the file written by an independent NumPy script', () => {
  const { tensors, metadata } = readSafetensors(REF);
  assert.deepEqual(metadata, REF_META);
  assert.deepEqual([...tensors.keys()], Object.keys(refTensors()));
  for (const [name, want] of Object.entries(refTensors())) {
    const got = tensors.get(name)!;
    assert.equal(got.dtype, want.dtype, name);
    assert.deepEqual(got.shape, want.shape, name);
    assert.deepEqual([...got.data], [...want.data], name);
  }
  assert.deepEqual([...toFloat32(tensors.get('d_f16')!)], [1.5, -2, 65504, 2 ** -24]);
});

test('writes the reference layout byte for byte', () => {
  const dir = tmp();
  const out = join(dir, 'x.safetensors');
  writeSafetensors(out, refTensors(), REF_META);
  assert.deepEqual(readFileSync(out), readFileSync(REF));
  // header padded with spaces to a multiple of 8
  const bytes = readFileSync(out);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
});

test('round-trips every dtype and keeps views into one buffer', () => {
  const parts = encodeSafetensors(refTensors(), { k: 'v' });
  const bytes = new Uint8Array(Buffer.concat(parts));
  const { tensors } = parseSafetensors(bytes);
  const a = tensors.get('a_f32')!;
  assert.equal(a.data.buffer, bytes.buffer, 'aligned F32 data is a view, not a copy');
  assert.deepEqual([...tensors.get('b_i64')!.data], [-3n, 0n, 2n ** 40n]);
});

test('misaligned tensors are still read correctly', () => {
  const t = {
    u: tensor('U8', [3], Uint8Array.from([1, 2, 3])),
    f: tensor('F32', [2], Float32Array.from([1.25, -8])),
  };
  const { tensors } = parseSafetensors(new Uint8Array(Buffer.concat(encodeSafetensors(t))));
  assert.deepEqual([...tensors.get('f')!.data], [1.25, -8]);
});

test('halfToFloat decodes specials', () => {
  assert.equal(halfToFloat(0x7c00), Number.POSITIVE_INFINITY);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.equal(halfToFloat(0x8000), -0);
});

function header(obj: unknown, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let json = JSON.stringify(obj);
  if (pad) json += ' '.repeat((8 - (json.length % 8)) % 8);
  const h = Buffer.from(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return new Uint8Array(Buffer.concat([len, h, data]));
}

const bad: [string, () => Uint8Array, RegExp][] = [
  ['empty file', () => new Uint8Array(0), /empty file/],
  ['truncated length', () => new Uint8Array(5), /truncated/],
  ['header longer than file', () => header({}).slice(0, 9), /larger than the file/],
  [
    'header over 100 MB',
    () => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(200_000_000n);
      return new Uint8Array(b);
    },
    /exceeds 100 MB/,
  ],
  [
    'not JSON',
    () => {
      const h = Buffer.from('{nope    ');
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(h.length));
      return new Uint8Array(Buffer.concat([b, h]));
    },
    /not valid JSON/,
  ],
  [
    'not UTF-8',
    () => {
      const h = Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20, 0x20]);
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(8n);
      return new Uint8Array(Buffer.concat([b, h]));
    },
    /UTF-8/,
  ],
  [
    'offsets out of bounds',
    () => header({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
    /out of bounds/,
  ],
  [
    'overlapping offsets',
    () =>
      header(
        {
          x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          y: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        },
        new Uint8Array(8),
      ),
    /overlaps/,
  ],
  ['gap', () => header({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /gap/],
  [
    'trailing bytes',
    () => header({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)),
    /trailing/,
  ],
  [
    'byte length ≠ shape × dtype',
    () => header({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /needs 12/,
  ],
  [
    'unknown dtype',
    () => header({ x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
    /unknown dtype/,
  ],
  [
    'duplicate names',
    () => {
      const json =
        '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
      const h = Buffer.from(json + ' '.repeat((8 - (json.length % 8)) % 8));
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(h.length));
      return new Uint8Array(Buffer.concat([b, h, Buffer.from([1])]));
    },
    /duplicate/,
  ],
  ['negative shape', () => header({ x: { dtype: 'U8', shape: [-1], data_offsets: [0, 0] } }), /shape/],
  ['metadata not strings', () => header({ __metadata__: { a: 1 } }), /not a string/],
  ['header is an array', () => header([1, 2]), /not a JSON object/],
];

for (const [name, make, msg] of bad) {
  test(`bad input: ${name} → InputError naming the file`, () => {
    const dir = tmp();
    const p = join(dir, 'bad.safetensors');
    writeFileSync(p, make());
    assert.throws(
      () => readSafetensors(p),
      (e: unknown) =>
        e instanceof InputError && e.exitCode === 2 && e.message.startsWith(p) && msg.test(e.message),
    );
  });
}

test('a directory or a missing file is an InputError', () => {
  const dir = tmp();
  assert.throws(() => readSafetensors(dir), /is a directory/);
  assert.throws(() => readSafetensors(join(dir, 'none.safetensors')), /cannot open \(ENOENT\)/);
});

test('a writer killed between write and rename leaves no file at the target', () => {
  const dir = tmp();
  mkdirSync(join(dir, 'o'));
  const out = join(dir, 'o', 'a.safetensors');
  atomicHooks.beforeRename = () => {
    throw new Error('killed');
  };
  try {
    assert.throws(() => writeSafetensors(out, refTensors()), /killed/);
  } finally {
    atomicHooks.beforeRename = undefined;
  }
  assert.deepEqual(readdirSync(join(dir, 'o')), []);
});

test('the asynchronous writer writes the same bytes; killed before the rename it leaves nothing', async () => {
  const dir = tmp();
  const sync = join(dir, 'sync.safetensors');
  const later = join(dir, 'async.safetensors');
  const meta = { 'vggrpo.kind': 'rewards' };
  writeSafetensors(sync, refTensors(), meta);
  await writeSafetensorsAsync(later, refTensors(), meta);
  assert.deepEqual(readFileSync(later), readFileSync(sync));
  mkdirSync(join(dir, 'o'));
  atomicHooks.beforeRename = () => {
    throw new Error('killed');
  };
  try {
    await assert.rejects(writeSafetensorsAsync(join(dir, 'o', 'a.safetensors'), refTensors()), /killed/);
  } finally {
    atomicHooks.beforeRename = undefined;
  }
  assert.deepEqual(readdirSync(join(dir, 'o')), []);
});

test('fileHash = sha256 of the whole file: empty, smaller than a chunk, and over 8 MB', () => {
  const dir = tmp();
  for (const [name, n] of [
    ['empty', 0],
    ['small', 3],
    ['big', (8 << 20) + 5],
  ] as const) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24);
    const path = join(dir, name);
    writeFileSync(path, bytes);
    assert.equal(fileHash(path), createHash('sha256').update(bytes).digest('hex'), name);
  }
});
