/**
 * Resize (nearest, linear, cubic). Each mode interpolates every resized axis separately with
 * weights that depend only on the sizes, so the operator is X ×ₐ Mₐ for one static matrix Mₐ
 * [out, in] per axis, and its gradient is dY ×ₐ Mₐᵀ (a MatMul per axis; a reshape and sum for
 * nearest upsampling by an integer factor).
 */
import { InputError } from '../../errors.js';
import type { GradContext } from '../emit.js';
import { attrFloat, attrInt, attrInts, attrString, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { type Const, I, type OpDef, type Vjp } from './types.js';
import { normAxis } from './util.js';

interface Plan {
  out: number[];
  /** The scale of every axis (out/in where sizes were given). */
  scales: number[];
  /** tf_crop_and_resize's region per axis, as fractions of the input. */
  roi: [number, number][];
}

/** Output sizes and scales from the scales or sizes input (listed `axes` only, opset 18). */
function plan(node: NodeProto, xs: number[], cs: (Const | undefined)[]): Plan {
  const r = xs.length;
  const axes = (attrInts(node, 'axes') ?? xs.map((_, i) => i)).map((a) => normAxis(a, r));
  const given = (i: number) => {
    const c = node.input?.[i] ? cs[i] : undefined;
    if (node.input?.[i] && !c) throw new Error(`Resize input ${i} is not a constant`);
    return c?.data.length ? c.data : undefined;
  };
  const sizes = given(3);
  const scalesIn = sizes ? undefined : given(2);
  if (!sizes && !scalesIn) throw new Error('Resize needs scales or sizes');
  if (sizes && attrString(node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') {
    throw new Error('Resize: only keep_aspect_ratio_policy stretch is supported');
  }
  const out = [...xs];
  const scales = xs.map(() => 1);
  const roi = xs.map((): [number, number] => [0, 1]);
  const crop = attrString(node, 'coordinate_transformation_mode', 'half_pixel') === 'tf_crop_and_resize';
  const roiIn = crop ? given(1) : undefined;
  axes.forEach((a, k) => {
    const inD = xs[a] ?? 1;
    if (roiIn) roi[a] = [roiIn[k] ?? 0, roiIn[k + axes.length] ?? 1];
    const [r0, r1] = roi[a] ?? [0, 1];
    if (sizes) {
      out[a] = sizes[k] ?? inD;
      scales[a] = (out[a] ?? inD) / inD;
    } else {
      scales[a] = scalesIn?.[k] ?? 1;
      out[a] = Math.floor(inD * (r1 - r0) * (scales[a] ?? 1));
    }
  });
  return { out, scales, roi };
}

/** The input coordinate that output index `o` reads along an axis, per coordinate_transformation_mode. */
function sourceCoord(
  mode: string,
  o: number,
  inD: number,
  outD: number,
  scale: number,
  [r0, r1]: [number, number],
): number {
  switch (mode) {
    case 'tf_crop_and_resize':
      return outD > 1
        ? r0 * (inD - 1) + (o * (r1 - r0) * (inD - 1)) / (outD - 1)
        : 0.5 * (r0 + r1) * (inD - 1);
    case 'half_pixel':
      return (o + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const adjustment = outD / (scale * inD);
      const offset = (inD / 2) * (1 - adjustment);
      return offset + (o + 0.5) / scale - 0.5;
    }
    case 'pytorch_half_pixel':
      return outD > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outD === 1 ? 0 : (o * (inD - 1)) / (outD - 1);
    case 'asymmetric':
      return o / scale;
    case 'tf_half_pixel_for_nn':
      return (o + 0.5) / scale;
    default:
      throw new Error(`coordinate_transformation_mode ${mode} has no gradient rule`);
  }
}

function nearestIndex(mode: string, x: number): number {
  const f = Math.floor(x);
  const half = x - f === 0.5;
  switch (mode) {
    case 'round_prefer_ceil':
      return half ? f + 1 : Math.round(x);
    case 'floor':
      return f;
    case 'ceil':
      return Math.ceil(x);
    default:
      return half ? f : Math.round(x);
  }
}

/** Keys' cubic kernel with coefficient a, at distance d. */
function cubicWeight(d: number, a: number): number {
  const t = Math.abs(d);
  if (t <= 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

/** Mₐ [out, in] row-major: the weight of input i in output o along one axis. */
export function interpolation(
  node: NodeProto,
  inD: number,
  outD: number,
  scale: number,
  roi: [number, number] = [0, 1],
): number[] {
  const mode = attrString(node, 'mode', 'nearest');
  const coord = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  const m = new Array<number>(outD * inD).fill(0);
  const put = (o: number, i: number, w: number) => {
    const j = Math.min(Math.max(i, 0), inD - 1);
    m[o * inD + j] = (m[o * inD + j] ?? 0) + w;
  };
  for (let o = 0; o < outD; o++) {
    const x = sourceCoord(coord, o, inD, outD, scale, roi);
    // outside a crop the output is extrapolation_value, a constant
    if (coord === 'tf_crop_and_resize' && (x < 0 || x > inD - 1)) continue;
    if (mode === 'nearest')
      put(o, nearestIndex(attrString(node, 'nearest_mode', 'round_prefer_floor'), x), 1);
    else if (mode === 'linear') {
      const xc = Math.min(Math.max(x, 0), inD - 1);
      const i0 = Math.floor(xc);
      put(o, i0, 1 - (xc - i0));
      put(o, i0 + 1, xc - i0);
    } else if (mode === 'cubic') {
      const a = attrFloat(node, 'cubic_coeff_a', -0.75);
      const i0 = Math.floor(x);
      const taps = [-1, 0, 1, 2].map((k) => ({ i: i0 + k, w: cubicWeight(x - (i0 + k), a) }));
      // exclude_outside: taps outside the input get no weight, the others are renormalised
      const inside = attrInt(node, 'exclude_outside', 0) ? taps.filter((t) => t.i >= 0 && t.i < inD) : taps;
      const total = inside.reduce((s, t) => s + t.w, 0);
      for (const t of inside) put(o, t.i, attrInt(node, 'exclude_outside', 0) ? t.w / total : t.w);
    } else throw new Error(`Resize mode ${mode} has no gradient rule`);
  }
  return m;
}

const resizeVjp: Vjp = (c, n, [dY]) => {
  const x = I(n, 0);
  const xs = c.shape(x);
  const et = c.et(x);
  const cs = (n.input ?? []).map((v) => (v ? c.constOf(v) : undefined));
  let p: Plan;
  try {
    if (attrInt(n, 'antialias', 0)) throw new Error('antialias has no gradient rule');
    p = plan(n, xs, cs);
  } catch (err) {
    throw new InputError('model', `Resize ${nodeLabel(n)}: ${(err as Error).message}`);
  }
  let d = dY!;
  const shape = [...p.out];
  xs.forEach((inD, a) => {
    const outD = p.out[a] ?? inD;
    const m = interpolation(n, inD, outD, p.scales[a] ?? 1, p.roi[a]);
    if (outD === inD && m.every((v, k) => v === (Math.floor(k / inD) === k % inD ? 1 : 0))) return;
    d = applyTransposed(c, d, shape, a, m, inD, et);
    shape[a] = inD;
  });
  return [d];
};

/** d ×ₐ Mᵀ: along axis `a` of `d` (shape `shape`), from out to `inD` entries. */
function applyTransposed(
  c: GradContext,
  d: string,
  shape: number[],
  a: number,
  m: number[],
  inD: number,
  et: number,
): string {
  const outD = shape[a] ?? 1;
  const k = outD / inD;
  const pre = shape.slice(0, a);
  const post = shape.slice(a + 1);
  // nearest upsampling by k: every input feeds k consecutive outputs, a sum over k
  if (
    Number.isInteger(k) &&
    m.every((v, j) => v === (Math.floor(Math.floor(j / inD) / k) === j % inD ? 1 : 0))
  ) {
    return c.reduceSum(c.reshape(d, [...pre, inD, k, ...post]), [a + 1], false);
  }
  const r = shape.length;
  const perm = [...Array.from({ length: r }, (_, i) => i).filter((i) => i !== a), a];
  const inv = perm.map((_, i) => perm.indexOf(i));
  const t = c.op('MatMul', [c.transpose(d, perm), c.floats([outD, inD], m, et)]);
  return c.transpose(t, inv);
}

export const RESAMPLE: Record<string, OpDef> = {
  Resize: {
    infer: (node, ins, cs) => {
      const x = ins[0];
      if (!x) throw new Error('missing input 0');
      return [{ elemType: x.elemType, shape: plan(node, x.shape, cs).out }];
    },
    // roi and scales are float inputs, but the output moves with them: a parameter there has no rule
    grad: { vjp: resizeVjp, inputs: [0], constant: [3], valueNeeded: [1, 2, 3], outputs: [0] },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const RESAMPLE_SAME_BEFORE_16: readonly string[] = ['Resize'];
