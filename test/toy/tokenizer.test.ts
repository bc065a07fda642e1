import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BOS_ID, BYTE_OFFSET, PAD_ID, tokenize, tokenizeBatch, VOCAB_SIZE } from '../../src/toy/tokenizer.js';

const nums = (a: BigInt64Array | ArrayLike<bigint>) => Array.from(a as ArrayLike<bigint>, Number);

test('tokenize: BOS, UTF-8 bytes shifted by the offset, zero padding', () => {
  // 'a' = 0x61 = 97; 'é' = C3 A9 in UTF-8.
  assert.deepEqual(nums(tokenize('a', 5)), [BOS_ID, 97 + BYTE_OFFSET, PAD_ID, PAD_ID, PAD_ID]);
  assert.deepEqual(nums(tokenize('é', 4)), [BOS_ID, 0xc3 + BYTE_OFFSET, 0xa9 + BYTE_OFFSET, 0]);
  assert.equal(PAD_ID, 0);
  assert.equal(VOCAB_SIZE, 258);
});

test('tokenize: truncates to the context length and never emits an id outside the vocabulary', () => {
  const ids = nums(tokenize('x'.repeat(100), 8));
  assert.equal(ids.length, 8);
  assert.deepEqual(ids, [BOS_ID, ...new Array(7).fill(120 + BYTE_OFFSET)]);
  const all = nums(tokenize(String.fromCharCode(...Array.from({ length: 127 }, (_, i) => i + 1)), 200));
  assert.ok(all.every((v) => v >= 0 && v < VOCAB_SIZE));
  assert.equal(tokenize('', 0).length, 0);
});

test('tokenizeBatch: I64 [B, L], one row per prompt', () => {
  const t = tokenizeBatch(['ab', 'c'], 4);
  assert.equal(t.dtype, 'I64');
  assert.deepEqual(t.shape, [2, 4]);
  assert.deepEqual(nums(t.data as BigInt64Array), [1, 99, 100, 0, 1, 101, 0, 0]);
});
