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
import { modelOpset } from '../../src/onnx/graph.js';
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
import { type Arr, run } from './ort-helper.js';

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
/** Element types onnxruntime-node feeds (strings and the like stay constants). */
const RUNTIME_TYPES = new Set<number>([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.INT64,
  DataType.INT32,
  DataType.BOOL,
]);

/** The same graph computing in float64: float32 types, tensors and Cast targets widened. */
export function toFloat64(model: ModelProto): ModelProto {
  const widenT = (t: TensorProto): TensorProto =>
    t.dataType === DataType.FLOAT
      ? makeTensor(t.name ?? '', [...(t.dims ?? [])], Float64Array.from(tensorToArray(t) as Float32Array))
      : t;
  const widenV = <V extends { type?: { tensorType?: { elemType?: number } } }>(v: V): V =>
    v.type?.tensorType?.elemType === DataType.FLOAT
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
          if (n.opType === 'Cast' && a.name === 'to' && a.i === DataType.FLOAT)
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
  inputs.forEach((v, i) => {
    const name = v.name ?? '';
    const t = readTensor(join(dir, 'test_data_set_0', `input_${i}.pb`));
    const arr = () => ({ data: tensorToArray(t) as Float32Array, dims: [...(t.dims ?? [])] });
    const nodes = g.node ?? [];
    if (FLOATS.has(t.dataType ?? 0) && !constantUse(nodes, name)) {
      wrt.push(name);
      feeds[name] = arr();
    } else if (valueNeeded(nodes, name) || !RUNTIME_TYPES.has(t.dataType ?? 0)) consts.push({ ...t, name });
    else runtime[name] = arr();
  });
  const types = [...inputs, ...(g.output ?? [])].map((v) => v.type?.tensorType?.elemType ?? 0);
  if (types.some((t) => t === DataType.FLOAT16 || t === DataType.BFLOAT16)) {
    return { status: 'fail', reason: 'half precision' };
  }
  if (!wrt.length) return { status: 'fail', reason: 'no differentiable float input' };
  const fixed: ModelProto = {
    ...model,
    graph: {
      ...g,
      input: (g.input ?? []).filter((v) => !consts.some((t) => t.name === v.name)),
      initializer: [...(g.initializer ?? []), ...consts],
    },
  };
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
