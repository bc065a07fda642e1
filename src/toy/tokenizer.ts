/**
 * The toy text encoder's byte-level tokenizer: UTF-8 bytes shifted by 2 (so 0 stays free for
 * padding and 1 marks the beginning), a BOS token, then truncation or zero padding to the
 * context length L. Vocabulary size 258.
 *
 * @example
 *   tokenize('red box', 8); // BigInt64Array [1, 116, 103, 102, 34, 100, 113, 122]
 */
import { type Tensor, tensor } from '../shards/tensor.js';
import { TOY } from './latent.js';

export const PAD_ID = 0;
export const BOS_ID = 1;
export const BYTE_OFFSET = 2;
export const VOCAB_SIZE = 256 + BYTE_OFFSET;

/**
 * Token ids of one prompt: [BOS, byte+2, …] truncated or padded with PAD_ID to `length`.
 *
 * @example
 *   tokenize('a', 4); // [1, 99, 0, 0]
 */
export function tokenize(text: string, length: number = TOY.contextLength): BigInt64Array {
  const bytes = new TextEncoder().encode(text);
  const ids = new BigInt64Array(length);
  if (length > 0) ids[0] = BigInt(BOS_ID);
  for (let i = 0; i + 1 < length && i < bytes.length; i++) ids[i + 1] = BigInt(bytes[i]! + BYTE_OFFSET);
  return ids;
}

/**
 * The `input_ids` tensor I64 [B, L] of the text encoder for a batch of prompts.
 *
 * @example
 *   const ids = tokenizeBatch(['orbit around the red box', 'pan across the room']); // I64 [2, 32]
 */
export function tokenizeBatch(texts: readonly string[], length: number = TOY.contextLength): Tensor {
  const data = new BigInt64Array(texts.length * length);
  texts.forEach((t, b) => {
    data.set(tokenize(t, length), b * length);
  });
  return tensor('I64', [texts.length, length], data);
}
