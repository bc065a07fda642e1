/**
 * NaN and ±Inf in an input file are bad input (exit 2), named by file, tensor and the first bad
 * index — except in samples that the stage which wrote the shard found non-finite itself and
 * marked in its `nonfinite` [B] tensor (a model output gone bad is a per-sample warning, and
 * later stages give such a sample its group's minimum reward).
 */
import { InputError } from '../errors.js';
import type { Tensor } from './tensor.js';

export const NONFINITE = 'nonfinite';

/** Samples marked non-finite by the writer of the shard (all false when it marked none). */
export function nonfiniteMask(tensors: Map<string, Tensor>, B: number): Uint8Array {
  const t = tensors.get(NONFINITE);
  return t ? Uint8Array.from(t.data as Uint8Array) : new Uint8Array(B);
}

/**
 * Check every float tensor; per-sample tensors (first dimension B) skip marked samples.
 *
 * @example
 *   assertShardFinite(path, shard.tensors, shard.dims.B);
 */
export function assertShardFinite(file: string, tensors: Map<string, Tensor>, B: number | undefined): void {
  const mask = B === undefined ? undefined : nonfiniteMask(tensors, B);
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
    const perSample = mask !== undefined && t.shape.length > 0 && t.shape[0] === B;
    const bad = firstNonFinite(t.data, perSample ? mask : undefined);
    if (bad >= 0) {
      const where = t.shape.length > 1 ? ` (index [${unravel(bad, t.shape).join(', ')}])` : '';
      throw new InputError(
        file,
        `tensor '${name}': non-finite value ${t.data[bad]} at flat index ${bad}${where}`,
      );
    }
  }
}

/** First flat index holding NaN/±Inf, skipping rows whose mask entry is set; −1 if none. */
export function firstNonFinite(d: Float32Array | Float64Array, mask?: Uint8Array): number {
  const rows = mask?.length ?? 1;
  const per = rows > 0 ? d.length / rows : 0;
  for (let r = 0; r < rows; r++) {
    if (mask?.[r]) continue;
    const end = (r + 1) * per;
    for (let i = r * per; i < end; i++) {
      // x − x is NaN exactly for NaN and ±Inf: one branch per element.
      const v = d[i] as number;
      if (v - v !== 0) return i;
    }
  }
  return -1;
}

/** Which samples of a [B, …] batch hold a non-finite value. */
export function nonfiniteSamples(d: Float32Array, B: number): Uint8Array {
  const per = B > 0 ? d.length / B : 0;
  return Uint8Array.from({ length: B }, (_, b) => +(firstNonFinite(d.subarray(b * per, (b + 1) * per)) >= 0));
}

function unravel(flat: number, shape: number[]): number[] {
  const out = new Array<number>(shape.length);
  let rest = flat;
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = shape[k] ?? 1;
    out[k] = rest % d;
    rest = Math.floor(rest / d);
  }
  return out;
}
