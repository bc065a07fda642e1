/** Normalizations: LayerNormalization (with its Mean and InvStdDev outputs), and the others. */
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
  InstanceNormalization: { infer: sameAsInput },
  GroupNormalization: { infer: sameAsInput },
  BatchNormalization: { infer: sameAsInput },
  LpNormalization: { infer: sameAsInput },
};

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
