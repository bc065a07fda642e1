/**
 * A graph written the way torch.onnx's exporters write attention and RMSNorm: Constant nodes
 * instead of initializers, scalar Gathers on Shape re-assembled with Unsqueeze/Concat, the
 * SDPA scale computed from the head size (Shape → Slice → Cast → Sqrt → Div), `onnx::` value
 * names, a pre-transposed weight behind Transpose. Shapes resolve statically, the gradient
 * matches finite differences, and LoRA finds the weight behind the Transpose.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { injectLora } from '../../src/onnx/lora.js';
import { makeTensor } from '../../src/onnx/model.js';
import { inferShapes } from '../../src/onnx/shapes.js';
import { gradCheck } from './gradcheck.js';
import { randArr, rng } from './ort-helper.js';

function exported() {
  const r = rng(31);
  const g = new GraphBuilder('main_graph', 17);
  const D = 8;
  const H = 2;
  const x = g.input('hidden_states', 'float32', ['batch', 'seq', D]);
  const k = (name: string, vals: number[], dims: number[] = []) =>
    g.op(
      'Constant',
      [],
      {
        value: makeTensor(
          name,
          dims,
          BigInt64Array.from(vals, (v) => (v >= 2 ** 63 ? 9223372036854775807n : BigInt(v))),
        ),
      },
      { outputs: [name] },
    );
  const w = g.init('attn.to_q.weight', Float32Array, [D, D], () => r() / 3);
  const q = g.op('MatMul', [x, g.op('Transpose', [w], { perm: [1, 0] }, { outputs: ['onnx::MatMul_12'] })]);
  // b, s = x.shape[0], x.shape[1]; q.view(b, s, H, -1).transpose(1, 2)
  const shp = g.op('Shape', [x], {}, { outputs: ['onnx::Shape_13'] });
  const b = g.op('Gather', [shp, k('onnx::Gather_14', [0])], { axis: 0 });
  const s = g.op('Gather', [shp, k('onnx::Gather_15', [1])], { axis: 0 });
  let uc = 0;
  const u = (v: string) => g.op('Unsqueeze', [v, k(`onnx::Unsqueeze_${uc++}`, [0], [1])]);
  const view = g.op('Concat', [u(b), u(s), k('onnx::Concat_16', [H], [1]), k('onnx::Concat_17', [-1], [1])], {
    axis: 0,
  });
  const qh = g.op('Transpose', [g.op('Reshape', [q, view])], { perm: [0, 2, 1, 3] });
  // RMSNorm on the heads: x * rsqrt(mean(x^2) + eps)
  const two = g.op('Constant', [], { value: makeTensor('c2', [], Float32Array.of(2)) });
  const eps = g.op('Constant', [], { value: makeTensor('ce', [], Float32Array.of(1e-6)) });
  const ms = g.op('ReduceMean', [g.op('Pow', [qh, two])], { axes: [-1], keepdims: 1 });
  const qn = g.op('Mul', [qh, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, eps])])])]);
  // scale = 1 / sqrt(q.shape[-1]) computed in the graph
  const hd = g.op('Slice', [g.op('Shape', [qn]), k('s0', [-1], [1]), k('s1', [2 ** 63], [1])]);
  const scale = g.op('Div', [
    g.op('Constant', [], { value: makeTensor('one', [1], Float32Array.of(1)) }),
    g.op('Sqrt', [g.op('Cast', [hd], { to: 1 })]),
  ]);
  const att = g.op(
    'Softmax',
    [g.op('Mul', [g.op('MatMul', [qn, g.op('Transpose', [qh], { perm: [0, 1, 3, 2] })]), scale])],
    { axis: -1 },
  );
  const o = g.op('Transpose', [g.op('MatMul', [att, qh])], { perm: [0, 2, 1, 3] });
  const back = g.op('Concat', [u(b), u(s), k('onnx::Concat_20', [D], [1])], { axis: 0 });
  g.output(g.op('Reshape', [o, back]), 'out');
  return g.toModel();
}

test('exporter-style attention: static shapes from overrides, gradient matches, LoRA through Transpose', async () => {
  const m = exported();
  const info = inferShapes(m, { shapes: { batch: [2], seq: [5] } });
  assert.deepEqual(info.types.get('out')!.shape, [2, 5, 8]);
  assert.ok([...info.consts.values()].some((c) => c.shape.length === 1 && c.data.join() === '2,5,2,-1'));
  const r = rng(32);
  const feeds = { hidden_states: randArr(r, [2, 5, 8]) };
  await gradCheck(m, {
    wrt: ['attn.to_q.weight', 'hidden_states'],
    feeds,
    shapes: { batch: [2], seq: [5] },
    h: 3e-3,
    rtol: 4e-3,
  });
  const { adapters } = injectLora(m, { rank: 2, alpha: 2, targets: ['attn.*.weight'] });
  assert.deepEqual(
    adapters.map((a) => [a.weight, a.transposed]),
    [['attn.to_q.weight', true]],
  );
});
