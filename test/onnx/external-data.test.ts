/**
 * External data stays in the model's folder and its fields are checked before anything is
 * allocated: a symlink out of the folder is exit 2 through the CLI (onnxruntime refuses the same
 * model), nothing is copied into an output, and mutated location/offset/length/checksum/dims
 * fields give either a model whose tensors read correctly or one InputError line naming the
 * model and the tensor — never a raw RangeError.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import ort from 'onnxruntime-node';
import { InputError } from '../../src/errors.js';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import {
  allTensors,
  decodeModel,
  encodeModel,
  loadModel,
  saveModel,
  tensorToArray,
} from '../../src/onnx/model.js';
import type { ModelProto, StringStringEntryProto } from '../../src/onnx/proto.js';
import { openModel } from '../../src/runtime/model-cache.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32 } from '../../src/shards/tensor.js';
import { runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-extdata-');
after(() => rmSync(dir, { recursive: true, force: true }));

const W = Float32Array.from({ length: 16 * 16 }, (_, i) => Math.sin(i));

/** y = x·w with w [16, 16] in `<folder>/m.onnx.data`. */
function writeModel(folder: string): string {
  mkdirSync(folder, { recursive: true });
  const g = new GraphBuilder('ext', 18);
  const x = g.input('x', 'float32', [1, 16]);
  const w = g.init('w', Float32Array, [16, 16], (i) => W[i]!);
  g.output(g.op('MatMul', [x, w]), 'y');
  const path = join(folder, 'm.onnx');
  saveModel(g.toModel(), path, { externalDataThreshold: 1024 });
  return path;
}

/** The model file with tensor `w`'s fields replaced (written plainly: this is test data). */
function withFields(
  path: string,
  edit: (t: { dims?: number[]; externalData?: StringStringEntryProto[] }) => void,
) {
  const m: ModelProto = decodeModel(readFileSync(path));
  edit(m.graph!.initializer!.find((t) => t.name === 'w')!);
  writeFileSync(path, encodeModel(m));
}

test('a link.data symlink out of the model folder: exit 2 naming model and tensor, nothing copied', async () => {
  const folder = join(dir, 'linked');
  const model = writeModel(folder);
  mkdirSync(join(dir, 'elsewhere'));
  renameSync(`${model}.data`, join(dir, 'elsewhere', 'w.data'));
  symlinkSync(join(dir, 'elsewhere', 'w.data'), join(folder, 'link.data'));
  withFields(model, (t) => {
    for (const e of t.externalData!) if (e.key === 'location') e.value = 'link.data';
  });
  // onnxruntime applies the same rule.
  await assert.rejects(ort.InferenceSession.create(model));

  const out = join(dir, 'out');
  for (const args of [
    ['inspect', model],
    ['onnx', 'grad', model, '--out', join(out, 'g.onnx'), '--wrt', 'w'],
    ['onnx', 'lora', model, '--out', join(out, 'l.onnx'), '--target', 'w'],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`${model}: tensor 'w': external data 'link.data' resolves to .*outside`),
    );
    assert.match(lines[0]!, /onnxruntime refuses .*Hugging Face.*copy/);
  }
  assert.deepEqual(readdirSync(dir).includes('out') ? readdirSync(out) : [], [], 'no output written');

  // The fix the message gives: copy the file into the folder.
  rmSync(join(folder, 'link.data'));
  writeFileSync(join(folder, 'link.data'), readFileSync(join(dir, 'elsewhere', 'w.data')));
  const ok = await runCli(['onnx', 'grad', model, '--out', join(out, 'g.onnx'), '--wrt', 'w']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('a symlink that stays inside the model folder is followed', () => {
  const folder = join(dir, 'inside');
  const model = writeModel(folder);
  mkdirSync(join(folder, 'blobs'));
  renameSync(`${model}.data`, join(folder, 'blobs', 'w.data'));
  symlinkSync(join('blobs', 'w.data'), `${model}.data`);
  const w = loadModel(model).graph!.initializer!.find((t) => t.name === 'w')!;
  assert.deepEqual(tensorToArray(w), W);
});

test('an export with every tensor external: small ones read at load, so graphs derive and run as inline', async () => {
  process.env.VGGRPO_CACHE = join(dir, 'cache');
  const folder = join(dir, 'all-external');
  mkdirSync(folder);
  const g = new GraphBuilder('ext', 18);
  const x = g.input('x', 'float32', [2, 16]);
  const w = g.init('w', Float32Array, [16, 16], (i) => W[i]!);
  const b = g.init('b', Float32Array, [16], (i) => i / 8);
  const y = g.op('Reshape', [g.op('Add', [g.op('MatMul', [x, w]), b]), g.const([4, 8], 'int64')]);
  g.output(g.op('Tanh', [y]), 'y');
  const inline = g.toModel();
  const path = join(folder, 'm.onnx');
  saveModel(inline, path, { externalDataThreshold: 1 });
  const m = loadModel(path);
  const where = new Map(m.graph!.initializer!.map((t) => [t.name, t.dataLocation]));
  assert.deepEqual(Object.fromEntries(where), { w: 1, b: undefined, const: undefined });
  // The gradient graph needs the Reshape's shape as a value; the result runs from the cache.
  const grad = (model: ModelProto) => buildGradientGraph(model, { wrt: ['w', 'b'] }).model;
  const feeds = {
    x: f32(
      [2, 16],
      Float32Array.from({ length: 32 }, (_, i) => Math.cos(i)),
    ),
    'grad:y': f32([4, 8], new Float32Array(32).fill(0.5)),
  };
  const got = await (await openModel(grad(m), {}, path)).run(feeds);
  const want = await (await ModelSession.open(encodeModel(grad(inline)))).run(feeds);
  assert.deepEqual(got, want);
  assert.equal(readdirSync(join(dir, 'cache', 'models')).filter((f) => f.endsWith('.onnx')).length, 1);
});

test('a cache on another file system gets a copy of the data file (a hard link cannot cross)', async (t) => {
  const other = '/dev/shm';
  if (!existsSync(other) || statSync(other).dev === statSync(dir).dev) return t.skip('no second file system');
  const cache = mkdtempSync(join(other, 'vggrpo-cache-'));
  try {
    process.env.VGGRPO_CACHE = cache;
    const model = writeModel(join(dir, 'copied'));
    const m = loadModel(model);
    const feeds = {
      x: f32(
        [1, 16],
        Float32Array.from({ length: 16 }, (_, i) => i - 8),
      ),
    };
    const got = await (await openModel(m, {}, model)).run(feeds);
    const files = readdirSync(join(cache, 'models'));
    const data = files.find((f) => f.startsWith('w-'))!;
    assert.notEqual(statSync(join(cache, 'models', data)).ino, statSync(`${model}.data`).ino);
    assert.ok(readFileSync(join(cache, 'models', data)).equals(readFileSync(`${model}.data`)));
    assert.ok(!files.some((f) => f.endsWith('.tmp')));
    // y = x·W, computed here
    const x = feeds.x.data as Float32Array;
    const want = Array.from({ length: 16 }, (_, j) => x.reduce((a, xi, i) => a + xi * W[i * 16 + j]!, 0));
    const y = got.y!.data as Float32Array;
    for (let j = 0; j < 16; j++) assert.ok(Math.abs(y[j]! - want[j]!) < 1e-5, `${y[j]} vs ${want[j]}`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

const field = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '-1',
    '1.5',
    '1e3',
    ' 16',
    '0x10',
    '16',
    '1024',
    '1040',
    '4294967296',
    '9007199254740993',
    '99999999999999999999',
    'NaN',
  ),
  fc.string({ maxLength: 6 }),
  fc.nat({ max: 2048 }).map(String),
);
const location = fc.oneof(
  fc.constantFrom(
    'm.onnx.data',
    './m.onnx.data',
    'sub/../m.onnx.data',
    '../m.onnx.data',
    '/etc/passwd',
    '',
    '.',
    'missing.data',
    'm.onnx',
    'a\0b',
  ),
  fc.string({ maxLength: 8 }),
);
const key = fc.constantFrom('location', 'offset', 'length', 'checksum', 'other', '');
const entry = fc.oneof(
  fc.record({ key: fc.constant('location'), value: location }),
  fc.record({ key, value: field }),
);
const dims = fc.oneof(
  fc.constant([16, 16]),
  fc.array(fc.oneof(fc.integer({ min: -2, max: 64 }), fc.constantFrom(2 ** 40, 2 ** 53, 2 ** 60, 0.5)), {
    maxLength: 3,
  }),
);

test('mutated external-data fields: a correct read or one InputError line naming model and tensor', () => {
  const folder = join(dir, 'fuzz');
  const model = writeModel(folder);
  const base = readFileSync(model);
  let accepted = 0;
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 5 }), fc.option(dims, { nil: undefined }), (entries, d) => {
      writeFileSync(model, base);
      withFields(model, (t) => {
        t.externalData = entries.map((e) => ({ ...e }));
        if (d) t.dims = [...d];
      });
      try {
        const m = loadModel(model);
        for (const t of allTensors(m)) {
          const a = tensorToArray(t);
          const n = (t.dims ?? []).reduce((x, y) => x * y, 1);
          assert.equal(a.length, n);
          if (t.name === 'w' && n === W.length) {
            // Accepted with the full weight: it must be the bytes where the fields point.
            const kv = new Map(t.externalData!.map((e) => [e.key, e.value]));
            const off = Number(kv.get('offset'));
            const file = readFileSync(kv.get('location')!);
            assert.deepEqual(new Uint8Array(a.buffer), new Uint8Array(file.subarray(off, off + 1024)));
          }
        }
        accepted++;
      } catch (e) {
        assert.ok(e instanceof InputError, `not an InputError: ${(e as Error)?.stack}`);
        assert.ok(!e.message.includes('\n'), 'one line');
        assert.ok(e.message.startsWith(`${model}: tensor 'w': `), e.message);
      }
    }),
    { numRuns: 400, seed: 12 },
  );
  assert.ok(accepted > 0, 'some mutations are valid models');
});
