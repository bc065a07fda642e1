/**
 * Test-only onnxruntime helpers: run a model from bytes, seeded random data, directional
 * finite-difference checks of gradient graphs.
 */
import ort from 'onnxruntime-node';
import { encodeModel } from '../../src/onnx/model.js';
import type { ModelProto } from '../../src/onnx/proto.js';

export type Feed = Record<
  string,
  Float32Array | Float64Array | BigInt64Array | { data: any; dims: number[] }
>;
export interface Arr {
  /** Uint16Array: float16 bits. */
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array | Uint8Array;
  dims: number[];
}

const sessions = new WeakMap<ModelProto, Promise<ort.InferenceSession>>();

export function session(model: ModelProto): Promise<ort.InferenceSession> {
  let s = sessions.get(model);
  if (!s) {
    s = ort.InferenceSession.create(encodeModel(model), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    sessions.set(model, s);
  }
  return s;
}

/** Run `model` on `feeds` ({name: {data, dims}}) and return every output. */
export async function run(model: ModelProto, feeds: Record<string, Arr>): Promise<Record<string, Arr>> {
  const s = await session(model);
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) {
    const type =
      v.data instanceof Float64Array
        ? 'float64'
        : v.data instanceof BigInt64Array
          ? 'int64'
          : v.data instanceof Int32Array
            ? 'int32'
            : v.data instanceof Uint16Array
              ? 'float16'
              : v.data instanceof Uint8Array
                ? 'bool'
                : 'float32';
    f[k] = new ort.Tensor(type, v.data as any, v.dims);
  }
  const out = await s.run(f);
  const r: Record<string, Arr> = {};
  for (const [k, v] of Object.entries(out)) r[k] = { data: v.data as any, dims: [...v.dims] };
  return r;
}

/** Deterministic pseudo-random numbers (mulberry32), uniform in [-1, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

export function randArr(
  r: () => number,
  dims: number[],
  f64 = false,
  scale = 1,
  offset = 0,
): { data: Float32Array | Float64Array; dims: number[] } {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = f64 ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = offset + scale * r();
  return { data, dims };
}
