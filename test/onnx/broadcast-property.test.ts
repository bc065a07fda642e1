/**
 * Property test: for random broadcast-compatible shapes (ranks 0–4, size-1 axes anywhere) every
 * binary elementwise rule reduces its cotangents back to each operand's shape correctly, checked
 * against float64 finite differences.
 */
import { test } from 'node:test';
import fc from 'fast-check';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { gradCheck } from './gradcheck.js';
import { randArr, rng } from './ort-helper.js';

const OPS = ['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Pow', 'Where'] as const;

/** Two shapes that broadcast: a common full shape, each operand drops leading axes or sets 1s. */
const shapesArb = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 4 })
  .chain((full) =>
    fc.tuple(
      fc.constant(full),
      fc.integer({ min: 0, max: full.length }),
      fc.integer({ min: 0, max: full.length }),
      fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }),
      fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }),
    ),
  )
  .map(([full, dropA, dropB, onesA, onesB]) => ({
    a: full.slice(dropA).map((d, i) => (onesA[i + dropA] ? 1 : d)),
    b: full.slice(dropB).map((d, i) => (onesB[i + dropB] ? 1 : d)),
  }));

test('binary rules reduce broadcast cotangents to each operand shape', async () => {
  await fc.assert(
    fc.asyncProperty(
      shapesArb,
      fc.constantFrom(...OPS),
      fc.integer({ min: 1, max: 1000 }),
      async ({ a, b }, op, seed) => {
        const g = new GraphBuilder('bc', 18);
        const x = g.input('a', 'float64', a);
        const y = g.input('b', 'float64', b);
        let out: string;
        if (op === 'Where') out = g.op('Where', [g.op('Greater', [x, y]), x, y]);
        else if (op === 'Pow')
          out = g.op('Pow', [g.op('Add', [g.op('Mul', [x, x]), g.const([1], 'float64')]), y]);
        else
          out = g.op(op, [x, op === 'Div' ? g.op('Add', [g.op('Mul', [y, y]), g.const([1], 'float64')]) : y]);
        g.output(out, 'y');
        const r = rng(seed);
        await gradCheck(g.toModel(), {
          wrt: ['a', 'b'],
          feeds: { a: randArr(r, a, true), b: randArr(r, b, true) },
          seed,
          rtol: 1e-5,
        });
      },
    ),
    { numRuns: 40, seed: 42 },
  );
});
