/**
 * The gradient-graph contract: inputs and outputs named as onnx/README.md fixes them, zero gradients
 * with a warning for unreachable parameters, errors that name the operator, node and parameter,
 * dead forward nodes removed, standard ai.onnx ops only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { buildToyDit } from '../../src/onnx/toy-dit.js';
import { run } from './ort-helper.js';

function twoHeads() {
  const g = new GraphBuilder('heads', 18);
  const x = g.input('x', 'float32', [2, 3]);
  const w = g.init('w', Float32Array, [3, 3], (i) => (i % 4) - 1.5);
  const u = g.init('unused', Float32Array, [4], () => 1);
  const h = g.op('MatMul', [x, w]);
  g.output(g.op('Tanh', [h]), 'a');
  g.output(g.op('ReduceSum', [h, g.const([1], 'int64', [1])], { keepdims: 0 }), 'b');
  g.output(g.op('Shape', [h]), 'shape');
  g.output(g.op('Relu', [u]), 'side');
  return g.toModel();
}

test('inputs grad:Y for float outputs, outputs grad:P, zero gradient + warning for unreachable parameters', async () => {
  const { model, params, warnings } = buildGradientGraph(twoHeads(), { wrt: ['w', 'x', 'unused'] });
  assert.deepEqual(params, ['w', 'x', 'unused']);
  const ins = model.graph!.input!.map((i) => i.name);
  assert.deepEqual(ins, ['x', 'grad:a', 'grad:b', 'grad:side']);
  const outs = model.graph!.output!.map((o) => o.name);
  assert.deepEqual(outs, ['a', 'b', 'shape', 'side', 'grad:w', 'grad:x', 'grad:unused']);
  assert.equal(warnings.length, 0, 'unused reaches the float output side');
  const x = { data: Float32Array.of(1, 2, 3, -1, 0, 1), dims: [2, 3] };
  const ones = (dims: number[]) => ({
    data: new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(1),
    dims,
  });
  const zeros = (dims: number[]) => ({ data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims });
  // dL/db = 1 per row: grad:w[i][j] = Σ_rows x[row][i]; grad:x[row][i] = Σ_j w[i][j]
  const out = await run(model, { x, 'grad:a': zeros([2, 3]), 'grad:b': ones([2]), 'grad:side': zeros([4]) });
  assert.deepEqual([...(out['grad:w']!.data as Float32Array)], [0, 0, 0, 2, 2, 2, 4, 4, 4]);
  const w = [-1.5, -0.5, 0.5, 1.5, -1.5, -0.5, 0.5, 1.5, -1.5];
  const rowSums = [0, 1, 2].map((i) => w[3 * i]! + w[3 * i + 1]! + w[3 * i + 2]!);
  assert.deepEqual([...(out['grad:x']!.data as Float32Array)], [...rowSums, ...rowSums]);
  assert.deepEqual([...(out['grad:unused']!.data as Float32Array)], [0, 0, 0, 0]);

  const { warnings: w2, model: m2 } = buildGradientGraph(twoHeads(), { wrt: ['unused'] });
  assert.equal(w2.length, 0);
  // only the path to 'side' plus forward outputs is kept
  assert.ok(m2.graph!.node!.length < 12);
});

test('a parameter that reaches no float output gets zeros and a warning', async () => {
  const g = new GraphBuilder('cut', 18);
  const x = g.input('x', 'float32', [3]);
  const p = g.init('p', Float32Array, [2, 2], () => 1);
  g.output(g.op('Shape', [g.op('Mul', [p, p])]), 'n');
  g.output(g.op('Exp', [x]), 'y');
  const { model, warnings } = buildGradientGraph(g.toModel(), { wrt: ['p'] });
  assert.match(warnings.join(), /'p' does not reach any float output/);
  const out = await run(model, {
    x: { data: Float32Array.of(0, 1, 2), dims: [3] },
    'grad:y': { data: Float32Array.of(1, 1, 1), dims: [3] },
  });
  assert.deepEqual(out['grad:p']!.dims, [2, 2]);
  assert.deepEqual([...(out['grad:p']!.data as Float32Array)], [0, 0, 0, 0]);
});

test('unsupported operator: input error naming the operator, the node and the parameter', () => {
  const g = new GraphBuilder('bad', 18);
  const x = g.input('x', 'float32', [3]);
  const w = g.init('layer.weight', Float32Array, [3], () => 1);
  g.output(g.op('Mod', [g.op('Mul', [x, w]), g.const([0.7], 'float32')], { fmod: 1 }, { name: 'act1' }), 'y');
  assert.throws(
    () => buildGradientGraph(g.toModel(), { wrt: ['layer.*'] }),
    (e: Error & { exitCode?: number }) =>
      e.exitCode === 2 && /operator Mod \(node 'act1'\).*'layer\.weight'/.test(e.message),
  );
  assert.throws(
    () => buildGradientGraph(g.toModel(), { wrt: ['nothing*'] }),
    /matches no initializer or graph input/,
  );
});

test('a name that would be both input and output is an error', () => {
  const g = new GraphBuilder('clash', 18);
  const x = g.input('x', 'float32', [3]);
  g.input('grad:y', 'float32', [3]);
  g.output(g.op('Exp', [x]), 'y');
  assert.throws(() => buildGradientGraph(g.toModel(), { wrt: ['x'] }), /'grad:y' already exists/);
});

test('the DiT gradient graph uses standard ai.onnx ops only and keeps the forward output', () => {
  const m = buildToyDit({ layers: 1 });
  const { model } = buildGradientGraph(m, { wrt: ['blocks.0.self_attn.q.weight'] });
  assert.ok(model.graph!.node!.every((n) => !n.domain || n.domain === 'ai.onnx'));
  assert.ok(!model.graph!.node!.some((n) => /Grad$/.test(n.opType ?? '')));
  assert.deepEqual(
    model.graph!.output!.map((o) => o.name),
    ['velocity', 'grad:blocks.0.self_attn.q.weight'],
  );
  // the cross-attention k/v of the context do not lead to q's gradient beyond the forward
  const all = new Set(model.graph!.initializer!.map((t) => t.name));
  assert.ok(all.has('blocks.0.cross_attn.k.weight'), 'still needed by the forward output');
});
