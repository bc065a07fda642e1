/**
 * Text conditioning: prompts → context embeddings with the text-encoder model (the toy byte
 * tokenizer, or a tokenizer.json with an umT5-style encoder: onnx/README.md, Text encoder), or
 * precomputed embeddings from an `embeddings` shard (context [P, L, D]).
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import type { TypeProto } from '../onnx/proto.js';
import { runtimeOptions } from '../rl/policy.js';
import { ModelSession } from '../runtime/session.js';
import { readShard } from '../shards/shard.js';
import { type Tensor, tensor } from '../shards/tensor.js';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.js';
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
  if (src.embeddings) return fromEmbeddings(src.embeddings, needUncond);
  if (!src.prompts) throw new InputError('--prompts', 'give --prompts FILE or --embeddings SHARD');
  const prompts = readPrompts(src.prompts);
  const encPath = config.models.text_encoder;
  if (!encPath)
    throw new InputError('config', 'models.text_encoder is not set: give one, or --embeddings SHARD');
  const all = needUncond ? [...prompts, config.sampler.negative_prompt] : prompts;
  // The tokenizer first: a bad one is reported before a large encoder loads.
  const tok = config.models.tokenizer ? loadTokenizer(config.models.tokenizer) : undefined;
  const enc = await ModelSession.open(encPath, runtimeOptions(config));
  try {
    const batch = tok ? tokenizerBatch(enc, tok, all, denoiserContextLength(config)) : toyBatch(enc, all);
    const name = outputName(enc, config);
    const contexts: Float32Array[] = [];
    let shape: number[] = [];
    for (let r0 = 0; r0 < all.length; r0 += batch.chunk) {
      const rows = Math.min(batch.chunk, all.length - r0);
      const ctx = (await enc.run(sliceRows(batch.feeds, r0, rows), [name]))[name]!;
      shape = ctx.shape;
      const [B, Lc, D] = shape as [number, number, number];
      if (shape.length !== 3 || B !== rows || (batch.lengths && Lc !== batch.L))
        throw new InputError(
          encPath,
          `output '${name}' is [${shape.join(', ')}], expected [${rows}, ${batch.L}, D]`,
        );
      const data = ctx.data as Float32Array;
      for (let i = 0; i < rows; i++) {
        const row = data.slice(i * Lc * D, (i + 1) * Lc * D);
        // Wan keeps the hidden states of the prompt's tokens only and zero-pads the rest.
        const n = batch.lengths?.[r0 + i];
        if (n !== undefined) row.fill(0, n * D);
        contexts.push(row);
      }
    }
    const uncond = needUncond ? contexts.pop() : undefined;
    return { prompts, contexts, uncond, L: shape[1]!, D: shape[2]!, sources: [src.prompts] };
  } finally {
    await enc.release();
  }
}

function fromEmbeddings(path: string, needUncond: boolean): Conditioning {
  const shard = readShard(path, 'embeddings');
  const ctx = shard.tensors.get('context')!;
  const [P, L, D] = ctx.shape as [number, number, number];
  const data = ctx.data as Float32Array;
  const contexts = Array.from({ length: P }, (_, p) => data.slice(p * L * D, (p + 1) * L * D));
  for (const c of contexts) {
    if (c.some((v) => !Number.isFinite(v))) throw new InputError(path, "tensor 'context': non-finite values");
  }
  let prompts: string[] = contexts.map((_, p) => `embedding ${p}`);
  if (shard.metadata['vggrpo.prompts']) prompts = JSON.parse(shard.metadata['vggrpo.prompts']);
  const unc = shard.tensors.get('uncond_context');
  if (needUncond && !unc)
    throw new InputError(path, "guidance ≠ 1 needs an 'uncond_context' [1, L, D] tensor");
  return {
    prompts,
    contexts,
    uncond: unc ? (unc.data as Float32Array).slice() : undefined,
    L,
    D,
    sources: [path],
  };
}

/**
 * The encoder's feeds [B, L], the rows per run, and each prompt's token count (none: keep all
 * positions).
 */
interface EncoderBatch {
  feeds: Record<string, Tensor>;
  L: number;
  chunk: number;
  lengths?: number[];
}

/** Prompts per encoder run with a tokenizer: a real encoder's activations grow with the batch. */
const ENCODER_CHUNK = 8;

/** Rows [r0, r0 + rows) of I64 [B, L] feeds. */
function sliceRows(feeds: Record<string, Tensor>, r0: number, rows: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(feeds)) {
    const L = t.shape[1]!;
    out[k] = tensor(t.dtype, [rows, L], (t.data as BigInt64Array).slice(r0 * L, (r0 + rows) * L));
  }
  return out;
}

function outputName(enc: ModelSession, config: Config): string {
  const name = config.text.output;
  if (!enc.outputNames.includes(name))
    throw new InputError(
      enc.source,
      `text encoder has no output '${name}' (text.output; outputs: ${enc.outputNames.join(', ')})`,
    );
  return name;
}

/** The toy byte tokenizer: L is the encoder's static input length, no mask, nothing zeroed. */
function toyBatch(enc: ModelSession, all: string[]): EncoderBatch {
  const ids = enc.inputs.find((i) => i.name === 'input_ids');
  const L = ids && typeof ids.shape[1] === 'number' ? ids.shape[1] : undefined;
  if (L === undefined)
    throw new InputError(enc.source, "text encoder needs an input 'input_ids' [B, L] with static L");
  const idData = new BigInt64Array(all.length * L);
  for (const [i, p] of all.entries()) idData.set(tokenize(p, L), i * L);
  // One run for all prompts, as before chunking existed: the toy's contexts stay bit for bit.
  return { feeds: { input_ids: tensor('I64', [all.length, L], idData) }, L, chunk: all.length };
}

/**
 * A tokenizer.json and an encoder with the umT5 contract (input_ids, attention_mask I64 [B, L]):
 * prompts padded or truncated to the denoiser's context length.
 */
function tokenizerBatch(
  enc: ModelSession,
  tok: TextTokenizer,
  all: string[],
  denoiserL: number,
): EncoderBatch {
  const byName = new Map(enc.inputs.map((i) => [i.name, i]));
  for (const name of ['input_ids', 'attention_mask']) {
    const info = byName.get(name);
    if (info?.dtype !== 'I64' || info.shape.length !== 2)
      throw new InputError(
        enc.source,
        `text encoder needs an input '${name}' I64 [B, L] with models.tokenizer (umT5 contract: input_ids, attention_mask → hidden states)`,
      );
  }
  const encL = byName.get('input_ids')!.shape[1];
  const L = denoiserL > 0 ? denoiserL : typeof encL === 'number' ? encL : -1;
  if (L <= 0)
    throw new InputError(
      enc.source,
      "context length unknown: the denoiser's context and input_ids have dynamic L",
    );
  if (typeof encL === 'number' && encL !== L)
    throw new InputError(enc.source, `input_ids takes L = ${encL}, the denoiser's context L = ${L}`);
  const rows = embeddingRows(enc.source);
  if (rows !== undefined && tok.vocabSize > rows)
    throw new InputError(
      tok.source,
      `ids up to ${tok.vocabSize - 1} exceed the vocabulary of ${enc.source} (${rows} embedding rows)`,
    );
  const ids = new BigInt64Array(all.length * L);
  const mask = new BigInt64Array(all.length * L);
  const lengths = all.map((p, i) => {
    const e = tok.encode(p, L);
    ids.set(e.ids, i * L);
    mask.set(e.mask, i * L);
    return e.length;
  });
  const shape = [all.length, L];
  return {
    feeds: { input_ids: tensor('I64', shape, ids), attention_mask: tensor('I64', shape, mask) },
    L,
    chunk: ENCODER_CHUNK,
    lengths,
  };
}

/** L of the denoiser's `context` input [B, L, D], read from its graph (−1 when dynamic). */
function denoiserContextLength(config: Config): number {
  const path = config.models.denoiser;
  if (!path)
    throw new InputError('config', 'models.denoiser is not set (give --config with models.denoiser)');
  const ctx = loadModel(path).graph?.input?.find((i) => i.name === 'context');
  const dim = (ctx?.type as TypeProto | undefined)?.tensorType?.shape?.dim?.[1]?.dimValue;
  return dim !== undefined && dim !== null && Number(dim) > 0 ? Number(dim) : -1;
}

/** Rows of the embedding table that input_ids index (a Gather on an initializer), when the graph shows it. */
function embeddingRows(path: string): number | undefined {
  const graph = loadModel(path).graph;
  const inits = new Map((graph?.initializer ?? []).map((t) => [t.name, t]));
  for (const n of graph?.node ?? []) {
    if (n.opType !== 'Gather' || n.input?.[1] !== 'input_ids') continue;
    const table = inits.get(n.input[0]);
    if (table?.dims?.length) return Number(table.dims[0]);
  }
  return undefined;
}
