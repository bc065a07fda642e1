/**
 * Directional finite-difference check of a gradient graph: for a random cotangent u on every
 * float output and a random direction v on every parameter, compare
 * (L(p + hv) − L(p − hv)) / 2h with Σ ⟨grad:P, v_P⟩, where L = Σ ⟨u_Y, Y⟩.
 */
import assert from 'node:assert/strict';
import { buildGradientGraph, type GradResult } from '../../src/onnx/autodiff.js';
import { tensorToArray } from '../../src/onnx/model.js';
import { DataType, type ModelProto } from '../../src/onnx/proto.js';
import { type Arr, randArr, rng, run } from './ort-helper.js';

export interface GradCheckOptions {
  wrt: string[];
  feeds: Record<string, Arr>;
  seed?: number;
  h?: number;
  rtol?: number;
  shapes?: Record<string, number[]>;
  /** A gradient model already built from `model` (to check one model against several feeds). */
  built?: GradResult;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Returns {fd, an} and asserts they agree to rtol (relative to the larger magnitude). */
export async function gradCheck(model: ModelProto, o: GradCheckOptions): Promise<{ fd: number; an: number }> {
  const r = rng(o.seed ?? 1);
  const {
    model: gm,
    params,
    warnings,
  } = o.built ?? buildGradientGraph(model, { wrt: o.wrt, shapes: o.shapes });
  // forward model where every parameter can be fed (initializers become overridable inputs)
  // (onnxruntime ignores fed values for initializers, so parameters move out of the initializers)
  const inits = new Map((model.graph!.initializer ?? []).map((t) => [t.name ?? '', t]));
  const fwd: ModelProto = {
    ...model,
    graph: {
      ...model.graph,
      input: [...(model.graph!.input ?? [])],
      initializer: (model.graph!.initializer ?? []).filter((t) => !params.includes(t.name ?? '')),
    },
  };
  const values: Record<string, Arr> = { ...o.feeds };
  for (const p of params) {
    const t = inits.get(p);
    if (t && !fwd.graph!.input!.some((v) => v.name === p)) {
      fwd.graph!.input!.push({
        name: p,
        type: {
          tensorType: { elemType: t.dataType, shape: { dim: (t.dims ?? []).map((d) => ({ dimValue: d })) } },
        },
      });
    }
    if (t) values[p] = { data: tensorToArray(t) as Float32Array, dims: [...(t.dims ?? [])] };
  }
  const base = await run(fwd, values);
  const u: Record<string, Arr> = {};
  for (const [name, v] of Object.entries(base)) {
    if (v.data instanceof Float32Array || v.data instanceof Float64Array) {
      u[name] = randArr(r, v.dims, v.data instanceof Float64Array);
    }
  }
  const gfeeds: Record<string, Arr> = { ...o.feeds };
  for (const [k, v] of Object.entries(u)) gfeeds[`grad:${k}`] = v;
  for (const p of params) if (inits.has(p)) delete gfeeds[p];
  const gout = await run(gm, gfeeds);
  // forward outputs of the gradient model equal the forward model's
  for (const k of Object.keys(base)) {
    const a = Array.from(base[k]!.data as ArrayLike<number | bigint>, Number);
    const b = Array.from(gout[k]!.data as ArrayLike<number | bigint>, Number);
    for (let i = 0; i < a.length; i++)
      assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * (1 + Math.abs(a[i]!)), `output ${k}`);
  }
  const dirs: Record<string, Arr> = {};
  let an = 0;
  for (const p of params) {
    const v = values[p]!;
    dirs[p] = randArr(r, v.dims, v.data instanceof Float64Array);
    const g = gout[`grad:${p}`];
    assert.ok(g, `grad:${p} missing`);
    assert.deepEqual(g.dims, v.dims, `grad:${p} shape`);
    an += dot(g.data as Float64Array, dirs[p]!.data as Float64Array);
  }
  const f64 = params.some((p) => values[p]!.data instanceof Float64Array);
  void Object.values(values).some((v) => v.data instanceof Float64Array);
  const h = o.h ?? (f64 ? 1e-5 : 1e-2);
  const L = async (sign: number) => {
    const f: Record<string, Arr> = { ...values };
    for (const p of params) {
      const v = values[p]!;
      const d = dirs[p]!.data as Float64Array;
      const x = new (v.data.constructor as Float64ArrayConstructor)(v.data.length);
      for (let i = 0; i < x.length; i++) x[i] = (v.data as Float64Array)[i]! + sign * h * d[i]!;
      f[p] = { data: x, dims: v.dims };
    }
    const out = await run(fwd, f);
    let s = 0;
    for (const k of Object.keys(u)) s += dot(out[k]!.data as Float64Array, u[k]!.data as Float64Array);
    return s;
  };
  const fd = ((await L(1)) - (await L(-1))) / (2 * h);
  const rtol = o.rtol ?? (f64 ? 1e-6 : 2e-3);
  const scale = Math.max(Math.abs(fd), Math.abs(an), 1e-3);
  assert.ok(
    Math.abs(fd - an) <= rtol * scale,
    `finite difference ${fd} vs gradient ${an} (warnings: ${warnings.join('; ')})`,
  );
  return { fd, an };
}

export const F64 = DataType.DOUBLE;
