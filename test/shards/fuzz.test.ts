import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { encodeSafetensors, parseSafetensors, readSafetensors } from '../../src/shards/safetensors.js';
import { tensor } from '../../src/shards/tensor.js';
import { tempDir } from '../helpers.js';

const valid = new Uint8Array(
  Buffer.concat(
    encodeSafetensors(
      {
        depth: tensor('F32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])),
        group_index: tensor('I64', [2], BigInt64Array.from([0n, 1n])),
        mask: tensor('BOOL', [3], Uint8Array.from([1, 0, 1])),
      },
      { 'vggrpo.kind': 'geometry' },
    ),
  ),
);

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; count: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
);

function apply(bytes: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = Array.from(bytes);
  for (const m of muts) {
    const at = b.length ? m.at % (b.length + 1) : 0;
    if (m.kind === 'flip' && b.length) b[at % b.length] = m.value;
    else if (m.kind === 'truncate') b = b.slice(0, at);
    else if (m.kind === 'insert') b.splice(at, 0, ...m.bytes);
    else if (m.kind === 'delete') b.splice(at, m.count);
  }
  return Uint8Array.from(b);
}

test('mutated shards either parse to a consistent file or fail with one InputError line', () => {
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
      const bytes = apply(valid, muts);
      try {
        const { tensors } = parseSafetensors(bytes, 'fuzz.safetensors');
        // Accepted: every tensor must lie inside the file, so nothing was invented.
        let total = 0;
        for (const t of tensors.values()) total += t.data.byteLength;
        assert.ok(total <= bytes.length);
      } catch (e) {
        assert.ok(e instanceof InputError, `not an InputError: ${(e as Error)?.stack}`);
        assert.equal(e.exitCode, 2);
        assert.ok(!e.message.includes('\n'), 'one line');
        assert.ok(e.message.startsWith('fuzz.safetensors: '));
      }
    }),
    { numRuns: 3000, seed: 42 },
  );
});

test('header-length field fuzz: any 64-bit value is handled without allocating it', () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (len) => {
      const b = Uint8Array.from(valid);
      new DataView(b.buffer).setBigUint64(0, len, true);
      try {
        parseSafetensors(b, 'f');
      } catch (e) {
        assert.ok(e instanceof InputError);
      }
    }),
    { numRuns: 1000, seed: 7 },
  );
});

test('the file reader (tensor by tensor at offsets) agrees with the in-memory parser on mutated shards', () => {
  const dir = tempDir('vggrpo-fuzz-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'fuzz.safetensors');
  const outcome = (read: () => ReturnType<typeof parseSafetensors>) => {
    try {
      const { tensors, metadata } = read();
      // Views into one buffer and buffers of their own differ in type only: compare bytes.
      const bytes = (d: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
        Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
      return { metadata, tensors: [...tensors].map(([k, t]) => [k, t.dtype, t.shape, bytes(t.data)]) };
    } catch (e) {
      assert.ok(e instanceof InputError, `not an InputError: ${(e as Error)?.stack}`);
      return { error: e.fault };
    }
  };
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
      const bytes = apply(valid, muts);
      writeFileSync(path, bytes);
      const mem = outcome(() => parseSafetensors(bytes, path));
      const file = outcome(() => readSafetensors(path));
      assert.deepEqual(file, mem);
    }),
    { numRuns: 500, seed: 43 },
  );
});
