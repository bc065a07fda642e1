/**
 * A Hugging Face `tokenizer.json` (umT5's, or any other) read with `@huggingface/tokenizers`
 * (pure JS), and the padding and truncation Wan's text conditioning applies: special tokens on
 * (umT5 appends `</s>`), truncated to L keeping the special tokens, padded to L with the pad id,
 * attention mask 1 on the prompt's tokens and 0 after (onnx/README.md, Text encoder).
 *
 * @example
 *   const tok = loadTokenizer('models/umt5/tokenizer.json');
 *   const { ids, mask, length } = tok.encode('orbit around the red box', 512);
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../errors.js';

export interface Encoded {
  /** Token ids [L]: the prompt's tokens, then the pad id. */
  ids: BigInt64Array;
  /** Attention mask [L]: 1 on the prompt's tokens, 0 on padding. */
  mask: BigInt64Array;
  /** Number of the prompt's tokens (special tokens included) = the mask's sum. */
  length: number;
}

export interface TextTokenizer {
  source: string;
  /** Largest id the tokenizer can emit + 1 (its vocabulary and added tokens). */
  vocabSize: number;
  padId: number;
  /** The prompt's token ids, special tokens included, before truncation or padding. */
  tokenIds(text: string): number[];
  encode(text: string, length: number): Encoded;
}

type Json = Record<string, unknown>;

function readJson(path: string, what: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(path, `cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    return doc as Json;
  } catch (err) {
    throw new InputError(path, `${what} is not a JSON object: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The pad id: tokenizer.json's padding, else tokenizer_config.json's pad_token, else `<pad>`, else 0. */
function padIdOf(json: Json, config: Json, tok: Tokenizer): number {
  const padding = json.padding as { pad_id?: unknown } | null | undefined;
  if (padding && typeof padding.pad_id === 'number') return padding.pad_id;
  const padToken = config.pad_token;
  const name =
    typeof padToken === 'string'
      ? padToken
      : typeof (padToken as { content?: unknown } | undefined)?.content === 'string'
        ? (padToken as { content: string }).content
        : '<pad>';
  return tok.token_to_id(name) ?? 0;
}

/**
 * Truncate to `length` keeping the special tokens the post-processor adds around the text
 * (as the Rust tokenizers truncate: the text is cut, not `</s>`).
 */
function truncate(full: number[], plain: number[], length: number): number[] {
  if (full.length <= length) return full;
  let at = -1;
  for (let k = 0; k + plain.length <= full.length && at < 0; k++)
    if (plain.every((id, j) => full[k + j] === id)) at = k;
  if (at < 0 || plain.length === 0) return full.slice(0, length);
  const prefix = full.slice(0, at);
  const suffix = full.slice(at + plain.length);
  const keep = Math.max(0, length - prefix.length - suffix.length);
  return [...prefix, ...plain.slice(0, keep), ...suffix].slice(0, length);
}

/**
 * Unigram byte fallback, which @huggingface/tokenizers 0.2 applies to BPE only: a piece outside
 * the vocabulary becomes its UTF-8 bytes as `<0xXX>` tokens when all of them exist, else stays
 * unk — what the Rust tokenizers (and so diffusers' umT5 tokenizer) emit.
 */
function byteFallback(tok: Tokenizer, tokens: string[], ids: (number | undefined)[]): (number | undefined)[] {
  const utf8 = new TextEncoder();
  return tokens.flatMap((t, i) => {
    if (tok.token_to_id(t) !== undefined) return [ids[i]];
    const bytes = Array.from(utf8.encode(t), (b) =>
      tok.token_to_id(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
    );
    return bytes.length && bytes.every((b) => b !== undefined) ? bytes : [ids[i]];
  });
}

/**
 * Read `tokenizer.json` (and `tokenizer_config.json` beside it, when there is one).
 *
 * @example
 *   loadTokenizer('test/fixtures/tokenizer.json').encode('red box', 8).ids; // [4, 5, 1, 0, 0, 0, 0, 0]
 */
export function loadTokenizer(path: string): TextTokenizer {
  if (!existsSync(path)) throw new InputError(path, 'tokenizer file not found (models.tokenizer)');
  if (statSync(path).isDirectory())
    throw new InputError(path, 'is a directory; models.tokenizer names the tokenizer.json file');
  const json = readJson(path, 'tokenizer.json');
  const cfgPath = join(dirname(path), 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJson(cfgPath, 'tokenizer_config.json') : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (err) {
    throw new InputError(path, `not a tokenizer @huggingface/tokenizers can read: ${(err as Error).message}`);
  }
  // A loop, not Math.max(...ids): umT5 has 256 300 ids, more than a call takes arguments.
  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  const padId = padIdOf(json, config, tok);
  const model = json.model as { type?: unknown; byte_fallback?: unknown } | undefined;
  const unigramBytes = model?.type === 'Unigram' && model.byte_fallback === true;
  const tokenIds = (text: string, special = true): number[] => {
    let ids: (number | undefined)[];
    try {
      const enc = tok.encode(text, { add_special_tokens: special });
      ids = unigramBytes ? byteFallback(tok, enc.tokens, enc.ids) : enc.ids;
    } catch (err) {
      throw new InputError(path, `cannot tokenize ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
    // A token outside the vocabulary with no unk token comes back without an id.
    if (!ids.every((id) => Number.isInteger(id)))
      throw new InputError(path, `${JSON.stringify(text)} has tokens without an id (no unk_token)`);
    return ids as number[];
  };
  return {
    source: path,
    vocabSize,
    padId,
    tokenIds: (text) => tokenIds(text),
    encode(text, length) {
      const kept = truncate(tokenIds(text), tokenIds(text, false), length);
      const out = { ids: new BigInt64Array(length).fill(BigInt(padId)), mask: new BigInt64Array(length) };
      kept.forEach((id, i) => {
        out.ids[i] = BigInt(id);
        out.mask[i] = 1n;
      });
      return { ...out, length: kept.length };
    },
  };
}
