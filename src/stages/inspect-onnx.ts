import { loadModel, numElements } from '../onnx/model.js';
import type { TypeProto, ValueInfoProto } from '../onnx/proto.js';
import type { OnnxSummary } from './inspect.js';

const ELEM: Record<number, string> = {
  1: 'F32',
  2: 'U8',
  3: 'I8',
  5: 'I16',
  6: 'I32',
  7: 'I64',
  9: 'BOOL',
  10: 'F16',
  11: 'F64',
  16: 'BF16',
};

function io(v: ValueInfoProto): { name: string; dtype: string; shape: (number | string | null)[] } {
  const t = (v.type as TypeProto | undefined)?.tensorType;
  const dims = t?.shape?.dim ?? [];
  return {
    name: v.name ?? '',
    dtype: ELEM[t?.elemType ?? 0] ?? `type ${t?.elemType}`,
    shape: dims.map((d) =>
      d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : (d.dimParam ?? null),
    ),
  };
}

/** Opset, inputs, outputs, parameter count and operator counts, read from the graph itself. */
export async function inspectOnnx(path: string): Promise<OnnxSummary> {
  const model = loadModel(path);
  const g = model.graph ?? {};
  const initNames = new Set((g.initializer ?? []).map((t) => t.name));
  const ops: Record<string, number> = {};
  for (const n of g.node ?? []) {
    const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : (n.opType ?? '?');
    ops[k] = (ops[k] ?? 0) + 1;
  }
  let parameters = 0;
  for (const t of g.initializer ?? []) parameters += numElements((t.dims ?? []).map(Number));
  return {
    type: 'onnx',
    path,
    opset: (model.opsetImport ?? []).map((o) => ({
      domain: o.domain ?? '',
      version: Number(o.version ?? 0),
    })),
    inputs: (g.input ?? []).filter((i) => !initNames.has(i.name)).map(io),
    outputs: (g.output ?? []).map(io),
    initializers: { count: initNames.size, parameters },
    ops,
  };
}
