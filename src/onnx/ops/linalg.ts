/** Matrix products: MatMul, Gemm and Einsum, and attention's row-sum identity. */
import { InputError } from '../../errors.js';
import type { AttrValue } from '../builder.js';
import type { GradContext } from '../emit.js';
import { attrFloat, attrInt, attrString, nodeLabel } from '../graph.js';
import { numElements } from '../model.js';
import { DataType, type NodeProto } from '../proto.js';
import { I, O, type OpDef, type ValueType, type Vjp } from './types.js';
import { matmulShape, parseEinsum, sameShape } from './util.js';

const two = (ins: (ValueType | undefined)[]): [ValueType, ValueType] => {
  const [a, b] = ins;
  if (!a || !b) throw new Error('needs two inputs');
  return [a, b];
};

export const LINALG: Record<string, OpDef> = {
  MatMul: {
    infer: (_n, ins) => {
      const [a, b] = two(ins);
      return [{ elemType: a.elemType, shape: matmulShape(a.shape, b.shape) }];
    },
    grad: {
      vjp: matmulVjp,
      inputs: 'all',
      outputs: [0],
    },
  },
  Gemm: {
    infer: (node, ins) => {
      const [a, b] = two(ins);
      const m = attrInt(node, 'transA', 0) ? a.shape[1] : a.shape[0];
      const n = attrInt(node, 'transB', 0) ? b.shape[0] : b.shape[1];
      return [{ elemType: a.elemType, shape: [m ?? 0, n ?? 0] }];
    },
    grad: { vjp: gemmVjp, inputs: 'all', outputs: [0] },
  },
  Einsum: {
    infer: (node, ins) => {
      const eq = parseEinsum(
        attrString(node, 'equation', ''),
        ins.length,
        ins.map((t) => t?.shape.length ?? 0),
      );
      const dims = new Map<string, number>();
      eq.inputs.forEach((spec, i) => {
        [...spec].forEach((l, k) => {
          const d = ins[i]?.shape[k] ?? 1;
          if (dims.has(l) && dims.get(l) !== d && d !== 1 && dims.get(l) !== 1) {
            throw new Error(`Einsum index ${l} has sizes ${dims.get(l)} and ${d}`);
          }
          if (!dims.has(l) || dims.get(l) === 1) dims.set(l, d);
        });
      });
      return [{ elemType: ins[0]?.elemType ?? 0, shape: [...eq.output].map((l) => dims.get(l) ?? 1) }];
    },
    grad: { vjp: einsumVjp, inputs: 'all', outputs: [0] },
  },
};

/**
 * The operators here whose forms before opset 16 mean what their opset-16 form means (after the
 * rewrites of src/onnx/upgrade.ts): graphs using them are read as opset 16.
 */
export const LINALG_SAME_BEFORE_16: readonly string[] = ['Einsum', 'Gemm', 'MatMul'];

function matmulVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const A = I(n, 0);
  const B = I(n, 1);
  const a = c.shape(A);
  const bs = c.shape(B);
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = bs.length === 1 ? [bs[0]!, 1] : bs;
  const k = a2[a2.length - 1]!;
  const y = c.shape(O(n));
  const y2 = [...y];
  if (a.length === 1) y2.splice(y2.length - (bs.length === 1 ? 0 : 1), 0, 1);
  if (bs.length === 1) y2.push(1);
  const d2 = y2.length === y.length ? dY! : c.reshape(dY!, y2);
  const A2 = a.length === 1 ? c.reshape(A, a2) : A;
  const B2 = bs.length === 1 ? c.reshape(B, b2) : B;
  let dA: string | undefined;
  let dB: string | undefined;
  if (w[0]) {
    const fullShape = [...y2.slice(0, -1), k];
    // a 2-D B (a weight): Gemm with transB reads it in place, where MatMul(dY, Transpose(W))
    // has onnxruntime fold a transposed copy of every weight into memory
    const full =
      b2.length === 2
        ? c.reshape(
            c.op('Gemm', [y2.length === 2 ? d2 : c.reshape(d2, [-1, b2[1]!]), B2], { transB: 1 }),
            fullShape,
          )
        : c.op('MatMul', [d2, c.swapLast(B2, b2.length)]);
    dA = c.unbroadcast(full, fullShape, a2);
    if (a.length === 1) dA = c.reshape(dA, a);
  }
  if (w[1]) {
    const nOut = b2[b2.length - 1]!;
    if (b2.length === 2) {
      // weight case: fold every batch axis into the rows, one Gemm with transA
      const rows = a2.length === 2 ? A2 : c.reshape(A2, [-1, k]);
      const dRows = y2.length === 2 ? d2 : c.reshape(d2, [-1, nOut]);
      dB = c.op('Gemm', [rows, dRows], { transA: 1 });
    } else {
      // Aᵀ·dY, or (dYᵀ·A)ᵀ when dY is narrow (attention's dV = Pᵀ·dO): onnxruntime multiplies a
      // transposed wide left operand slowly, a small transposed result is cheap
      const full =
        nOut < k
          ? c.swapLast(c.op('MatMul', [c.swapLast(d2, y2.length), A2]), y2.length)
          : c.op('MatMul', [c.swapLast(A2, a2.length), d2]);
      dB = c.unbroadcast(full, [...y2.slice(0, -2), k, nOut], b2);
    }
    if (bs.length === 1) dB = c.reshape(dB, bs);
  }
  return [dA, dB];
}

function gemmVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const alpha = attrFloat(n, 'alpha', 1);
  const beta = attrFloat(n, 'beta', 1);
  const tA = attrInt(n, 'transA', 0);
  const tB = attrInt(n, 'transB', 0);
  const A = I(n, 0);
  const B = I(n, 1);
  const al: Record<string, AttrValue> = alpha === 1 ? {} : { alpha };
  const dA = w[0]
    ? tA
      ? c.op('Gemm', [B, dY!], { ...al, transA: tB, transB: 1 })
      : c.op('Gemm', [dY!, B], { ...al, transB: 1 - tB })
    : undefined;
  const dB = w[1]
    ? tB
      ? c.op('Gemm', [dY!, A], { ...al, transA: 1, transB: tA })
      : c.op('Gemm', [A, dY!], { ...al, transA: 1 - tA })
    : undefined;
  let dC: string | undefined;
  if (w[2]) {
    const g = beta === 1 ? dY! : c.mul(dY!, c.scalar(beta, c.et(O(n))));
    dC = c.unbroadcast(g, c.shape(O(n)), c.shape(I(n, 2)));
  }
  return [dA, dB, dC];
}

function einsumVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const eq = parseEinsum(
    attrString(n, 'equation', ''),
    (n.input ?? []).length,
    (n.input ?? []).map((x) => c.shape(x).length),
  );
  const ins = n.input!;
  return ins.map((x, i) => {
    if (!w[i]) return undefined;
    const spec = eq.inputs[i]!;
    if (new Set(spec).size !== spec.length) {
      throw new InputError(
        'model',
        `Einsum ${nodeLabel(n)}: repeated index in '${spec}' has no gradient rule`,
      );
    }
    const others = eq.inputs.filter((_, k) => k !== i);
    const avail = new Set([...eq.output, ...others.join('')]);
    const kept = [...spec].filter((l) => avail.has(l)).join('');
    const full = c.op('Einsum', [dY!, ...ins.filter((_, k) => k !== i)], {
      equation: `${[eq.output, ...others].join(',')}->${kept}`,
    });
    // an index of size 1 here that broadcasts against a larger one elsewhere is summed
    const xs = c.shape(x);
    const keptShape = [...kept].map((l) => xs[spec.indexOf(l)] ?? 1);
    const g = c.unbroadcast(full, c.shapeOr(full) ?? keptShape, keptShape);
    if (kept.length === spec.length) return g;
    // indices summed inside this operand alone: the gradient is constant along them
    const withOnes = [...spec].map((l, k) => (avail.has(l) ? (xs[k] ?? 1) : 1));
    return c.op('Expand', [c.reshape(g, withOnes), c.ints(xs)]);
  });
}

/**
 * For attention weights P = Softmax(S) read only by O = MatMul(P, V): the operands of that
 * product and O's (whole) cotangent, or undefined where P is anything else.
 */
function attentionOf(
  c: GradContext,
  y: string,
  axis: number,
): { mm: NodeProto; o: string; dO: string } | undefined {
  const ys = c.shape(y);
  const users = c.consumers.get(y) ?? [];
  const mm = users[0];
  if (users.length !== 1 || c.isOutput(y) || axis !== ys.length - 1 || ys.length < 2) return undefined;
  if (mm?.opType !== 'MatMul' || (mm.domain && mm.domain !== 'ai.onnx')) return undefined;
  if (mm.input?.[0] !== y || mm.input?.[1] === y || c.shape(I(mm, 1)).length < 2) return undefined;
  const o = O(mm);
  const os = c.shape(o);
  const dO = c.cotangent(o);
  const dOs = dO && c.shapeOr(dO);
  if (!dO || !dOs || !sameShape(dOs, os) || os.length !== ys.length) return undefined;
  if (!os.slice(0, -1).every((d, i) => d === ys[i])) return undefined;
  return { mm, o, dO };
}

/**
 * dP − Σ_j dP_ij·P_ij (the bracket of Softmax's VJP, `dY` = dP) for attention weights P read
 * only by O = MatMul(P, V); undefined for any other P. Since dP = dO·Vᵀ, the row sum equals
 * Σ_n dO_in·O_in (FlashAttention's identity: a sum over the head size instead of the keys), and
 * where V has P's rank the whole bracket is one product [dO, r]·[V, −1]ᵀ with r that row sum:
 * one more column in the product instead of a subtraction pass over the tokens² matrix (the
 * dP emitted before is then unused, and pruned).
 */
export function attentionSoftmaxBracket(
  c: GradContext,
  y: string,
  axis: number,
  dY: string,
): string | undefined {
  const a = attentionOf(c, y, axis);
  if (!a) return undefined;
  const r = c.reduceSum(c.mul(a.dO, a.o), [axis], true);
  const v = I(a.mm, 1);
  const vs = c.shape(v);
  const rank = vs.length;
  const et = c.et(v);
  if (rank !== c.shape(y).length || (et !== DataType.FLOAT && et !== DataType.DOUBLE)) {
    return c.op('Sub', [dY, r]);
  }
  const left = c.op('Concat', [a.dO, r], { axis: rank - 1 });
  const minus = c.floats(
    [...vs.slice(0, -1), 1],
    new Array<number>(numElements(vs.slice(0, -1))).fill(-1),
    et,
  );
  const right = c.op('Concat', [v, minus], { axis: rank - 1 });
  // a plain last-two-axes Transpose, which onnxruntime folds into the product (transB)
  const perm = [...Array(rank).keys()];
  [perm[rank - 1], perm[rank - 2]] = [rank - 2, rank - 1];
  return c.op('MatMul', [left, c.op('Transpose', [right], { perm })]);
}
