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
