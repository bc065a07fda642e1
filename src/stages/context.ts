/**
 * Text conditioning: prompts → context embeddings with the text-encoder model, or precomputed
 * embeddings from an `embeddings` shard (context [P, L, D]).
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { runtimeOptions } from '../rl/policy.js';
import { ModelSession } from '../runtime/session.js';
import { readShard } from '../shards/shard.js';
import { tensor } from '../shards/tensor.js';
import { tokenize } from '../toy/tokenizer.js';

export interface Conditioning {
  prompts: string[];
  /** One [L·D] context per prompt. */
  contexts: Float32Array[];
  /** The negative/empty prompt's context, for classifier-free guidance. */
  uncond?: Float32Array;
  L: number;
  D: number;
  sources: string[];
}

export function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(path, `cannot read prompts (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const prompts = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (prompts.length === 0) throw new InputError(path, 'no prompts (one per line expected)');
  return prompts;
}

/**
 * @example
 *   const cond = await conditioning(config, { prompts: 'examples/toy/prompts.txt' });
 */
export async function conditioning(
  config: Config,
  src: { prompts?: string; embeddings?: string },
): Promise<Conditioning> {
  const needUncond = config.sampler.guidance !== 1;
  if (src.embeddings) {
    const shard = readShard(src.embeddings, 'embeddings');
    const ctx = shard.tensors.get('context')!;
    const [P, L, D] = ctx.shape as [number, number, number];
    const data = ctx.data as Float32Array;
    const contexts = Array.from({ length: P }, (_, p) => data.slice(p * L * D, (p + 1) * L * D));
    for (const c of contexts) {
      if (c.some((v) => !Number.isFinite(v)))
        throw new InputError(src.embeddings, "tensor 'context': non-finite values");
    }
    let prompts: string[] = contexts.map((_, p) => `embedding ${p}`);
    if (shard.metadata['vggrpo.prompts']) prompts = JSON.parse(shard.metadata['vggrpo.prompts']);
    const unc = shard.tensors.get('uncond_context');
    if (needUncond && !unc)
      throw new InputError(src.embeddings, "guidance ≠ 1 needs an 'uncond_context' [1, L, D] tensor");
    return {
      prompts,
      contexts,
      uncond: unc ? (unc.data as Float32Array).slice() : undefined,
      L,
      D,
      sources: [src.embeddings],
    };
  }
  if (!src.prompts) throw new InputError('--prompts', 'give --prompts FILE or --embeddings SHARD');
  const prompts = readPrompts(src.prompts);
  const encPath = config.models.text_encoder;
  if (!encPath)
    throw new InputError('config', 'models.text_encoder is not set: give one, or --embeddings SHARD');
  const enc = await ModelSession.open(encPath, runtimeOptions(config));
  try {
    const ids = enc.inputs.find((i) => i.name === 'input_ids');
    const L = ids && typeof ids.shape[1] === 'number' ? ids.shape[1] : undefined;
    if (L === undefined)
      throw new InputError(encPath, "text encoder needs an input 'input_ids' [B, L] with static L");
    const all = needUncond ? [...prompts, config.sampler.negative_prompt] : prompts;
    const idData = new BigInt64Array(all.length * L);
    for (const [i, p] of all.entries()) idData.set(tokenize(p, L), i * L);
    const out = await enc.run({ input_ids: tensor('I64', [all.length, L], idData) });
    const ctx = out.context;
    if (!ctx) throw new InputError(encPath, "text encoder has no output 'context'");
    const [, Lc, D] = ctx.shape as [number, number, number];
    const data = ctx.data as Float32Array;
    const per = Lc * D;
    const contexts = all.map((_, i) => data.slice(i * per, (i + 1) * per));
    const uncond = needUncond ? contexts.pop() : undefined;
    return { prompts, contexts, uncond, L: Lc, D, sources: [src.prompts] };
  } finally {
    await enc.release();
  }
}
