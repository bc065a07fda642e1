import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cutModel } from '../../src/onnx/cut.js';
import { encodeModel, saveModel } from '../../src/onnx/model.js';
import type { ModelProto } from '../../src/onnx/proto.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32 } from '../../src/shards/tensor.js';
import { runCli, tempDir } from '../helpers.js';

/** x [B,4] → mid = tanh(x·W1) → y = relu(mid·W2) + x·W3 (a skip around the cut), s = Σ mid. */
function model(): ModelProto {
  const g = new GraphBuilder('skip', 18);
  const x = g.input('x', 'float32', ['B', 4]);
  const w1 = g.init('w1', Float32Array, [4, 5], (i) => Math.sin(i + 1));
  const w2 = g.init('w2', Float32Array, [5, 3], (i) => Math.cos(i));
  const w3 = g.init('w3', Float32Array, [4, 3], (i) => 0.1 * i - 0.5);
  g.op('Tanh', [g.op('MatMul', [x, w1])], {}, { outputs: ['mid'] });
  const y = g.op('Add', [g.op('Relu', [g.op('MatMul', ['mid', w2])]), g.op('MatMul', [x, w3])]);
  g.output(y, 'y');
  g.output(g.op('ReduceSum', ['mid', g.ints([1])], { keepdims: 0 }), 's');
  return g.toModel();
}

const x = f32([2, 4], [0.3, -0.7, 1.1, 0.5, 0.2, -0.4, 0.9, -1.3]);
const opts = { threads: 1 };

test('prefix ∘ suffix equals the whole model (numerically, in onnxruntime), batch still dynamic', async () => {
  const whole = await ModelSession.open(encodeModel(model()), opts);
  const ref = await whole.run({ x });
  const pre = cutModel(model(), { to: 'mid' });
  const suf = cutModel(model(), { from: 'mid' });
  assert.deepEqual(pre.outputs, ['mid']);
  // y still reads x through the skip: the suffix keeps that input.
  assert.deepEqual(suf.inputs, ['mid', 'x']);
  const inits = (m: ModelProto) =>
    (m.graph?.initializer ?? []).map((t) => t.name).filter((n) => n?.startsWith('w'));
  assert.deepEqual(inits(pre.model), ['w1']);
  assert.deepEqual(inits(suf.model).sort(), ['w2', 'w3']);
  const midIn = suf.model.graph!.input![0]!.type!.tensorType!.shape!.dim!;
  assert.equal(midIn[0]!.dimParam, 'B');
  assert.equal(midIn[1]!.dimValue, 5);
  const p = await ModelSession.open(encodeModel(pre.model), opts);
  const s = await ModelSession.open(encodeModel(suf.model), opts);
  // a batch of 2 and of 1 through the same cut models
  const mid = (await p.run({ x })).mid!;
  const out = await s.run({ mid, x });
  for (const k of ['y', 's']) {
    const a = ref[k]!.data as Float32Array;
    const b = out[k]!.data as Float32Array;
    assert.equal(a.length, b.length);
    a.forEach((v, i) => {
      assert.ok(Math.abs(v - b[i]!) < 1e-6, `${k}[${i}] ${v} vs ${b[i]}`);
    });
  }
  const x1 = f32([1, 4], [0.3, -0.7, 1.1, 0.5]);
  const mid1 = (await p.run({ x: x1 })).mid!;
  const y1 = (await s.run({ mid: mid1, x: x1 })).y!.data as Float32Array;
  for (const i of [0, 1, 2]) assert.ok(Math.abs(y1[i]! - (ref.y!.data as Float32Array)[i]!) < 1e-6);
  for (const m of [whole, p, s]) await m.release();
});

test('a cut tensor that is not in the model is an InputError naming the flag and listing candidates', () => {
  assert.throws(
    () => cutModel(model(), { from: 'blocks.9.output' }),
    (e: Error) =>
      /--from: 'blocks\.9\.output' is not a tensor of the model; candidates: x, mid/.test(e.message),
  );
});

test('onnx cut on the command line: --to and --from write models, a bad --from exits 2 with one line', async () => {
  const dir = tempDir('vggrpo-cut-');
  const m = join(dir, 'm.onnx');
  saveModel(model(), m);
  const suffix = join(dir, 'suffix.onnx');
  const r = await runCli(['onnx', 'cut', m, '--from', 'mid', '--out', suffix]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), suffix);
  const s = await ModelSession.open(suffix, opts);
  assert.deepEqual([...s.inputNames], ['mid', 'x']);
  await s.release();
  const bad = await runCli(['onnx', 'cut', m, '--from', 'nope', '--out', join(dir, 'x.onnx')]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /--from \(.*m\.onnx\): 'nope' is not a tensor of the model; candidates: x, mid/);
});
