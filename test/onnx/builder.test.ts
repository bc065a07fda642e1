/**
 * The graph builder: scalar and 1-D constants, multi-output ops, output renaming, name clashes,
 * checked by running the built model in onnxruntime.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { run } from './ort-helper.js';

test('builder: scalar and 1-D constants, multi-output ops, renamed outputs run in onnxruntime', async () => {
  const g = new GraphBuilder('b', 18);
  const x = g.input('x', 'float32', [2, 4]);
  const [p, q] = g.opN('Split', [x, g.ints([1, 3])], { axis: 1 }, { outputs: 2 });
  const s = g.op('Mul', [g.op('ReduceSum', [q!, g.ints([1])]), g.const([0.5])]);
  g.output(g.op('Add', [p!, s]), 'y');
  g.output(x, 'x_copy');
  const out = await run(g.toModel(), { x: { data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), dims: [2, 4] } });
  assert.deepEqual([...(out.y!.data as Float32Array)], [1 + 4.5, 5 + 10.5]);
  assert.deepEqual([...(out.x_copy!.data as Float32Array)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => g.input('x', 'float32', [1]), /already used/);
});
