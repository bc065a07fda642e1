/**
 * One graph whose float inputs (of the given shapes) are all parameters, checked against central
 * finite differences by gradcheck.ts: the helper of the per-operator gradient tests.
 */
import { type DTypeName, GraphBuilder } from '../../src/onnx/builder.js';
import { gradCheck } from './gradcheck.js';
import { type Arr, randArr, rng } from './ort-helper.js';

export type Build = (g: GraphBuilder, x: string[]) => string | string[];

/** One graph with float inputs of the given shapes, all of them parameters. */
export async function check(
  name: string,
  shapes: number[][],
  build: Build,
  o: { dtype?: DTypeName; opset?: number; seed?: number; positive?: boolean; rtol?: number; h?: number } = {},
) {
  const dtype = o.dtype ?? 'float64';
  const g = new GraphBuilder(name, o.opset ?? 18);
  const r = rng(o.seed ?? 7);
  const feeds: Record<string, Arr> = {};
  const xs = shapes.map((s, i) => {
    const n = g.input(`x${i}`, dtype, s);
    feeds[n] = randArr(r, s, dtype === 'float64', o.positive ? 0.5 : 1, o.positive ? 1 : 0);
    return n;
  });
  const ys = build(g, xs);
  (Array.isArray(ys) ? ys : [ys]).forEach((y, i) => {
    g.output(y, `y${i}`);
  });
  await gradCheck(g.toModel(), { wrt: xs, feeds, rtol: o.rtol, h: o.h, seed: (o.seed ?? 7) + 1 });
}

export const c64 = (g: GraphBuilder, v: number) => g.const([v], 'float64');
