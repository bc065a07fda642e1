import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { encodeSafetensors, parseSafetensors } from '../../src/shards/safetensors.js';
import { tensor } from '../../src/shards/tensor.js';

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
