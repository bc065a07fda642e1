/**
 * Half-precision denoisers (onnx/README.md, "Half-precision exports"): `toHalfModel` turns a
 * float32 model into the float16 or bfloat16 model an export in that precision would be (how the
 * tests and the scale bench get one); `float32Policy` makes a half model fit the project's float32
 * contract — a float16 graph keeps its float16 weights and arithmetic and gets float32 inputs and
 * outputs (Casts at the boundary, inside the graph); a bfloat16 graph is widened to float32, since
 * onnxruntime-node's CPU provider cannot run it (src/onnx/half.ts).
 *
 * @example
 *   const fp16 = toHalfModel(loadModel('onnx/fixtures/denoiser.onnx'), DataType.FLOAT16);
 *   const { model } = float32Policy(fp16); // latents, timestep, context, velocity in float32
 */
import { InputError } from '../errors.js';
import { floatTensor, widenBf16 } from './half.js';
import { tensorToArray } from './model.js';
import {
  AttributeType,
  DataType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

export type Precision = 'float32' | 'float16' | 'bfloat16';

const HALF: Record<number, Precision> = { [DataType.FLOAT16]: 'float16', [DataType.BFLOAT16]: 'bfloat16' };

/** Inputs that stay float32 whatever the model's precision (ONNX types them tensor(float)). */
const FLOAT32_SLOTS: Record<string, number[]> = { Resize: [2], Upsample: [1] };

/**
 * The model's precision: that of its float initializers' majority of elements (float32 when it
 * has none); a model with both float16 and bfloat16 weights is refused.
 */
export function modelPrecision(model: ModelProto, where = 'model'): Precision {
  const count = new Map<number, number>();
  for (const t of model.graph?.initializer ?? []) {
    const n = (t.dims ?? []).reduce((a, d) => a * Number(d), 1);
    count.set(t.dataType ?? 0, (count.get(t.dataType ?? 0) ?? 0) + n);
  }
  const f16 = count.get(DataType.FLOAT16) ?? 0;
  const bf16 = count.get(DataType.BFLOAT16) ?? 0;
  if (f16 && bf16)
    throw new InputError(where, 'has both float16 and bfloat16 weights; export it in one precision');
  const f32 = count.get(DataType.FLOAT) ?? 0;
  if (f16 > f32) return 'float16';
  if (bf16 > f32) return 'bfloat16';
  return 'float32';
}

const halfTensor = (t: TensorProto, et: number): TensorProto =>
  t.dataType === DataType.FLOAT
    ? floatTensor(t.name ?? '', [...(t.dims ?? [])].map(Number), tensorToArray(t) as Float32Array, et)
    : t;

const retype = <V extends ValueInfoProto>(v: V, from: number, to: number): V =>
  v.type?.tensorType?.elemType === from
    ? { ...v, type: { ...v.type, tensorType: { ...v.type.tensorType, elemType: to } } }
    : v;

/**
 * The model in float16 or bfloat16 (`et`): float32 inputs, outputs, initializers, constants and
 * Casts to float32 become `et`, except the few inputs ONNX keeps float32 (Resize's scales).
 * Weights are rounded to nearest even; external-data weights are read and stored inline.
 *
 * @example
 *   saveModel(toHalfModel(loadModel('den.onnx'), DataType.FLOAT16), 'den-fp16.onnx');
 */
export function toHalfModel(model: ModelProto, et: number): ModelProto {
  if (!HALF[et]) throw new Error(`toHalfModel: element type ${et} is not float16 or bfloat16`);
  const g = model.graph ?? {};
  const keep = new Set<string>();
  for (const n of g.node ?? [])
    for (const i of FLOAT32_SLOTS[n.opType ?? ''] ?? []) if (n.input?.[i]) keep.add(n.input[i]);
  const node = (g.node ?? []).map((n): NodeProto => {
    const keepOut = (n.output ?? []).some((o) => keep.has(o));
    const attribute = (n.attribute ?? []).map((a) => {
      if (keepOut) return a;
      if (a.t) return { ...a, t: halfTensor(a.t, et) };
      if (n.opType === 'Cast' && a.name === 'to' && a.i === DataType.FLOAT) return { ...a, i: et };
      return a;
    });
    return { ...n, attribute };
  });
  const F = DataType.FLOAT;
  return {
    ...model,
    graph: {
      ...g,
      node,
      input: (g.input ?? []).map((v) => (keep.has(v.name ?? '') ? v : retype(v, F, et))),
      output: (g.output ?? []).map((v) => retype(v, F, et)),
      valueInfo: (g.valueInfo ?? []).map((v) => (keep.has(v.name ?? '') ? v : retype(v, F, et))),
      initializer: (g.initializer ?? []).map((t) => (keep.has(t.name ?? '') ? t : halfTensor(t, et))),
    },
  };
}

const cast = (input: string, output: string, to: number): NodeProto => ({
  name: `${output}::cast`,
  opType: 'Cast',
  input: [input],
  output: [output],
  attribute: [{ name: 'to', type: AttributeType.INT, i: to }],
});

/**
 * A float16 graph with float32 inputs and outputs: each float16 graph input X is declared float32
 * and cast to float16 (`X::half`) as the graph's first node; each float16 output Y is computed as
 * `Y::half` and cast to float32 as the last. Weights and arithmetic stay float16.
 */
export function withFloat32Boundary(model: ModelProto): ModelProto {
  const g = model.graph ?? {};
  const H = DataType.FLOAT16;
  const isHalf = (v: ValueInfoProto) => v.type?.tensorType?.elemType === H;
  const rename = new Map<string, string>();
  for (const v of [...(g.input ?? []), ...(g.output ?? [])])
    if (isHalf(v)) rename.set(v.name ?? '', `${v.name}::half`);
  if (!rename.size) return model;
  const r = (x: string) => rename.get(x) ?? x;
  const ins = (g.input ?? []).filter(isHalf).map((v) => cast(v.name ?? '', r(v.name ?? ''), H));
  const outs = (g.output ?? [])
    .filter(isHalf)
    .map((v) => cast(r(v.name ?? ''), v.name ?? '', DataType.FLOAT));
  const body = (g.node ?? []).map((n) => ({
    ...n,
    input: (n.input ?? []).map(r),
    output: (n.output ?? []).map(r),
  }));
  const F = DataType.FLOAT;
  return {
    ...model,
    graph: {
      ...g,
      node: [...ins, ...body, ...outs],
      input: (g.input ?? []).map((v) => retype(v, H, F)),
      output: (g.output ?? []).map((v) => retype(v, H, F)),
    },
  };
}

export const BF16_POLICY =
  'bfloat16 denoiser: widened to float32 when loaded (onnxruntime-node has no bfloat16 arithmetic on the CPU), so it saves disk only — memory and speed are those of the float32 model';

/**
 * The denoiser as the policy runs it: float32 at its boundary, with the precision it computes in
 * and the warning to show once (bfloat16). `widen`: how a bfloat16 model is widened (a model with
 * external data: into the model cache, src/runtime/model-cache.ts).
 *
 * @example
 *   const { model, precision, warning } = float32Policy(loadModel(path), path);
 */
export function float32Policy(
  model: ModelProto,
  where = 'model',
  widen: (m: ModelProto) => ModelProto = widenBf16,
): { model: ModelProto; precision: Precision; warning?: string } {
  const precision = modelPrecision(model, where);
  if (precision === 'bfloat16') return { model: widen(model), precision, warning: BF16_POLICY };
  if (precision === 'float16') return { model: withFloat32Boundary(model), precision };
  return { model, precision };
}
