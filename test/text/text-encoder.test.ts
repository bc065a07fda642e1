/**
 * Real text encoders (issue 12 item 6): a tokenizer.json read with @huggingface/tokenizers
 * (test/fixtures/umt5-tiny: a 13-token Unigram vocabulary with umT5's Metaspace pre-tokenizer and
 * `$A </s>` template), padding/truncation to the denoiser's context length, an encoder with the
 * umT5 contract built here, and Wan's zeroing of the hidden states after the prompt's tokens —
 * checked in the `context` that `sample --prompts` records, through the CLI. The expected ids
 * follow from the fixture's vocabulary (test/fixtures/umt5-tiny/README.md); they are also what
 * the Rust tokenizers (npm `tokenizers` 0.23.2, checked once outside this suite) give, padding,
 * truncation and byte fallback included.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/model.js';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { conditioning } from '../../src/stages/context.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { TOY } from '../../src/toy/latent.js';
import { oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const TOKENIZER = join(ROOT, 'test/fixtures/umt5-tiny/tokenizer.json');
// Ids of the fixture vocabulary, written out by hand.
const ID = { pad: 0, eos: 1, unk: 2, space: 3, red: 4, box: 5, orbit: 6, the: 7, around: 8, o: 9 };
const nums = (a: BigInt64Array) => Array.from(a, Number);
const dir = tempDir('vggrpo-text-');

test('token ids, padding, truncation and attention masks against hand-computed ones', () => {
  const tok = loadTokenizer(TOKENIZER);
  assert.equal(tok.vocabSize, 13);
  assert.equal(tok.padId, ID.pad);
  const e = tok.encode('orbit around the red box', 8);
  assert.deepEqual(nums(e.ids), [ID.orbit, ID.around, ID.the, ID.red, ID.box, ID.eos, ID.pad, ID.pad]);
  assert.deepEqual(nums(e.mask), [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(e.length, 6);
  // Truncation cuts the text and keeps the </s> the template appends.
  const t = tok.encode('orbit around the red box', 4);
  assert.deepEqual(nums(t.ids), [ID.orbit, ID.around, ID.the, ID.eos]);
  assert.deepEqual(nums(t.mask), [1, 1, 1, 1]);
  // Runs of spaces collapse; 'boxo' is ▁box + o; an unknown word is ▁ + <unk>.
  assert.deepEqual(tok.tokenIds('  red   boxo '), [ID.red, ID.box, ID.o, ID.eos]);
  assert.deepEqual(tok.tokenIds('zzz red'), [ID.space, ID.unk, ID.red, ID.eos]);
  // The empty (negative) prompt is </s> alone, as umT5 gives it.
  const empty = tok.encode('', 3);
  assert.deepEqual([nums(empty.ids), nums(empty.mask), empty.length], [[ID.eos, 0, 0], [1, 0, 0], 1]);
});

test("the pad id comes from tokenizer.json's padding when it sets one", () => {
  const json = JSON.parse(readFileSync(TOKENIZER, 'utf8')) as Record<string, unknown>;
  json.padding = { strategy: 'BatchLongest', pad_id: ID.space, pad_token: '▁' };
  const path = join(dir, 'padded', 'tokenizer.json');
  mkdirSync(join(dir, 'padded'));
  writeFileSync(path, JSON.stringify(json));
  const e = loadTokenizer(path).encode('red', 4);
  assert.deepEqual(nums(e.ids), [ID.red, ID.eos, ID.space, ID.space]);
  assert.deepEqual(nums(e.mask), [1, 1, 0, 0]);
});

test('Unigram byte fallback (umT5 sets it): an unknown character becomes its UTF-8 byte tokens when all exist', () => {
  const json = JSON.parse(readFileSync(TOKENIZER, 'utf8'));
  json.model.byte_fallback = true;
  // 🍣 is F0 9F 8D A3 in UTF-8: ids 13–16. 'z' (7A) has no byte token, so it stays <unk>.
  for (const b of ['F0', '9F', '8D', 'A3']) json.model.vocab.push([`<0x${b}>`, 0]);
  mkdirSync(join(dir, 'bytes'));
  const path = join(dir, 'bytes', 'tokenizer.json');
  writeFileSync(path, JSON.stringify(json));
  const tok = loadTokenizer(path);
  assert.deepEqual(tok.tokenIds('red 🍣'), [ID.red, ID.space, 13, 14, 15, 16, ID.eos]);
  assert.deepEqual(tok.tokenIds('zzz'), [ID.space, ID.unk, ID.eos]);
  // Without the flag (the fixture as committed) the same character is one <unk>.
  assert.deepEqual(loadTokenizer(TOKENIZER).tokenIds('red 🍣'), [ID.red, ID.space, ID.unk, ID.eos]);
});

test("a vocabulary of umT5's size (256 300 ids) loads and encodes", () => {
  const json = JSON.parse(readFileSync(TOKENIZER, 'utf8'));
  const n = 256_300;
  for (let i = json.model.vocab.length; i < n; i++) json.model.vocab.push([`▁w${i}`, -5 - i / n]);
  mkdirSync(join(dir, 'big'));
  const path = join(dir, 'big', 'tokenizer.json');
  writeFileSync(path, JSON.stringify(json));
  const tok = loadTokenizer(path);
  assert.equal(tok.vocabSize, n);
  assert.deepEqual(tok.tokenIds('red w256299 box'), [ID.red, n - 1, ID.box, ID.eos]);
});

test('a missing, non-JSON or unreadable tokenizer is an InputError naming the file', () => {
  const cases: [string, RegExp][] = [
    [join(dir, 'none', 'tokenizer.json'), /tokenizer file not found/],
    [dir, /is a directory/],
    [write('bad.json', '{ not json'), /not a JSON object/],
    [
      write(
        'decoderless.json',
        JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] }, added_tokens: [] }),
      ),
      /not a tokenizer @huggingface\/tokenizers can read: .*"decoder"/,
    ],
    [
      write(
        'odd.json',
        JSON.stringify({
          ...Object.fromEntries(
            ['decoder', 'post_processor', 'pre_tokenizer', 'normalizer'].map((k) => [k, null]),
          ),
          model: { type: 'Nope' },
          added_tokens: [],
        }),
      ),
      /not a tokenizer .*: Unknown TokenizerModel type: Nope/,
    ],
  ];
  for (const [path, fault] of cases) {
    assert.throws(
      () => loadTokenizer(path),
      (err: unknown) => err instanceof InputError && err.where === path && fault.test(err.fault),
      path,
    );
  }
});

// The umT5 contract: input_ids, attention_mask I64 [B, L] → last_hidden_state F32 [B, L, D].
// Row for token t at a masked-in position: E[t] + u; E[0] (pad) ≠ 0, so zeroing shows.
const D = TOY.contextDim;
const U = 0.5;
const embed = (rows: number) =>
  Float32Array.from({ length: rows * D }, (_, i) => 0.1 * (Math.floor(i / D) + 1) + 0.001 * (i % D));

function buildEncoder(
  path: string,
  opts: { rows?: number; L?: number | string; mask?: boolean } = {},
): string {
  const g = new GraphBuilder('tiny_umt5', 18);
  const L = opts.L ?? 'L';
  const ids = g.input('input_ids', 'int64', ['B', L]);
  const table = g.init('shared.weight', embed(opts.rows ?? 13), [opts.rows ?? 13, D]);
  let h = g.op('Gather', [table, ids], { axis: 0 });
  if (opts.mask !== false) {
    const mask = g.input('attention_mask', 'int64', ['B', L]);
    const m = g.op('Unsqueeze', [g.op('Cast', [mask], { to: 1 }), g.ints([2])]);
    h = g.op('Add', [h, g.op('Mul', [m, g.init('u', new Float32Array(D).fill(U), [D])])]);
  }
  g.output(h, 'last_hidden_state', 'float32', ['B', L, D]);
  saveModel(g.toModel('vggrpo test'), path);
  return path;
}

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function config(name: string, lines: string[]): string {
  return write(`${name}.yaml`, `${lines.join('\n')}\n`);
}

const encoder = buildEncoder(join(dir, 'encoder.onnx'));
const long = Array(20).fill('red box').join(' '); // 40 tokens + </s>: truncated to L = 32
const prompts = write('prompts.txt', `orbit around the red box\n${long}\n`);
const small = ['--group-size', '2', '--steps', '2', '--threads', '1'];
const good = [
  'models:',
  `  text_encoder: ${encoder}`,
  `  tokenizer: ${TOKENIZER}`,
  'text:',
  '  output: last_hidden_state',
];

/** The hidden state row the encoder gives token t inside the prompt. */
const row = (t: number) => Array.from({ length: D }, (_, d) => Math.fround(embed(13)[t * D + d]! + U));

function checkContext(ctx: Float32Array, tokens: number[], what: string): void {
  const L = TOY.contextLength;
  assert.equal(ctx.length, L * D, what);
  for (let l = 0; l < L; l++) {
    const want = l < tokens.length ? row(tokens[l]!) : new Array(D).fill(0);
    assert.deepEqual(Array.from(ctx.subarray(l * D, (l + 1) * D)), want, `${what}, position ${l}`);
  }
}

test('sample --prompts: the recorded context is the encoder on hand-computed ids, exactly zero after the prompt', async () => {
  const r = await runCli([
    'sample',
    '--config',
    config('good', good),
    '--prompts',
    prompts,
    ...small,
    '--guidance',
    '2',
    '--out',
    join(dir, 'run'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const shard = readSafetensors(r.stdout.trim());
  const ctx = shard.tensors.get('context')!;
  assert.deepEqual(ctx.shape, [4, TOY.contextLength, D]);
  const data = ctx.data as Float32Array;
  const per = TOY.contextLength * D;
  const first = [ID.orbit, ID.around, ID.the, ID.red, ID.box, ID.eos];
  const second = [...Array(31)].map((_, i) => (i % 2 ? ID.box : ID.red)).concat([ID.eos]);
  for (const b of [0, 1]) checkContext(data.subarray(b * per, (b + 1) * per), first, `prompt 0, sample ${b}`);
  for (const b of [2, 3])
    checkContext(data.subarray(b * per, (b + 1) * per), second, `prompt 1, sample ${b}`);
  // The negative prompt '' is </s> alone: one row, then zeros.
  checkContext(shard.tensors.get('uncond_context')!.data as Float32Array, [ID.eos], 'uncond_context');
});

test('bad tokenizer or encoder: exit 2, one line naming the file', async () => {
  const fixtures = join(ROOT, 'onnx/fixtures');
  const cases: [string, string[], RegExp][] = [
    [
      'missing',
      [...good.slice(0, 2), `  tokenizer: ${join(dir, 'nowhere', 'tokenizer.json')}`, ...good.slice(3)],
      /nowhere\/tokenizer\.json: tokenizer file not found/,
    ],
    [
      'no-mask',
      [
        ...good.slice(0, 1),
        `  text_encoder: ${buildEncoder(join(dir, 'nomask.onnx'), { mask: false })}`,
        ...good.slice(2),
      ],
      /nomask\.onnx: text encoder needs an input 'attention_mask'/,
    ],
    [
      'toy',
      [...good.slice(0, 1), `  text_encoder: ${join(fixtures, 'text_encoder.onnx')}`, ...good.slice(2)],
      /text_encoder\.onnx: text encoder needs an input 'attention_mask'/,
    ],
    [
      'vocab',
      [
        ...good.slice(0, 1),
        `  text_encoder: ${buildEncoder(join(dir, 'small.onnx'), { rows: 8 })}`,
        ...good.slice(2),
      ],
      /umt5-tiny\/tokenizer\.json: ids up to 12 exceed the vocabulary of .*small\.onnx \(8 embedding rows\)/,
    ],
    [
      'static-l',
      [
        ...good.slice(0, 1),
        `  text_encoder: ${buildEncoder(join(dir, 'l16.onnx'), { L: 16 })}`,
        ...good.slice(2),
      ],
      /l16\.onnx: input_ids takes L = 16, the denoiser's context L = 32/,
    ],
    [
      'output',
      [...good.slice(0, 4), '  output: hidden'],
      /encoder\.onnx: text encoder has no output 'hidden' \(text\.output; outputs: last_hidden_state\)/,
    ],
  ];
  for (const [name, lines, fault] of cases) {
    const r = await runCli([
      'sample',
      '--config',
      config(name, lines),
      '--prompts',
      prompts,
      ...small,
      '--out',
      join(dir, name),
    ]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    oneLine(r.stderr);
    assert.match(r.stderr, fault, name);
  }
});

test('more prompts than one encoder run takes (8): every context is its hand-computed rows', async () => {
  const words = ['red', 'box', 'orbit', 'the', 'around'];
  const wordIds = [ID.red, ID.box, ID.orbit, ID.the, ID.around];
  const k = (i: number) => (i % 5) + 1;
  const many = Array.from({ length: 11 }, (_, i) => words.slice(0, k(i)).join(' '));
  const file = write('many.txt', `${many.join('\n')}\n`);
  const config = resolveConfig([
    { models: { text_encoder: encoder, tokenizer: TOKENIZER }, text: { output: 'last_hidden_state' } },
  ]);
  const cond = await conditioning(config, { prompts: file });
  assert.deepEqual([cond.contexts.length, cond.L, cond.D], [11, TOY.contextLength, D]);
  cond.contexts.forEach((c, i) => {
    checkContext(c, [...wordIds.slice(0, k(i)), ID.eos], `prompt ${i}`);
  });
});
