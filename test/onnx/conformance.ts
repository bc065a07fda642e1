/**
 * ONNX's own backend node tests (Debian's libonnx-testdata) as gradient checks: every test whose
 * nodes all have a rule in the registry (src/onnx/ops/index.ts) is differentiated with respect to
 * its float inputs and compared with central finite differences (gradcheck.ts), in float64 where
 * onnxruntime runs the graph in float64. Non-float inputs and inputs no rule differentiates
 * (shapes, axes, starts/ends, sizes, repeats, pads, indices, conditions) stay graph inputs fed at
 * run time, so one gradient model has to serve whatever value is fed; only the inputs whose
 * values a rule reads when the graph is written (its `valueNeeded`: Resize's scales and sizes,
 * Dropout's ratio and mode) become constants of the graph.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGradientGraph } from '../../src/onnx/autodiff.js';
import { modelOpset } from '../../src/onnx/graph.js';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../../src/onnx/half.js';
import { loadModel, makeTensor, tensorToArray } from '../../src/onnx/model.js';
import { opDef } from '../../src/onnx/ops/index.js';
import { covers } from '../../src/onnx/ops/types.js';
import {
  DataType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  TensorProtoType,
  TO_OBJECT,
} from '../../src/onnx/proto.js';
import { gradCheck } from './gradcheck.js';
import { type Arr, randArr, rng, run } from './ort-helper.js';

export const NODE_TESTS = process.env.ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data/node';

/** A pass says whether some input (shape, axes, indices, …) was fed at run time, not baked in. */
export type Outcome = { status: 'pass'; fedAtRunTime: boolean } | { status: 'fail'; reason: string };

/** Test directories whose every node has a gradient rule (at least one not 'zero'). */
export function candidates(root = NODE_TESTS): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => existsSync(join(root, d, 'model.onnx')) && existsSync(join(root, d, 'test_data_set_0')))
    .filter((d) => {
      const nodes = loadModel(join(root, d, 'model.onnx')).graph?.node ?? [];
      const defs = nodes.map((n) => opDef(n)?.grad);
      return defs.every((g) => g) && defs.some((g) => g !== 'zero');
    })
    .sort();
}

const readTensor = (path: string): TensorProto =>
  TensorProtoType.toObject(TensorProtoType.decode(readFileSync(path)), TO_OBJECT) as TensorProto;

/** Whether graph input `name` is read where a rule needs its value when the graph is written. */
function valueNeeded(nodes: NodeProto[], name: string): boolean {
  return nodes.some((n) => {
    const g = opDef(n)?.grad;
    const needed = g && g !== 'zero' ? (g.valueNeeded ?? []) : [];
    return (n.input ?? []).some((x, i) => x === name && needed.includes(i));
  });
}

/** Whether graph input `name` is read by some node at an input its rule does not differentiate. */
function constantUse(nodes: NodeProto[], name: string): boolean {
  return nodes.some((n) => {
    const g = opDef(n)?.grad;
    return (n.input ?? []).some((x, i) => x === name && (g === 'zero' || !covers(g?.inputs, i)));
  });
}

const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE]);
const HALVES = new Set<number>([DataType.FLOAT16, DataType.BFLOAT16]);

/** A float tensor's values as numbers (float16/bfloat16 bits decoded). */
function numbersOf(t: TensorProto): number[] {
  const a = tensorToArray(t);
  if (t.dataType === DataType.FLOAT16) return Array.from(a as Uint16Array, halfToFloat);
  if (t.dataType === DataType.BFLOAT16) return Array.from(a as Uint16Array, bf16ToFloat);
  return Array.from(a as Float64Array);
}

/** `v` as a feed of element type `et` (float16 as its bits; bfloat16 graphs take float32, src/onnx/half.ts). */
function feedOf(v: number[], dims: number[], et: number): Arr {
  if (et === DataType.FLOAT16) return { data: Uint16Array.from(v, floatToHalf), dims };
  if (et === DataType.DOUBLE) return { data: Float64Array.from(v), dims };
  return { data: Float32Array.from(v), dims };
}

/** `v` rounded to what element type `et` holds. */
function roundTo(v: number[], et: number): number[] {
  if (et === DataType.FLOAT16) return v.map((x) => halfToFloat(floatToHalf(x)));
  if (et === DataType.BFLOAT16) return v.map((x) => bf16ToFloat(floatToBf16(x)));
  return et === DataType.FLOAT ? v.map(Math.fround) : v;
}

/**
 * A half-precision node test: the gradient graph of the test's own graph (float16 computing in
 * float16, bfloat16 widened to float32) against central finite differences of its float64
 * widening, where rounding to a half type is the identity (as the Cast rule treats it), to
 * float16 accuracy (1e-2 of the larger side).
 */
async function judgeHalf(
  model: ModelProto,
  wrt: string[],
  raw: Record<string, TensorProto>,
  runtime: Record<string, Arr>,
): Promise<Outcome> {
  try {
    const r = rng(1);
    const dims = (n: string) => [...(raw[n]?.dims ?? [])];
    const shapes = Object.fromEntries([
      ...wrt.map((n) => [n, dims(n)]),
      ...Object.entries(runtime).map(([k, v]) => [k, v.dims]),
    ]);
    const { model: gm } = buildGradientGraph(model, { wrt, shapes });
    const inType = (n: string) => gm.graph?.input?.find((v) => v.name === n)?.type?.tensorType?.elemType ?? 0;
    const values = Object.fromEntries(wrt.map((n) => [n, numbersOf(raw[n]!)]));
    const wide = toFloat64(model, true);
    const wideRuntime = Object.fromEntries(
      Object.entries(runtime).map(([k, v]) => [
        k,
        v.data instanceof Float32Array ? { data: Float64Array.from(v.data), dims: v.dims } : v,
      ]),
    );
    const wideFeeds = (shift: (n: string) => number[]): Record<string, Arr> => ({
      ...wideRuntime,
      ...Object.fromEntries(wrt.map((n) => [n, { data: Float64Array.from(shift(n)), dims: dims(n) }])),
    });
    const base = await run(
      wide,
      wideFeeds((n) => values[n]!),
    );
    const gfeeds: Record<string, Arr> = { ...runtime };
    for (const n of wrt) gfeeds[n] = feedOf(values[n]!, dims(n), inType(n));
    const u: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(base)) {
      if (!(v.data instanceof Float64Array)) continue;
      const et = inType(`grad:${k}`);
      u[k] = roundTo(Array.from(randArr(r, v.dims, true).data), et);
      gfeeds[`grad:${k}`] = feedOf(u[k]!, v.dims, et);
    }
    const gout = await run(gm, gfeeds);
    const dirs = Object.fromEntries(wrt.map((n) => [n, Array.from(randArr(r, dims(n), true).data)]));
    let an = 0;
    for (const n of wrt) {
      const gr = Array.from(gout[`grad:${n}`]!.data as Float32Array, Number);
      an += gr.reduce((acc, x, i) => acc + x * dirs[n]![i]!, 0);
    }
    const h = 1e-4;
    const L = async (sign: number) => {
      const out = await run(
        wide,
        wideFeeds((n) => values[n]!.map((x, i) => x + sign * h * dirs[n]![i]!)),
      );
      return Object.keys(u).reduce(
        (acc, k) => acc + Array.from(out[k]!.data as Float64Array).reduce((q, y, i) => q + y * u[k]![i]!, 0),
        0,
      );
    };
    const fd = ((await L(1)) - (await L(-1))) / (2 * h);
    const scale = Math.max(Math.abs(fd), Math.abs(an), 1e-3);
    // (a NaN on either side fails too)
    if (!(Math.abs(fd - an) <= 1e-2 * scale))
      return { status: 'fail', reason: `half precision: finite difference ${fd} vs gradient ${an}` };
    return { status: 'pass', fedAtRunTime: Object.keys(runtime).length > 0 };
  } catch (err) {
    return {
      status: 'fail',
      reason: `half precision: ${((err as Error).message ?? String(err)).split('\n')[0]}`,
    };
  }
}
/** Element types onnxruntime-node feeds (strings and the like stay constants). */
const RUNTIME_TYPES = new Set<number>([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.INT64,
  DataType.INT32,
  DataType.BOOL,
]);

/**
 * The same graph computing in float64: float32 types, tensors and Cast targets widened (with
 * `halves`, float16 and bfloat16 ones too: rounding to them becomes the identity).
 */
export function toFloat64(model: ModelProto, halves = false): ModelProto {
  const from = new Set<number>([DataType.FLOAT, ...(halves ? HALVES : [])]);
  const widenT = (t: TensorProto): TensorProto =>
    from.has(t.dataType ?? 0)
      ? makeTensor(t.name ?? '', [...(t.dims ?? [])], Float64Array.from(numbersOf(t)))
      : t;
  const widenV = <V extends { type?: { tensorType?: { elemType?: number } } }>(v: V): V =>
    v.type?.tensorType && from.has(v.type.tensorType.elemType ?? 0)
      ? { ...v, type: { ...v.type, tensorType: { ...v.type.tensorType, elemType: DataType.DOUBLE } } }
      : v;
  const g = model.graph ?? {};
  return {
    ...model,
    graph: {
      ...g,
      input: (g.input ?? []).map(widenV),
      output: (g.output ?? []).map(widenV),
      valueInfo: (g.valueInfo ?? []).map(widenV),
      initializer: (g.initializer ?? []).map(widenT),
      node: (g.node ?? []).map((n) => ({
        ...n,
        attribute: (n.attribute ?? []).map((a) => {
          if (n.opType === 'Cast' && a.name === 'to' && from.has(a.i ?? 0))
            return { ...a, i: DataType.DOUBLE };
          return a.t ? { ...a, t: widenT(a.t) } : a;
        }),
      })),
    },
  };
}

/** One node test: build its gradient graph and compare with finite differences. */
export async function judge(dir: string): Promise<Outcome> {
  const model = loadModel(join(dir, 'model.onnx'));
  const g = model.graph ?? {};
  const opset = modelOpset(model);
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (g.input ?? []).filter((v) => !inits.has(v.name ?? ''));
  const feeds: Record<string, Arr> = {};
  /** Inputs fed at run time that are not differentiated (shapes, axes, indices, conditions). */
  const runtime: Record<string, Arr> = {};
  const consts: TensorProto[] = [];
  const wrt: string[] = [];
  const raw: Record<string, TensorProto> = {};
  inputs.forEach((v, i) => {
    const name = v.name ?? '';
    const stored = readTensor(join(dir, 'test_data_set_0', `input_${i}.pb`));
    // onnx 1.12 stores bfloat16 test data as uint16 bits
    const bits = v.type?.tensorType?.elemType === DataType.BFLOAT16 && stored.dataType === DataType.UINT16;
    const t = bits ? { ...stored, dataType: DataType.BFLOAT16 } : stored;
    const arr = () => ({ data: tensorToArray(t) as Float32Array, dims: [...(t.dims ?? [])] });
    const nodes = g.node ?? [];
    if ((FLOATS.has(t.dataType ?? 0) || HALVES.has(t.dataType ?? 0)) && !constantUse(nodes, name)) {
      wrt.push(name);
      raw[name] = t;
      if (FLOATS.has(t.dataType ?? 0)) feeds[name] = arr();
    } else if (valueNeeded(nodes, name) || !RUNTIME_TYPES.has(t.dataType ?? 0)) consts.push({ ...t, name });
    else runtime[name] = arr();
  });
  const types = [...inputs, ...(g.output ?? [])].map((v) => v.type?.tensorType?.elemType ?? 0);
  if (!wrt.length) return { status: 'fail', reason: 'no differentiable float input' };
  const fixed: ModelProto = {
    ...model,
    graph: {
      ...g,
      input: (g.input ?? []).filter((v) => !consts.some((t) => t.name === v.name)),
      initializer: [...(g.initializer ?? []), ...consts],
    },
  };
  if (types.some((t) => HALVES.has(t))) return judgeHalf(fixed, wrt, raw, runtime);
  const wide = toFloat64(fixed);
  const wideFeeds = Object.fromEntries(
    Object.entries({ ...feeds, ...runtime }).map(([k, v]) => [
      k,
      v.data instanceof Float32Array ? { data: Float64Array.from(v.data), dims: v.dims } : v,
    ]),
  );
  let m = fixed;
  let f = { ...feeds, ...runtime };
  try {
    await run(wide, wideFeeds);
    m = wide;
    f = wideFeeds;
  } catch {
    // no float64 kernel: check in float32
  }
  try {
    const shapes = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.dims]));
    try {
      await gradCheck(m, { wrt, feeds: f, seed: 1, shapes });
    } catch (err) {
      // an output shape that depends on the parameters' values (Range): they become initializers
      if (!/is not a constant/.test((err as Error).message)) throw err;
      await gradCheck(asInitializers(m, f), { wrt, feeds: {}, seed: 1 });
    }
    return { status: 'pass', fedAtRunTime: Object.keys(runtime).length > 0 };
  } catch (err) {
    const msg = ((err as Error).message ?? String(err)).split('\n')[0] ?? '';
    return { status: 'fail', reason: opset < 13 ? `opset ${opset}: ${msg}` : msg };
  }
}

/** The graph with the fed inputs as initializers holding their values. */
function asInitializers(model: ModelProto, feeds: Record<string, Arr>): ModelProto {
  const g = model.graph ?? {};
  const inits = Object.entries(feeds).map(([k, v]) => makeTensor(k, v.dims, v.data as Float32Array));
  return {
    ...model,
    graph: {
      ...g,
      input: (g.input ?? []).filter((v) => !((v.name ?? '') in feeds)),
      initializer: [...(g.initializer ?? []), ...inits],
    },
  };
}

/**
 * The candidates down-converted to each of `opsets` by onnx's version_converter
 * (test/onnx/downconvert.py with /usr/bin/python3) into `out`; returns the directories written,
 * named `<test>@opset<N>`. Conversions onnx cannot do (or that crash it) are left out.
 */
export function downConvert(names: string[], opsets: number[], out: string, root = NODE_TESTS): string[] {
  const script = new URL('./downconvert.py', import.meta.url).pathname;
  let todo = [...names];
  while (todo.length) {
    const r = spawnSync(
      '/usr/bin/python3',
      [script, '--root', root, '--out', out, '--opset', ...opsets.map(String)],
      {
        input: todo.join('\n'),
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    if (r.status === 0) break;
    // a crash: go on after the test it was converting
    const started = (r.stdout ?? '')
      .split('\n')
      .filter((l) => l.startsWith('start '))
      .pop();
    const at = started ? todo.indexOf(started.slice(6)) : -1;
    if (at < 0) throw new Error(`downconvert.py failed: ${r.stderr || r.error}`);
    todo = todo.slice(at + 1);
  }
  return existsSync(out) ? readdirSync(out).sort() : [];
}
