/**
 * The command-level functions: files in, files out, typed summaries; --shape parsing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { gradCommand, loraCommand, parseShapes } from '../../src/onnx/cli-ops.js';
import { loadModel, saveModel } from '../../src/onnx/model.js';
import { buildToyDit } from '../../src/onnx/toy-dit.js';
import { run } from './ort-helper.js';

test('parseShapes reads input shapes and symbolic dims, rejects junk', () => {
  assert.deepEqual(parseShapes(['latents=1,16,5,8,8', 'batch=2;seq=7']), {
    latents: [1, 16, 5, 8, 8],
    batch: [2],
    seq: [7],
  });
  assert.throws(() => parseShapes(['latents=1,a']), /--shape latents=1,a/);
  assert.throws(() => parseShapes(['=3']), /NAME=D0/);
});

test('--shape c= gives a scalar input its shape []', () => {
  assert.deepEqual(parseShapes(['c=', 'x=2']), { c: [], x: [2] });
  const g = new GraphBuilder('scalar', 18);
  const x = g.input('x', 'float32', [2]);
  g.graph.input?.push({ name: 'c', type: { tensorType: { elemType: 1 } } }); // no shape declared
  g.output(g.op('Mul', [x, 'c']), 'y');
  assert.throws(() => buildGradientGraph(g.toModel(), { wrt: ['c'] }), /--shape c=/);
  const { model } = buildGradientGraph(g.toModel(), { wrt: ['c'], shapes: parseShapes(['c=']) });
  const out = model.graph?.output?.find((o) => o.name === 'grad:c');
  assert.deepEqual(out?.type?.tensorType?.shape?.dim ?? [], []);
});

test('lora then grad on a saved toy DiT: the written gradient model has the contract names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-cli-'));
  const base = join(dir, 'dit.onnx');
  saveModel(buildToyDit({ layers: 1, dynamicBatch: true }), base);
  const l = loraCommand({
    model: base,
    out: join(dir, 'dit.lora.onnx'),
    rank: 2,
    alpha: 4,
    targets: ['blocks.0.self_attn.?.weight'],
  });
  assert.deepEqual(l.adapters.map((a) => a.module).sort(), [
    'blocks.0.self_attn.k',
    'blocks.0.self_attn.o',
    'blocks.0.self_attn.q',
    'blocks.0.self_attn.v',
  ]);
  assert.throws(
    () => gradCommand({ model: l.out, out: join(dir, 'g.onnx'), wrt: ['lora:*'] }),
    /dynamic dim 0 \('batch'\)/,
  );
  const r = gradCommand({
    model: l.out,
    out: join(dir, 'g.onnx'),
    wrt: ['lora:*'],
    shapes: parseShapes(['batch=1']),
  });
  assert.equal(r.params.length, 8);
  assert.ok(r.inputs.includes('grad:velocity'));
  assert.ok(r.outputs.includes('grad:lora:blocks.0.self_attn.q.weight:A'));
  assert.deepEqual(r.warnings, []);
  const g = loadModel(r.out);
  assert.equal(g.graph!.node!.length, r.nodes);
  assert.deepEqual(readdirSync(dir).sort(), ['dit.lora.onnx', 'dit.onnx', 'g.onnx']);
  rmSync(dir, { recursive: true });
});

test('onnx grad on a saved model whose Reshape shape is an input: the written model takes it at run time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-cli-'));
  try {
    const g = new GraphBuilder('fed-shape', 18);
    const x = g.input('x', 'float32', [2, 6]);
    const s = g.input('s', 'int64', [2]);
    g.output(g.op('Tanh', [g.op('Reshape', [x, s])]), 'y');
    const src = join(dir, 'm.onnx');
    saveModel(g.toModel(), src);
    const r = gradCommand({ model: src, out: join(dir, 'm.grad.onnx'), wrt: ['x'] });
    assert.deepEqual(r.inputs, ['x', 's', 'grad:y']);
    // grad:y's dims are named, since y's shape follows the fed s
    const gy = loadModel(r.out).graph?.input?.find((v) => v.name === 'grad:y');
    assert.deepEqual(
      gy?.type?.tensorType?.shape?.dim?.map((d) => d.dimParam ?? d.dimValue),
      ['y_d0', 'y_d1'],
    );
    // d tanh(x) = 1 − tanh², whatever shape the middle value takes
    const xs = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 5);
    for (const shape of [
      [3, 4],
      [12, 1],
    ]) {
      const out = await run(loadModel(r.out), {
        x: { data: xs, dims: [2, 6] },
        s: { data: BigInt64Array.from(shape, BigInt), dims: [2] },
        'grad:y': { data: new Float32Array(12).fill(1), dims: shape },
      });
      assert.deepEqual(out.y?.dims, shape);
      const gx = Array.from(out['grad:x']!.data as Float32Array);
      for (const [i, v] of gx.entries()) assert.ok(Math.abs(v - (1 - Math.tanh(xs[i]!) ** 2)) < 1e-6);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
