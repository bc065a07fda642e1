/**
 * LoRA injection into ONNX graphs: each MatMul/Gemm whose weight initializer matches a target
 * glob becomes y = xW + (α/r)·(x·A)·B, with A [in, r] and B [r, out] as new graph inputs named
 * `lora:<weight>:A` / `lora:<weight>:B` (onnx/README.md's LoRA contract). `mergeLora` folds trained
 * adapters back into the weights. A tied weight (src/onnx/tied.ts) is a target of its own name.
 *
 * @example
 *   const { model: m, adapters } = injectLora(base, { rank: 8, alpha: 16, targets: ['*.attn.*.weight'] });
 */
import { InputError } from '../errors.js';
import { GraphBuilder } from './builder.js';
import { attrInt, attrInts, globMatch } from './graph.js';
import { bf16ToFloat, floatTensor, halfToFloat } from './half.js';
import { tensorToArray } from './model.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { untie } from './tied.js';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Globs over weight initializer names (`*` any run, `?` one character). */
  targets: string[];
}

export interface LoraAdapter {
  /** The weight initializer's name. */
  weight: string;
  /** The weight's name without a trailing `.weight` (peft's module key). */
  module: string;
  inDim: number;
  outDim: number;
  rank: number;
  /** α/r, the factor on (x·A)·B. */
  scale: number;
  /** The stored weight is [out, in] (Gemm transB, or MatMul through a Transpose). */
  transposed: boolean;
  loraA: string;
  loraB: string;
}

export const loraNames = (weight: string) => ({ A: `lora:${weight}:A`, B: `lora:${weight}:B` });

interface Site {
  node: NodeProto;
  weight: TensorProto;
  transposed: boolean;
  /** Input index of the activation in `node`. */
  xIndex: number;
}

/** MatMul/Gemm nodes whose weight (directly, or through Transpose perm [1,0]) is a 2-D initializer. */
function findSites(model: ModelProto): Site[] {
  const g = model.graph ?? {};
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const producer = new Map<string, NodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const sites: Site[] = [];
  for (const node of g.node ?? []) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    if (node.domain && node.domain !== 'ai.onnx') continue;
    const wName = node.input?.[1] ?? '';
    let transposed = node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    let w = inits.get(wName);
    if (!w) {
      const p = producer.get(wName);
      const perm = p && attrInts(p, 'perm');
      if (p?.opType === 'Transpose' && (!perm || (perm[0] === 1 && perm[1] === 0))) {
        w = inits.get(p.input?.[0] ?? '');
        transposed = !transposed;
      }
    }
    if (!w || (w.dims ?? []).length !== 2) continue;
    sites.push({ node, weight: w, transposed, xIndex: 0 });
  }
  return sites;
}

/**
 * Add LoRA branches to every MatMul/Gemm whose weight matches a target. The input model is
 * not modified. Throws InputError when no weight matches.
 *
 * @example
 *   const { model, adapters } = injectLora(base, { rank: 4, alpha: 4, targets: ['blocks.*.weight'] });
 *   // adapters[0].loraA === 'lora:blocks.0.q.weight:A'
 */
export function injectLora(
  model: ModelProto,
  opts: LoraOptions,
): { model: ModelProto; adapters: LoraAdapter[] } {
  if (!(opts.rank >= 1 && Number.isInteger(opts.rank)))
    throw new InputError('lora.rank', 'must be a positive integer');
  // a tied weight (Identity of a shared initializer) gets its own initializer and adapter
  const src = untie(model, (n) => opts.targets.some((t) => globMatch(t, n))).graph ?? {};
  const out: ModelProto = {
    ...model,
    graph: {
      ...src,
      node: (src.node ?? []).map((n) => ({ ...n, output: [...(n.output ?? [])] })),
      input: [...(src.input ?? [])],
    },
  };
  const b = GraphBuilder.extend(out);
  const sites = findSites(out).filter((s) => opts.targets.some((t) => globMatch(t, s.weight.name ?? '')));
  if (!sites.length) {
    throw new InputError(
      'lora.targets',
      `[${opts.targets.join(', ')}] match no MatMul/Gemm weight initializer`,
    );
  }
  const scale = opts.alpha / opts.rank;
  const adapters = new Map<string, LoraAdapter>();
  for (const s of sites) {
    const wName = s.weight.name ?? '';
    const [d0, d1] = s.weight.dims as [number, number];
    const [inDim, outDim] = s.transposed ? [d1, d0] : [d0, d1];
    const wt = s.weight.dataType ?? DataType.FLOAT;
    // a half-precision weight's branch runs in float32 (A, B stay float32 parameters): x is cast
    // up, (α/r)·(x·A)·B cast down to the weight's type before the add
    const half = wt === DataType.FLOAT16 || wt === DataType.BFLOAT16;
    const et = half ? DataType.FLOAT : wt;
    const names = loraNames(wName);
    if (!adapters.has(wName)) {
      if (b.has(names.A) || b.has(names.B)) throw new InputError('model', `'${names.A}' already exists`);
      b.input(names.A, et, [inDim, opts.rank]);
      b.input(names.B, et, [opts.rank, outDim]);
      adapters.set(wName, {
        weight: wName,
        module: wName.replace(/\.weight$/, ''),
        inDim,
        outDim,
        rank: opts.rank,
        scale,
        transposed: s.transposed,
        loraA: names.A,
        loraB: names.B,
      });
    }
    // the original node now writes a temporary; the branch adds onto it under the old name
    const y = s.node.output![0]!;
    const base = b.fresh(`${y}_base`);
    s.node.output![0] = base;
    const before = b.graph.node!.length;
    const x0 = s.node.input![s.xIndex]!;
    const x = half ? b.op('Cast', [x0], { to: et }) : x0;
    const xa =
      s.node.opType === 'Gemm'
        ? b.op('Gemm', [x, names.A], { transA: attrInt(s.node, 'transA', 0) })
        : b.op('MatMul', [x, names.A]);
    const sc = b.const([scale], et);
    const xab32 = b.op('MatMul', [b.op('Mul', [xa, sc]), names.B]);
    const xab = half ? b.op('Cast', [xab32], { to: wt }) : xab32;
    b.op('Add', [base, xab], {}, { outputs: [y], rewire: true });
    // keep topological order: move the branch right after its node
    const added = b.graph.node!.splice(before);
    const at = b.graph.node!.indexOf(s.node);
    b.graph.node!.splice(at + 1, 0, ...added);
  }
  return { model: out, adapters: [...adapters.values()] };
}

/** A weight's values as float32/float64 (half-precision ones widened). */
function floatValues(t: TensorProto): Float32Array | Float64Array {
  const W = tensorToArray(t);
  if (W instanceof Float32Array || W instanceof Float64Array) return W;
  if (t.dataType === DataType.FLOAT16) return Float32Array.from(W as Uint16Array, halfToFloat);
  if (t.dataType === DataType.BFLOAT16) return Float32Array.from(W as Uint16Array, bf16ToFloat);
  throw new InputError(
    t.name ?? '',
    'LoRA merge needs a float weight (float32, float64, float16 or bfloat16)',
  );
}

/**
 * Fold adapters into the weights: W += (α/r)·A·B (transposed back for [out, in] weights).
 * `weights` maps `lora:<w>:A` / `lora:<w>:B` names to row-major float arrays. Returns a new
 * model whose other tensors are shared with the input.
 *
 * @example
 *   const merged = mergeLora(base, adapters, { 'lora:w:A': a, 'lora:w:B': bArr });
 */
export function mergeLora(
  model: ModelProto,
  adapters: LoraAdapter[],
  weights: Record<string, Float32Array | Float64Array>,
): ModelProto {
  const names = new Set(adapters.map((a) => a.weight));
  const g = untie(model, (n) => names.has(n)).graph ?? {};
  const byName = new Map(adapters.map((a) => [a.weight, a]));
  const initializer = (g.initializer ?? []).map((t) => {
    const ad = byName.get(t.name ?? '');
    if (!ad) return t;
    const A = weights[ad.loraA];
    const B = weights[ad.loraB];
    if (!A || A.length !== ad.inDim * ad.rank)
      throw new InputError(ad.loraA, `expected ${ad.inDim}×${ad.rank} values`);
    if (!B || B.length !== ad.rank * ad.outDim)
      throw new InputError(ad.loraB, `expected ${ad.rank}×${ad.outDim} values`);
    const W = floatValues(t);
    const r = ad.rank;
    for (let i = 0; i < ad.inDim; i++) {
      for (let j = 0; j < ad.outDim; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += A[i * r + k]! * B[k * ad.outDim + j]!;
        const idx = ad.transposed ? j * ad.inDim + i : i * ad.outDim + j;
        W[idx] = W[idx]! + ad.scale * s;
      }
    }
    // a half weight is merged in float32 and rounded once
    return floatTensor(t.name ?? '', [...(t.dims ?? [])], W, t.dataType ?? DataType.FLOAT);
  });
  for (const a of adapters) {
    if (!(g.initializer ?? []).some((t) => t.name === a.weight)) {
      throw new InputError(a.weight, 'no such initializer to merge into');
    }
  }
  return { ...model, graph: { ...g, initializer } };
}
