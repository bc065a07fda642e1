/**
 * Opset 23's Attention: softmax(scale·Q·Kᵀ + mask)·V over heads, 3-D ([B, S, heads·size], with
 * q_num_heads/kv_num_heads) or 4-D ([B, heads, S, size]) inputs, grouped-query heads, a boolean
 * or additive mask, is_causal. The gradient recomputes the weights P and uses the row-sum
 * identity Σ_j dP_ij·P_ij = Σ_n dO_in·O_in.
 */
import { InputError } from '../../errors.js';
import type { GradContext } from '../emit.js';
import { attrFloat, attrInt, nodeLabel } from '../graph.js';
import { DataType, type NodeProto } from '../proto.js';
import { I, O, type OpDef, type ValueType, type Vjp } from './types.js';

interface Heads {
  batch: number;
  qHeads: number;
  kvHeads: number;
  qSeq: number;
  kvSeq: number;
  size: number;
  vSize: number;
  threeD: boolean;
}

function heads(node: NodeProto, q: number[], k: number[], v: number[]): Heads {
  if (q.length === 4) {
    return {
      batch: q[0] ?? 1,
      qHeads: q[1] ?? 1,
      kvHeads: k[1] ?? 1,
      qSeq: q[2] ?? 1,
      kvSeq: k[2] ?? 1,
      size: q[3] ?? 1,
      vSize: v[3] ?? 1,
      threeD: false,
    };
  }
  const qh = attrInt(node, 'q_num_heads', 1);
  const kh = attrInt(node, 'kv_num_heads', 1);
  return {
    batch: q[0] ?? 1,
    qHeads: qh,
    kvHeads: kh,
    qSeq: q[1] ?? 1,
    kvSeq: k[1] ?? 1,
    size: (q[2] ?? 1) / qh,
    vSize: (v[2] ?? 1) / kh,
    threeD: true,
  };
}

const shapeOf = (t: ValueType | undefined): number[] => {
  if (!t) throw new Error('missing input');
  return t.shape;
};

/** [B, S, h·d] → [B, h, S, d] (3-D inputs); 4-D ones as they are. */
function split(c: GradContext, x: string, h: number, threeD: boolean): string {
  if (!threeD) return x;
  const [b, s, hd] = c.shape(x);
  return c.transpose(c.reshape(x, [b ?? 1, s ?? 1, h, (hd ?? h) / h]), [0, 2, 1, 3]);
}

/** [B, h, S, d] → [B, S, h·d] where the inputs were 3-D. */
function merge(c: GradContext, x: string, threeD: boolean): string {
  if (!threeD) return x;
  const [b, h, s, d] = c.shape(x);
  return c.reshape(c.transpose(x, [0, 2, 1, 3]), [b ?? 1, s ?? 1, (h ?? 1) * (d ?? 1)]);
}

/** K or V with each kv head repeated for its group of query heads, and the reverse sum. */
function repeatHeads(c: GradContext, x: string, hd: Heads): string {
  const g = hd.qHeads / hd.kvHeads;
  if (g === 1) return x;
  const [b, h, l, d] = c.shape(x).map((v) => v ?? 1) as [number, number, number, number];
  return c.reshape(c.op('Expand', [c.reshape(x, [b, h, 1, l, d]), c.ints([b, h, g, l, d])]), [
    b,
    h * g,
    l,
    d,
  ]);
}
function sumHeads(c: GradContext, x: string, hd: Heads): string {
  const g = hd.qHeads / hd.kvHeads;
  if (g === 1) return x;
  const [b, , l, d] = c.shape(x).map((v) => v ?? 1) as [number, number, number, number];
  return c.reduceSum(c.reshape(x, [b, hd.kvHeads, g, l, d]), [2], false);
}

const attentionVjp: Vjp = (c, n, [dY], w) => {
  const [Q, K, V] = [I(n, 0), I(n, 1), I(n, 2)];
  if (n.input?.[4] || n.input?.[5] || attrFloat(n, 'softcap', 0) !== 0) {
    throw new InputError(
      'model',
      `Attention ${nodeLabel(n)}: past key/value and softcap have no gradient rule`,
    );
  }
  const hd = heads(n, c.shape(Q), c.shape(K), c.shape(V));
  const et = c.et(Q);
  const scale = attrFloat(n, 'scale', 1 / Math.sqrt(hd.size));
  const q = split(c, Q, hd.qHeads, hd.threeD);
  const k = repeatHeads(c, split(c, K, hd.kvHeads, hd.threeD), hd);
  const v = repeatHeads(c, split(c, V, hd.kvHeads, hd.threeD), hd);
  let s = c.mul(c.op('MatMul', [q, c.swapLast(k, 4)]), c.scalar(scale, et));
  const mask = n.input?.[3];
  if (mask) {
    s =
      c.et(mask) === DataType.BOOL
        ? c.op('Where', [mask, s, c.scalar(Number.NEGATIVE_INFINITY, et)])
        : c.op('Add', [s, mask]);
  }
  if (attrInt(n, 'is_causal', 0)) {
    if (hd.qSeq !== hd.kvSeq) {
      throw new InputError(
        'model',
        `Attention ${nodeLabel(n)}: is_causal with unequal lengths has no gradient rule`,
      );
    }
    const lower = c.op('Trilu', [c.ones([hd.qSeq, hd.kvSeq], et)], { upper: 0 });
    s = c.op('Where', [
      c.op('Cast', [lower], { to: DataType.BOOL }),
      s,
      c.scalar(Number.NEGATIVE_INFINITY, et),
    ]);
  }
  const p = c.op('Softmax', [s], { axis: -1 });
  const dO = split(c, dY!, hd.qHeads, hd.threeD);
  const o = split(c, O(n), hd.qHeads, hd.threeD);
  const rowSum = c.reduceSum(c.mul(dO, o), [3], true);
  const dS = c.mul(p, c.op('Sub', [c.op('MatMul', [dO, c.swapLast(v, 4)]), rowSum]));
  const scaled = c.mul(dS, c.scalar(scale, et));
  const dQ = w[0] ? merge(c, c.op('MatMul', [scaled, k]), hd.threeD) : undefined;
  const dK = w[1]
    ? merge(c, sumHeads(c, c.op('MatMul', [c.swapLast(scaled, 4), q]), hd), hd.threeD)
    : undefined;
  const dV = w[2] ? merge(c, sumHeads(c, c.op('MatMul', [c.swapLast(p, 4), dO]), hd), hd.threeD) : undefined;
  const full = [hd.batch, hd.qHeads, hd.qSeq, hd.kvSeq];
  const dMask = w[3] && mask ? c.unbroadcast(dS, full, c.shape(mask)) : undefined;
  return [dQ, dK, dV, dMask];
};

export const ATTENTION: Record<string, OpDef> = {
  Attention: {
    infer: (node, ins) => {
      const [q, k, v] = [shapeOf(ins[0]), shapeOf(ins[1]), shapeOf(ins[2])];
      const hd = heads(node, q, k, v);
      const et = ins[0]?.elemType ?? DataType.FLOAT;
      const y = hd.threeD
        ? [hd.batch, hd.qSeq, hd.qHeads * hd.vSize]
        : [hd.batch, hd.qHeads, hd.qSeq, hd.vSize];
      return [{ elemType: et, shape: y }];
    },
    grad: { vjp: attentionVjp, inputs: [0, 1, 2, 3], outputs: [0] },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const ATTENTION_SAME_BEFORE_16: readonly string[] = [];
