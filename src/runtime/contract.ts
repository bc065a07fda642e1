/**
 * Shapes a shard hands a model, checked against the model's declared inputs before it runs, so
 * a latent space that does not fit (channels, frames, sizes) is exit 2 naming the shard, the
 * tensor and the model — not an onnxruntime error after the work has started.
 */
import { InputError } from '../errors.js';
import type { IoInfo } from './session.js';

/**
 * @example
 *   checkFeedShape(lgm.inputs, lgm.source, 'latents', finals.shape, shardPath, 'final_latents');
 */
export function checkFeedShape(
  inputs: readonly IoInfo[],
  model: string,
  input: string,
  shape: readonly number[],
  shard: string,
  tensor: string,
  firstDim = 1,
): void {
  const info = inputs.find((i) => i.name === input);
  if (!info) return; // the caller checks that the input exists, with its own message
  const want = info.shape;
  const fits =
    want.length === shape.length &&
    want.every((d, k) => k < firstDim || typeof d !== 'number' || d === shape[k]);
  if (!fits) {
    throw new InputError(
      shard,
      `tensor '${tensor}' is [${shape.join(', ')}] but ${model} input '${input}' takes [${want.map((d) => d ?? '?').join(', ')}]`,
    );
  }
}

/** The same check for a shape the caller knows as numbers ([C, F, H, W] of the policy, say). */
export function checkDims(
  got: readonly number[],
  want: readonly number[],
  shard: string,
  tensor: string,
  what: string,
): void {
  if (
    got.length !== want.length ||
    got.some((d, k) => want[k] !== undefined && want[k]! >= 0 && d !== want[k])
  )
    throw new InputError(
      shard,
      `tensor '${tensor}' has ${what} [${got.join(', ')}], the model expects [${want.join(', ')}]`,
    );
}
