/** Normalizations: LayerNormalization (with its Mean and InvStdDev outputs), and the others. */
import type { GradContext } from '../emit.js';
import { attrFloat, attrInt } from '../graph.js';
import { DataType, type NodeProto } from '../proto.js';
import { sameAsInput } from './elementwise.js';
import { type GradDef, I, O, type OpDef, type Vjp } from './types.js';
import { normAxis } from './util.js';

export const NORM: Record<string, OpDef> = {
  LayerNormalization: {
    infer: (node, ins) => {
      const x = ins[0];
      if (!x) throw new Error('missing input 0');
      const axis = normAxis(attrInt(node, 'axis', -1), x.shape.length);
      const stat = x.shape.map((d, i) => (i < axis ? d : 1));
      const st = attrInt(node, 'stash_type', 1) === 1 ? DataType.FLOAT : x.elemType;
      return [
        { elemType: x.elemType, shape: [...x.shape] },
        { elemType: st, shape: stat },
        { elemType: st, shape: [...stat] },
      ];
    },
    grad: { vjp: layerNormVjp, inputs: 'all', outputs: 'all', prepare: saveLayerNormStats },
  },
  InstanceNormalization: {
    infer: sameAsInput,
    grad: { vjp: instanceNormVjp, inputs: 'all', outputs: [0] },
  },
  GroupNormalization: {
    infer: sameAsInput,
    grad: { vjp: groupNormVjp, inputs: 'all', outputs: [0] },
  },
  BatchNormalization: {
    infer: (node, ins) => {
      const x = ins[0];
      if (!x) throw new Error('missing input 0');
      const c = { elemType: x.elemType, shape: [x.shape[1] ?? 1] };
      const outs = node.output ?? [];
      return [
        { elemType: x.elemType, shape: [...x.shape] },
        ...outs.slice(1).map(() => ({ ...c, shape: [...c.shape] })),
      ];
    },
    // outputs 3 and 4 (opset < 14's saved statistics) have no rule
    grad: { vjp: batchNormVjp, inputs: 'all', outputs: [0, 1, 2] },
  },
  LpNormalization: {
    infer: sameAsInput,
    grad: { vjp: lpNormVjp, inputs: [0], outputs: [0] },
  },
  RMSNormalization: {
    infer: sameAsInput,
    grad: { vjp: rmsNormVjp, inputs: 'all', outputs: [0] },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const NORM_SAME_BEFORE_16: readonly string[] = [
  'BatchNormalization',
  'InstanceNormalization',
  'LpNormalization',
];

/**
 * LayerNormalization with its optional Mean and InvStdDev outputs (float32 stash type), so the
 * backward pass reuses them instead of recomputing the statistics.
 */
function saveLayerNormStats(...[n, info, fresh]: Parameters<NonNullable<GradDef['prepare']>>): NodeProto {
  const x = info.types.get(I(n, 0));
  if (!x || x.elemType !== DataType.FLOAT || attrInt(n, 'stash_type', 1) !== 1) return n;
  const outs = [...(n.output ?? [])];
  const axis = normAxis(attrInt(n, 'axis', -1), x.shape.length);
  const stat = x.shape.map((d, k) => (k < axis ? d : 1));
  for (const k of [1, 2]) {
    if (outs[k]) continue;
    const name = fresh(`${outs[0]}_${k === 1 ? 'mean' : 'inv_std'}`);
    outs[k] = name;
    info.types.set(name, { elemType: DataType.FLOAT, shape: stat });
  }
  return { ...n, output: outs };
}

function layerNormVjp(...[c, n, [dY, dMu, dR], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const X = I(n, 0);
  const xs = c.shape(X);
  const et = c.et(X);
  const r = xs.length;
  const axis = normAxis(attrInt(n, 'axis', -1), r);
  const axes = xs.slice(axis).map((_, i) => axis + i);
  // x̂ = (X − μ)·r from the node's own Mean / InvStdDev outputs (added by saveLayerNormStats)
  const [mu, rs] = [n.output?.[1], n.output?.[2]];
  // a constant scale of ones (exporters write one for weightless norms) is skipped, and without
  // a bias the output is x̂ itself
  const unit = !!c.constOf(I(n, 1))?.data.every((v) => v === 1);
  let xh: string;
  let rsT: string;
  if (unit && !n.input?.[2] && rs) {
    xh = O(n);
    rsT = c.et(rs) === et ? rs : c.op('Cast', [rs], { to: et });
  } else if (mu && rs) {
    const cast = (v: string) => (c.et(v) === et ? v : c.op('Cast', [v], { to: et }));
    rsT = cast(rs);
    xh = c.mul(c.op('Sub', [X, cast(mu)]), rsT);
  } else {
    const eps = attrFloat(n, 'epsilon', 1e-5);
    const m = c.reduceMean(X, axes, true);
    const xc = c.op('Sub', [X, m]);
    const v = c.reduceMean(c.mul(xc, xc), axes, true);
    rsT = c.op('Reciprocal', [c.op('Sqrt', [c.op('Add', [v, c.scalar(eps, et)])])]);
    xh = c.mul(xc, rsT);
  }
  let dX: string | undefined;
  if (w[0] && dY) {
    const g = unit ? dY : c.mul(dY, I(n, 1));
    const mg = c.reduceMean(g, axes, true);
    const mgx = c.reduceMean(c.mul(g, xh), axes, true);
    dX = c.mul(rsT, c.op('Sub', [c.op('Sub', [g, mg]), c.mul(xh, mgx)]));
  }
  if (w[0] && (dMu || dR)) {
    // μ = mean x: ∂μ/∂x = 1/N; r = (var + ε)^−½: ∂r/∂x = −r²·x̂/N
    const cast = (v: string) => (c.et(v) === et ? v : c.op('Cast', [v], { to: et }));
    const t = dR && c.mul(c.mul(cast(dR), c.mul(rsT, rsT)), xh);
    const s = dMu ? (t ? c.op('Sub', [cast(dMu), t]) : cast(dMu)) : c.op('Neg', [t ?? '']);
    const count = axes.reduce((p, a) => p * (xs[a] ?? 1), 1);
    const stat = c.mul(s, c.scalar(1 / count, et));
    dX = dX ? c.op('Add', [dX, stat]) : c.expandTo(stat, xs);
  }
  const dS = w[1] && dY ? c.unbroadcast(c.mul(dY, xh), xs, c.shape(I(n, 1))) : undefined;
  const dB = w[2] && dY && n.input?.[2] ? c.unbroadcast(dY, xs, c.shape(I(n, 2))) : undefined;
  return [dX, dS, dB];
}

/** x̂ = (x − mean)·r over `axes`, r = (var + ε)^−½ (keepdims), the statistics of a normalization. */
function standardize(c: GradContext, x: string, axes: number[], eps: number): { xh: string; rs: string } {
  const et = c.et(x);
  const xc = c.op('Sub', [x, c.reduceMean(x, axes, true)]);
  const v = c.reduceMean(c.mul(xc, xc), axes, true);
  const rs = c.op('Reciprocal', [c.op('Sqrt', [c.op('Add', [v, c.scalar(eps, et)])])]);
  return { xh: c.mul(xc, rs), rs };
}

/** dX of x̂ = standardize(x) over `axes` from g = ∂L/∂x̂: r·(g − mean g − x̂·mean(g·x̂)). */
function standardizeVjp(c: GradContext, g: string, xh: string, rs: string, axes: number[]): string {
  const mg = c.reduceMean(g, axes, true);
  const mgx = c.reduceMean(c.mul(g, xh), axes, true);
  return c.mul(rs, c.op('Sub', [c.op('Sub', [g, mg]), c.mul(xh, mgx)]));
}

/** A per-channel vector [C] as [1, C, 1, …] for an input of rank `r`. */
const perChannel = (c: GradContext, v: string, r: number) =>
  c.reshape(v, [1, c.shape(v)[0] ?? 1, ...Array.from({ length: r - 2 }, () => 1)]);

/** Sum over every axis but the channel axis 1: a per-channel parameter's gradient [C]. */
const channelSum = (c: GradContext, v: string, r: number) =>
  c.reduceSum(v, [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)], false);

/** y = x̂·scale + B with x̂ standardized per sample and channel over the spatial axes. */
function instanceNormVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const r = c.shape(x).length;
  const axes = Array.from({ length: r - 2 }, (_, i) => i + 2);
  const { xh, rs } = standardize(c, x, axes, attrFloat(n, 'epsilon', 1e-5));
  return [
    w[0] ? standardizeVjp(c, c.mul(dY!, perChannel(c, I(n, 1), r)), xh, rs, axes) : undefined,
    w[1] ? channelSum(c, c.mul(dY!, xh), r) : undefined,
    w[2] ? channelSum(c, dY!, r) : undefined,
  ];
}

/**
 * Channels split into groups, each standardized over its channels and the spatial axes; scale
 * and bias per group before opset 21, per channel from 21.
 */
function groupNormVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const r = xs.length;
  const G = attrInt(n, 'num_groups', 1);
  const grouped = [xs[0] ?? 1, G, -1];
  const xg = c.reshape(x, grouped);
  const { xh, rs } = standardize(c, xg, [2], attrFloat(n, 'epsilon', 1e-5));
  const perGroup = c.opset < 21;
  const scale = I(n, 1);
  // the scale broadcast against X (per channel) or against the grouped view (per group)
  const sB = perGroup ? c.reshape(scale, [1, G, 1]) : perChannel(c, scale, r);
  const gFull = perGroup ? c.mul(c.reshape(dY!, grouped), sB) : c.reshape(c.mul(dY!, sB), grouped);
  const dX = w[0] ? c.reshape(standardizeVjp(c, gFull, xh, rs, [2]), xs) : undefined;
  const paramSum = (v: string) =>
    perGroup ? c.reduceSum(c.reshape(v, grouped), [0, 2], false) : channelSum(c, v, r);
  return [dX, w[1] ? paramSum(c.mul(dY!, c.reshape(xh, xs))) : undefined, w[2] ? paramSum(dY!) : undefined];
}

/**
 * Inference form: y = (x − mean)·scale/√(var + ε) + B with the given statistics. Training form
 * (training_mode = 1): the batch's statistics over every axis but the channel's, and the
 * running statistics mean·m + batch·(1 − m) as outputs 1 and 2.
 */
function batchNormVjp(...[c, n, [dY, dRm, dRv], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const r = xs.length;
  const et = c.et(x);
  const eps = attrFloat(n, 'epsilon', 1e-5);
  const s = perChannel(c, I(n, 1), r);
  const training = attrInt(n, 'training_mode', 0) === 1 || (c.opset < 14 && (n.output?.length ?? 1) > 1);
  if (!training) {
    const [mean, v] = [perChannel(c, I(n, 3), r), perChannel(c, I(n, 4), r)];
    const rs = c.op('Reciprocal', [c.op('Sqrt', [c.op('Add', [v, c.scalar(eps, et)])])]);
    const xh = c.mul(c.op('Sub', [x, mean]), rs);
    const gs = dY && c.mul(dY, c.mul(s, rs));
    return [
      w[0] && gs ? gs : undefined,
      w[1] && dY ? channelSum(c, c.mul(dY, xh), r) : undefined,
      w[2] && dY ? channelSum(c, dY, r) : undefined,
      w[3] && gs ? c.op('Neg', [channelSum(c, gs, r)]) : undefined,
      // ∂/∂var of (x − mean)·(var + ε)^−½ = −½·x̂·r²·… : −½·Σ dY·scale·x̂·r
      w[4] && gs ? c.mul(channelSum(c, c.mul(gs, c.mul(xh, rs)), r), c.scalar(-0.5, et)) : undefined,
    ];
  }
  const axes = [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)];
  const { xh, rs } = standardize(c, x, axes, eps);
  const m = attrFloat(n, 'momentum', 0.9);
  const count = axes.reduce((p, a) => p * (xs[a] ?? 1), 1);
  const terms: string[] = [];
  if (dY) terms.push(standardizeVjp(c, c.mul(dY, s), xh, rs, axes));
  // batch mean: ∂/∂x = 1/N; batch (population) variance: ∂/∂x = 2(x − μ)/N = 2·x̂/(r·N)
  if (dRm) terms.push(c.mul(perChannel(c, dRm, r), c.scalar((1 - m) / count, et)));
  if (dRv) {
    const xc = c.op('Div', [xh, rs]);
    terms.push(c.mul(c.mul(perChannel(c, dRv, r), xc), c.scalar((2 * (1 - m)) / count, et)));
  }
  const dX = w[0] && terms.length ? terms.reduce((a, b) => c.op('Add', [a, b])) : undefined;
  return [
    dX && c.expandTo(dX, xs),
    w[1] && dY ? channelSum(c, c.mul(dY, xh), r) : undefined,
    w[2] && dY ? channelSum(c, dY, r) : undefined,
    w[3] && dRm ? c.mul(dRm, c.scalar(m, et)) : undefined,
    w[4] && dRv ? c.mul(dRv, c.scalar(m, et)) : undefined,
  ];
}

/**
 * Opset 23: y = x·r·scale, r = (mean x² + ε)^−½ over the axes from `axis`; with g = dY·scale,
 * dX = r·g − x·r³·mean(g·x).
 */
function rmsNormVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const et = c.et(x);
  const axis = normAxis(attrInt(n, 'axis', -1), xs.length);
  const axes = xs.slice(axis).map((_, i) => axis + i);
  const ms = c.reduceMean(c.mul(x, x), axes, true);
  const r = c.op('Reciprocal', [
    c.op('Sqrt', [c.op('Add', [ms, c.scalar(attrFloat(n, 'epsilon', 1e-5), et)])]),
  ]);
  const xr = c.mul(x, r);
  let dX: string | undefined;
  if (w[0]) {
    const g = c.mul(dY!, I(n, 1));
    const m = c.reduceMean(c.mul(g, x), axes, true);
    dX = c.op('Sub', [c.mul(r, g), c.mul(c.mul(xr, c.mul(r, r)), m)]);
  }
  const dS = w[1] ? c.unbroadcast(c.mul(dY!, xr), xs, c.shape(I(n, 1))) : undefined;
  return [dX, dS];
}

/**
 * y = x/‖x‖ₚ along `axis` (p 1 or 2): dX = (g − y·Σ g·y)/‖x‖₂ for p = 2, and
 * (g − sign(x)·Σ g·y)/‖x‖₁ for p = 1.
 */
function lpNormVjp(...[c, n, [dY]]: Parameters<Vjp>): ReturnType<Vjp> {
  const x = I(n, 0);
  const axis = normAxis(attrInt(n, 'axis', -1), c.shape(x).length);
  const p = attrInt(n, 'p', 2);
  const y = O(n);
  const norm =
    p === 1
      ? c.reduceSum(c.op('Abs', [x]), [axis], true)
      : c.op('Sqrt', [c.reduceSum(c.mul(x, x), [axis], true)]);
  const gy = c.reduceSum(c.mul(dY!, y), [axis], true);
  const dir = p === 1 ? c.op('Sign', [x]) : y;
  return [c.op('Div', [c.op('Sub', [dY!, c.mul(dir, gy)]), norm])];
}
