/**
 * Shard kinds and their tensor schemas (README.md, Shard formats). A dimension is a number
 * (fixed) or a letter that must take the same value across all tensors of the shard.
 */
import { InputError } from '../errors.js';
import type { DType, Tensor } from './tensor.js';

export const SCHEMA_VERSION = '1';
export type ShardKind = 'trajectory' | 'geometry' | 'rewards' | 'gradients' | 'embeddings' | 'policy';

type Dim = number | string;
interface TensorSpec {
  dtype: DType;
  /** '...' as the last entry allows any trailing dims (bound per tensor). */
  shape: Dim[];
  optional?: boolean;
}

const common: Record<string, TensorSpec> = {
  group_index: { dtype: 'I64', shape: ['B'] },
  prompt_index: { dtype: 'I64', shape: ['B'] },
  /** 1 for a sample whose model output the writing stage found non-finite (src/shards/finite.ts). */
  nonfinite: { dtype: 'U8', shape: ['B'], optional: true },
};

export const SCHEMAS: Record<ShardKind, Record<string, TensorSpec>> = {
  trajectory: {
    ...common,
    latents: { dtype: 'F32', shape: ['B', 'T+1', 'C', 'F', 'H', 'W'] },
    step_index: { dtype: 'I64', shape: ['T'] },
    sigmas: { dtype: 'F32', shape: ['N+1'] },
    log_probs: { dtype: 'F32', shape: ['B', 'T'] },
    final_latents: { dtype: 'F32', shape: ['B', 'C', 'F', 'H', 'W'] },
    context: { dtype: 'F32', shape: ['B', 'L', 'D'] },
    seed: { dtype: 'I64', shape: ['B'] },
    /** With classifier-free guidance: the negative/empty prompt's context. */
    uncond_context: { dtype: 'F32', shape: [1, 'L', 'D'], optional: true },
  },
  geometry: {
    ...common,
    depth: { dtype: 'F32', shape: ['B', "F'", 'h', 'w'] },
    points: { dtype: 'F32', shape: ['B', "F'", 'h', 'w', 3] },
    confidence: { dtype: 'F32', shape: ['B', "F'", 'h', 'w'] },
    extrinsics: { dtype: 'F32', shape: ['B', "F'", 3, 4] },
    intrinsics: { dtype: 'F32', shape: ['B', "F'", 3, 3] },
    scene_flow: { dtype: 'F32', shape: ['B', "F'", 'h', 'w', 3], optional: true },
    /** From a model with a dynamic-mask output (`*.dynamic_mask`): 1 where content moves, in [0, 1]. */
    dynamic_mask: { dtype: 'F32', shape: ['B', "F'", 'h', 'w'], optional: true },
  },
  rewards: {
    ...common,
    reward: { dtype: 'F32', shape: ['B'] },
    advantages: { dtype: 'F32', shape: ['B'] },
  },
  gradients: {},
  embeddings: {
    context: { dtype: 'F32', shape: ['P', 'L', 'D'] },
  },
  policy: {},
};

/**
 * Check a shard's tensors against its kind's schema; returns the bound dimension sizes.
 * Every fault names the file, the tensor and the expectation.
 */
export function validateShard(
  file: string,
  kind: ShardKind,
  tensors: Map<string, Tensor>,
): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const [name, spec] of Object.entries(SCHEMAS[kind])) {
    const t = tensors.get(name);
    if (!t) {
      if (spec.optional) continue;
      throw new InputError(file, `missing tensor '${name}' required in a ${kind} shard`);
    }
    if (t.dtype !== spec.dtype)
      throw new InputError(file, `tensor '${name}': expected ${spec.dtype}, got ${t.dtype}`);
    const want = spec.shape.map(String).join(', ');
    if (t.shape.length !== spec.shape.length) {
      throw new InputError(file, `tensor '${name}': expected shape [${want}], got [${t.shape.join(', ')}]`);
    }
    spec.shape.forEach((d, i) => {
      const got = t.shape[i]!;
      if (typeof d === 'number') {
        if (got !== d)
          throw new InputError(
            file,
            `tensor '${name}': expected shape [${want}], got [${t.shape.join(', ')}]`,
          );
        return;
      }
      // 'T+1' binds T as got − 1.
      const m = /^(.+)\+1$/.exec(d);
      const key = m ? m[1]! : d;
      const val = m ? got - 1 : got;
      if (dims[key] === undefined) dims[key] = val;
      else if (dims[key] !== val) {
        throw new InputError(
          file,
          `tensor '${name}': dimension ${d} is ${got}, but other tensors give ${key} = ${dims[key]}${m ? ' (so +1)' : ''}`,
        );
      }
    });
  }
  if (dims.B === 0) throw new InputError(file, 'holds no samples (B = 0); a shard has at least one');
  if (kind === 'rewards') {
    for (const [name, t] of tensors) {
      if (
        name.startsWith('reward/') &&
        (t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== dims.B)
      ) {
        throw new InputError(
          file,
          `tensor '${name}': expected F32 [${dims.B}], got ${t.dtype} [${t.shape.join(', ')}]`,
        );
      }
    }
  }
  return dims;
}
