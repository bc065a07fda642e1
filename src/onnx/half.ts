/**
 * Half-precision element types: IEEE float16 and bfloat16 bits (as Uint16) to and from numbers,
 * and float tensors of any float element type, so emitted constants have the forward's dtype.
 *
 * @example
 *   floatToHalf(1); // 0x3c00
 *   floatTensor('c', [2], [0.5, 2], DataType.FLOAT16);
 */
import { makeTensor, tensorToArray } from './model.js';
import {
  AttributeType,
  DataType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

export { halfToFloat } from '../shards/tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The float16 bits nearest to `v` (round to nearest even; overflow to ±inf, subnormals kept).
 *
 * @example
 *   floatToHalf(65504); // 0x7bff, the largest finite float16
 */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const man = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // subnormal: shift the implicit 1 in, round to nearest even
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

/**
 * The bfloat16 bits nearest to `v` (round to nearest even).
 *
 * @example
 *   floatToBf16(1); // 0x3f80
 */
export function floatToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The number a bfloat16 bit pattern holds. */
export function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/**
 * A tensor of float element type `et` (float32, float64, float16 or bfloat16) holding `data`.
 *
 * @example
 *   floatTensor('eps', [], [1e-5], DataType.FLOAT16);
 */
export function floatTensor(name: string, dims: number[], data: ArrayLike<number>, et: number): TensorProto {
  switch (et) {
    case DataType.DOUBLE:
      return makeTensor(name, dims, Float64Array.from(data));
    case DataType.FLOAT:
      return makeTensor(name, dims, Float32Array.from(data));
    case DataType.FLOAT16:
      return makeTensor(name, dims, Uint16Array.from(data, floatToHalf), DataType.FLOAT16);
    case DataType.BFLOAT16:
      return makeTensor(name, dims, Uint16Array.from(data, floatToBf16), DataType.BFLOAT16);
    default:
      throw new Error(`floatTensor: element type ${et} is not a float type`);
  }
}

/**
 * Why bfloat16 graphs are widened: onnxruntime-node 1.30's CPU provider runs only data movement,
 * Cast and LayerNormalization in bfloat16 (no Add, MatMul, Softmax, …), and its JS API cannot
 * create bfloat16 tensors, so neither the forward nor a bfloat16 backward could run.
 */
export const BF16_WIDENED =
  'bfloat16 graph: differentiated as its float32 widening (inputs, outputs, parameters and grad:P in float32; arithmetic in float32; explicit Casts to bfloat16 keep their rounding), since onnxruntime-node has no bfloat16 arithmetic kernels on the CPU nor bfloat16 tensors';

const bf16ToF32 = (t: TensorProto): TensorProto =>
  t.dataType === DataType.BFLOAT16
    ? makeTensor(
        t.name ?? '',
        [...(t.dims ?? [])],
        Float32Array.from(tensorToArray(t) as Uint16Array, bf16ToFloat),
      )
    : t;

const widenInfo = <V extends ValueInfoProto>(v: V): V =>
  v.type?.tensorType?.elemType === DataType.BFLOAT16
    ? { ...v, type: { ...v.type, tensorType: { ...v.type.tensorType, elemType: DataType.FLOAT } } }
    : v;

/** Whether the model holds bfloat16 values anywhere (inputs, outputs, initializers, Casts, constants). */
function hasBf16(model: ModelProto): boolean {
  const g = model.graph ?? {};
  const isB = (v: ValueInfoProto) => v.type?.tensorType?.elemType === DataType.BFLOAT16;
  return (
    [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])].some(isB) ||
    (g.initializer ?? []).some((t) => t.dataType === DataType.BFLOAT16) ||
    (g.node ?? []).some((n) =>
      (n.attribute ?? []).some(
        (a) => a.t?.dataType === DataType.BFLOAT16 || (a.name === 'to' && a.i === DataType.BFLOAT16),
      ),
    )
  );
}

/**
 * The float32 widening of a bfloat16 graph (the model itself when it has no bfloat16): bfloat16
 * inputs, outputs, initializers and constants become float32 (every bfloat16 value is exact in
 * float32); a Cast to bfloat16 is followed by a Cast back to float32, so its rounding stays.
 *
 * @example
 *   const m = widenBf16(loadModel('wan-bf16.onnx')); // then buildGradientGraph(m, …)
 */
export function widenBf16(model: ModelProto): ModelProto {
  if (!hasBf16(model)) return model;
  const g = model.graph ?? {};
  const nodes: NodeProto[] = [];
  for (const n of g.node ?? []) {
    const attribute = (n.attribute ?? []).map((a) => (a.t ? { ...a, t: bf16ToF32(a.t) } : a));
    const toBf16 =
      n.opType === 'Cast' && (n.attribute ?? []).some((a) => a.name === 'to' && a.i === DataType.BFLOAT16);
    if (!toBf16) {
      nodes.push({ ...n, attribute });
      continue;
    }
    const out = n.output?.[0] ?? '';
    nodes.push({ ...n, attribute, output: [`${out}::bf16`] });
    nodes.push({
      name: `${n.name ?? out}::widen`,
      opType: 'Cast',
      input: [`${out}::bf16`],
      output: [out],
      attribute: [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }],
    });
  }
  return {
    ...model,
    graph: {
      ...g,
      node: nodes,
      input: (g.input ?? []).map(widenInfo),
      output: (g.output ?? []).map(widenInfo),
      valueInfo: (g.valueInfo ?? []).map(widenInfo),
      initializer: (g.initializer ?? []).map(bf16ToF32),
    },
  };
}
