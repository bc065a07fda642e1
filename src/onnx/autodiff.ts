/**
 * Reverse-mode automatic differentiation of ONNX graphs, written with standard ai.onnx ops only
 * (so stock onnxruntime builds run the result). See /work/shared/AUTODIFF.md for the rules.
 * Every emitted value gets a static shape, so the rules can keep the graph lean: small
 * broadcastable cotangents, no materialised Expand or weight Transpose, attention's row-sum
 * identity, merged Transposes, identical nodes emitted once (onnx/README.md, "What fits today").
 *
 * Contract of the returned model: every input of the original (with static shapes) plus
 * `grad:Y` for each float output Y (the cotangent; feed zeros for outputs you don't use), and
 * every original output plus `grad:P` for each selected parameter P.
 *
 * @example
 *   const { model: g, warnings } = buildGradientGraph(model, { wrt: ['blocks.*.weight'] });
 *   // run g with {latents, timestep, context, 'grad:velocity': dLoss/dVelocity}
 */
import { InputError } from '../errors.js';
import { type AttrValue, GraphBuilder, valueInfo } from './builder.js';
import { attrFloat, attrInt, attrInts, attrString, globMatch, nodeLabel } from './graph.js';
import { makeTensor, numElements } from './model.js';
import { DataType, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import {
  type Const,
  convSpec,
  inferNode,
  inferShapes,
  isFloatType,
  normAxis,
  parseEinsum,
  reduceAxes,
  type ShapeInfo,
  sliceSpec,
} from './shapes.js';

export interface GradOptions {
  /** Parameter names or globs (`*`, `?`): initializers or graph inputs. */
  wrt: string[];
  /** Static shapes for dynamic inputs (input name → shape, or dim name → [value]). */
  shapes?: Record<string, number[]>;
}

export interface GradResult {
  model: ModelProto;
  /** The parameters found, in the order of `wrt`. */
  params: string[];
  warnings: string[];
}

/** Ops whose outputs carry no gradient (piecewise constant or integer-valued). */
const ZERO_GRAD = new Set([
  'Shape',
  'Size',
  'Constant',
  'ConstantOfShape',
  'Range',
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'ArgMax',
  'ArgMin',
  'NonZero',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'IsNaN',
  'IsInf',
]);

export const gradName = (v: string): string => `grad:${v}`;

/**
 * Build the gradient graph of `model` with respect to the parameters selected by `opts.wrt`.
 *
 * @example
 *   const { model } = buildGradientGraph(loadModel('denoiser.onnx'), { wrt: ['*.weight'], shapes: { latents: [1, 16, 5, 8, 8] } });
 */
export function buildGradientGraph(model: ModelProto, opts: GradOptions): GradResult {
  const info = inferShapes(model, { shapes: opts.shapes });
  if (info.opset < 13) {
    throw new InputError('model', `opset ${info.opset} is not supported for gradients (13 or newer is)`);
  }
  const src = model.graph ?? {};
  const graph: GraphProto = {
    ...src,
    node: info.order.map(trimOptionalInputs),
    initializer: [...(src.initializer ?? [])],
    input: (src.input ?? []).map((v) => {
      const t = info.types.get(v.name ?? '');
      return t ? { ...valueInfo(v.name ?? '', t.elemType, t.shape), docString: v.docString } : v;
    }),
    output: [...(src.output ?? [])],
    valueInfo: [],
  };
  const out: ModelProto = { ...model, graph };
  const b = GraphBuilder.extend(out);

  // Parameters: initializers and graph inputs matched by name or glob.
  const candidates = [
    ...(src.initializer ?? []).map((t) => t.name ?? ''),
    ...(src.input ?? []).map((v) => v.name ?? ''),
  ].filter((n, i, a) => a.indexOf(n) === i);
  const params: string[] = [];
  for (const pat of opts.wrt) {
    const hits = candidates.filter((c) => globMatch(pat, c));
    if (!hits.length) throw new InputError(`--wrt ${pat}`, 'matches no initializer or graph input');
    for (const h of hits) if (!params.includes(h)) params.push(h);
  }
  for (const p of params) {
    const t = info.types.get(p);
    if (!t || !isFloatType(t.elemType)) throw new InputError(`--wrt ${p}`, 'is not a floating-point tensor');
  }

  // Forward: values that depend on a parameter through differentiable ops, and which parameter.
  const source = new Map<string, string>();
  for (const p of params) source.set(p, p);
  for (const node of info.order) {
    if (ZERO_GRAD.has(node.opType ?? '')) continue;
    const from = (node.input ?? []).map((i) => source.get(i)).find((s) => s);
    if (!from) continue;
    for (const o of node.output ?? []) {
      const t = info.types.get(o);
      if (o && t && isFloatType(t.elemType)) source.set(o, from);
    }
  }

  // Cotangent inputs for every float output; contributions for the active ones.
  const contrib = new Map<string, string[]>();
  const add = (v: string, g: string) => {
    const l = contrib.get(v);
    if (l) l.push(g);
    else contrib.set(v, [g]);
  };
  const existing = new Set<string>([
    ...(src.input ?? []).map((v) => v.name ?? ''),
    ...(src.output ?? []).map((v) => v.name ?? ''),
  ]);
  for (const o of src.output ?? []) {
    const name = o.name ?? '';
    const t = info.types.get(name);
    if (!t || !isFloatType(t.elemType)) continue;
    const gn = gradName(name);
    if (existing.has(gn) || b.has(gn)) throw new InputError('model', `value '${gn}' already exists`);
    b.input(gn, t.elemType, t.shape);
    info.types.set(gn, t);
    if (source.has(name)) add(name, gn);
  }

  const total = (v: string): string | undefined => {
    const l = contrib.get(v);
    if (!l || l.length === 0) return undefined;
    if (l.length === 1) return l[0];
    // other terms first, so that each linear layer's product can take the running sum as its C
    const order = [...l.filter((g) => !ctx.gemmOf(g)), ...l.filter((g) => ctx.gemmOf(g))];
    const s = order.slice(1).reduce((acc, g) => ctx.accumulate(acc, g), order[0]!);
    contrib.set(v, [s]);
    return s;
  };

  saveLayerNormStats(graph, info, b, source);
  const ctx = new Ctx(b, info, graph, total);

  // Backward walk (rules append their nodes after the forward ones).
  const forward = [...graph.node!];
  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k]!;
    const op = node.opType ?? '';
    const outs = node.output ?? [];
    let dYs = outs.map((o) => (o && source.has(o) ? total(o) : undefined));
    if (dYs.every((d) => d === undefined)) continue;
    // cotangents may still be broadcastable (a reduction's, kept small); most rules need them whole
    if (!BROADCAST_OK.has(op)) dYs = dYs.map((d, i) => d && ctx.expandTo(d, ctx.shape(outs[i]!)));
    const ins = node.input ?? [];
    const wants = ins.map((i) => !!i && source.has(i));
    if (!wants.some((w) => w)) continue;
    const rule = Object.hasOwn(RULES, op) ? RULES[op] : undefined;
    if (!rule || (node.domain && node.domain !== 'ai.onnx')) {
      const p = source.get(ins.find((i) => source.has(i))!);
      throw new InputError(
        'model',
        `no gradient rule for operator ${node.domain ? `${node.domain}.` : ''}${op} (node ${nodeLabel(node)}), needed for the gradient of '${p}'`,
      );
    }
    const grads = rule(ctx, node, dYs, wants);
    grads.forEach((g, i) => {
      if (g && wants[i]) add(ins[i]!, g);
    });
  }

  // Gradient outputs.
  const warnings: string[] = [];
  for (const p of params) {
    const gn = gradName(p);
    if (existing.has(gn) || b.has(gn)) throw new InputError('model', `value '${gn}' already exists`);
    const t = info.types.get(p)!;
    let g = total(p);
    if (!g) {
      warnings.push(`parameter '${p}' does not reach any float output: its gradient is zero`);
      g = ctx.zeros(t.shape, t.elemType);
    } else g = ctx.expandTo(g, t.shape);
    b.op('Identity', [g], {}, { outputs: [gn] });
    graph.output!.push(valueInfo(gn, t.elemType, t.shape));
  }

  pruneDeadNodes(graph);
  foldOutputIdentities(graph, new Set(forward));
  return { model: out, params, warnings };
}

/**
 * The node without trailing empty (omitted optional) inputs, e.g. PyTorch's
 * `LayerNormalization(x, w, '')`: same meaning, and onnxruntime 1.30's layer-norm fusions crash
 * (segfault) on the empty bias name at optimisation level 'extended' and above.
 *
 * @example
 *   model.graph.node = model.graph.node.map(trimOptionalInputs);
 */
export function trimOptionalInputs(n: NodeProto): NodeProto {
  const ins = n.input ?? [];
  let k = ins.length;
  while (k > 0 && !ins[k - 1]) k--;
  return k === ins.length ? n : { ...n, input: ins.slice(0, k) };
}

/**
 * LayerNormalization nodes on a gradient path get their optional Mean and InvStdDev outputs
 * (float32 stash type), so the backward pass reuses them instead of recomputing the statistics.
 * The forward node list is edited by replacing nodes, never the caller's node objects.
 */
function saveLayerNormStats(
  graph: GraphProto,
  info: ShapeInfo,
  b: GraphBuilder,
  source: Map<string, string>,
): void {
  const nodes = graph.node!;
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    if (n.opType !== 'LayerNormalization' || (n.domain && n.domain !== 'ai.onnx')) continue;
    if (!source.has(n.output?.[0] ?? '')) continue;
    const x = info.types.get(n.input![0]!)!;
    if (x.elemType !== DataType.FLOAT || attrInt(n, 'stash_type', 1) !== 1) continue;
    const outs = [...(n.output ?? [])];
    const stat = x.shape.map((d, k) => (k < normAxis(attrInt(n, 'axis', -1), x.shape.length) ? d : 1));
    for (const k of [1, 2]) {
      if (!outs[k]) {
        outs[k] = b.fresh(`${outs[0]}_${k === 1 ? 'mean' : 'inv_std'}`);
        info.types.set(outs[k]!, { elemType: DataType.FLOAT, shape: stat });
      }
    }
    nodes[i] = { ...n, output: outs };
  }
}

/**
 * `grad:P = Identity(v)` copies the whole gradient; when `v` is written by a backward node
 * and read by nothing else, that node writes `grad:P` directly instead.
 */
function foldOutputIdentities(graph: GraphProto, forward: Set<NodeProto>): void {
  const nodes = graph.node!;
  const consumers = new Map<string, number>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const drop = new Set<NodeProto>();
  for (const n of nodes) {
    if (n.opType !== 'Identity' || forward.has(n) || !n.output?.[0]?.startsWith('grad:')) continue;
    const v = n.input![0]!;
    const p = producer.get(v);
    if (!p || forward.has(p) || consumers.get(v) !== 1 || outputs.has(v)) continue;
    p.output = p.output!.map((o) => (o === v ? n.output![0]! : o));
    drop.add(n);
  }
  graph.node = nodes.filter((n) => !drop.has(n));
}

/** Remove nodes whose outputs nothing needs, and initializers nothing reads. */
export function pruneDeadNodes(graph: GraphProto): void {
  const needed = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const keep: NodeProto[] = [];
  const nodes = graph.node ?? [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if ((n.output ?? []).some((o) => needed.has(o))) {
      keep.push(n);
      for (const x of n.input ?? []) needed.add(x);
    }
  }
  graph.node = keep.reverse();
  const inputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
  graph.initializer = (graph.initializer ?? []).filter(
    (t) => needed.has(t.name ?? '') || inputs.has(t.name ?? ''),
  );
}

// ---------------------------------------------------------------------------------------------

/** Emission helpers shared by the rules. */
class Ctx {
  private readonly cache = new Map<string, string>();
  /** Producer of every value (forward and emitted), for the peepholes. */
  private readonly producer = new Map<string, NodeProto>();
  /** The nodes this context emitted (never rewritten forward nodes). */
  private readonly emitted = new Set<NodeProto>();
  /** Forward value → the forward nodes reading it. */
  readonly consumers = new Map<string, NodeProto[]>();
  private readonly outputs: Set<string>;
  constructor(
    readonly b: GraphBuilder,
    readonly info: ShapeInfo,
    graph: GraphProto,
    /** The (summed) cotangent of a forward value whose consumers are all done. */
    readonly cotangent: (v: string) => string | undefined,
  ) {
    for (const n of graph.node ?? []) {
      for (const o of n.output ?? []) this.producer.set(o, n);
      for (const i of n.input ?? []) {
        const l = this.consumers.get(i);
        if (l) l.push(n);
        else this.consumers.set(i, [n]);
      }
    }
    this.outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  }

  get opset(): number {
    return this.info.opset;
  }
  shape(v: string): number[] {
    const t = this.info.types.get(v);
    if (!t) throw new InputError('model', `no static shape for '${v}'`);
    return t.shape;
  }
  et(v: string): number {
    return this.info.types.get(v)!.elemType;
  }
  constOf(v: string): Const | undefined {
    return this.info.consts.get(v);
  }
  isOutput(v: string): boolean {
    return this.outputs.has(v);
  }
  /**
   * Append a node, or reuse an identical one already emitted (same op, inputs and attributes);
   * its output types are inferred so later rules and peepholes know every shape.
   */
  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(type, inputs, attrs, 1)[0]!;
  }
  opN(type: string, inputs: string[], attrs: Record<string, AttrValue>, outputs: number): string[] {
    const plain = Object.values(attrs).every((v) => typeof v !== 'object' || Array.isArray(v));
    const key = plain ? `n:${type}|${inputs.join('|')}|${JSON.stringify(attrs)}|${outputs}` : undefined;
    const hit = key && this.cache.get(key);
    if (hit) return hit.split('\n');
    const outs = this.b.opN(type, inputs, attrs, { outputs });
    const node = this.b.graph.node![this.b.graph.node!.length - 1]!;
    this.emitted.add(node);
    for (const o of outs) this.producer.set(o, node);
    try {
      const ts = inferNode(
        node,
        inputs.map((i) => (i ? this.info.types.get(i) : undefined)),
        inputs.map((i) => (i ? this.info.consts.get(i) : undefined)),
        this.opset,
      );
      outs.forEach((o, i) => {
        if (ts[i]) this.info.types.set(o, ts[i]!);
      });
    } catch {
      // a shape the inference cannot give only disables the peepholes that would read it
    }
    if (key) this.cache.set(key, outs.join('\n'));
    return outs;
  }
  /** The static shape of `v` where known (every forward value, most emitted ones). */
  shapeOr(v: string): number[] | undefined {
    return this.info.types.get(v)?.shape;
  }
  /** A float scalar of element type `et`. */
  scalar(v: number, et: number): string {
    const key = `s:${et}:${v}`;
    let n = this.cache.get(key);
    if (!n) {
      const data = et === DataType.DOUBLE ? Float64Array.of(v) : Float32Array.of(v);
      if (et !== DataType.DOUBLE && et !== DataType.FLOAT) {
        throw new InputError(
          'model',
          `gradients in element type ${et} are not supported (float32/float64 are)`,
        );
      }
      n = this.b.fresh('grad_const');
      this.b.graph.initializer!.push(makeTensor(n, [], data));
      this.info.types.set(n, { elemType: et, shape: [] });
      this.info.consts.set(n, { elemType: et, shape: [], data: [v] });
      this.cache.set(key, n);
    }
    return n;
  }
  /** A tensor of ones, of element type `et`. */
  ones(shape: number[], et: number): string {
    const key = `o:${et}:${shape.join(',')}`;
    let n = this.cache.get(key);
    if (!n) {
      const count = numElements(shape);
      const data = et === DataType.DOUBLE ? new Float64Array(count) : new Float32Array(count);
      data.fill(1);
      n = this.b.fresh('grad_ones');
      this.b.graph.initializer!.push(makeTensor(n, shape, data));
      this.info.types.set(n, { elemType: et, shape });
      this.cache.set(key, n);
    }
    return n;
  }
  ints(v: readonly number[]): string {
    const key = `i:${v.join(',')}`;
    let n = this.cache.get(key);
    if (!n) {
      n = this.b.fresh('grad_shape');
      this.b.graph.initializer!.push(
        makeTensor(
          n,
          [v.length],
          BigInt64Array.from(v, (x) => BigInt(x)),
        ),
      );
      this.info.types.set(n, { elemType: DataType.INT64, shape: [v.length] });
      this.info.consts.set(n, { elemType: DataType.INT64, shape: [v.length], data: [...v] });
      this.cache.set(key, n);
    }
    return n;
  }
  zeros(shape: number[], et: number): string {
    const value = makeTensor(
      'value',
      [1],
      et === DataType.DOUBLE ? new Float64Array(1) : new Float32Array(1),
    );
    if (shape.length === 0)
      return this.op('Reshape', [this.op('ConstantOfShape', [this.ints([1])], { value }), this.ints([])]);
    return this.op('ConstantOfShape', [this.ints(shape)], { value });
  }
  /** Reshape, skipping no-ops and collapsing Reshape chains. */
  reshape(x: string, shape: number[]): string {
    const xs = this.shapeOr(x);
    if (xs && !shape.includes(-1) && sameShape(xs, shape)) return x;
    const p = this.producer.get(x);
    if (p?.opType === 'Reshape' && !p.domain && !shape.includes(0) && attrInt(p, 'allowzero', 0) === 0) {
      x = p.input![0]!;
      if (this.shapeOr(x) && !shape.includes(-1) && sameShape(this.shapeOr(x)!, shape)) return x;
    }
    return this.op('Reshape', [x, this.ints(shape)]);
  }
  /**
   * Transpose, skipping identities, composing Transpose chains, and moving as few axes as it
   * can: size-1 axes are dropped and axes that stay adjacent are merged (Reshapes are free,
   * onnxruntime's transposes of many small axes are slow), a permutation that moves no data
   * becomes a Reshape.
   */
  transpose(x: string, perm: number[]): string {
    const p = this.producer.get(x);
    if (p?.opType === 'Transpose' && !p.domain) {
      const inner = attrInts(p, 'perm') ?? perm.map((_, i) => perm.length - 1 - i);
      x = p.input![0]!;
      perm = perm.map((i) => inner[i]!);
    }
    if (perm.every((a, i) => a === i)) return x;
    const xs = this.shapeOr(x);
    if (!xs) return this.op('Transpose', [x], { perm });
    const outShape = perm.map((a) => xs[a]!);
    const sig = xs.map((_, i) => i).filter((i) => xs[i]! > 1);
    const rank = new Map(sig.map((a, i) => [a, i]));
    // runs of input axes that stay consecutive, in output order
    const runs: number[][] = [];
    for (const a of perm.filter((i) => xs[i]! > 1)) {
      const last = runs[runs.length - 1];
      if (last && rank.get(a) === rank.get(last[last.length - 1]!)! + 1) last.push(a);
      else runs.push([a]);
    }
    if (runs.length <= 1) return this.reshape(x, outShape);
    if (runs.length === perm.length) return this.op('Transpose', [x], { perm });
    const byInput = [...runs].sort((u, v) => u[0]! - v[0]!);
    const size = (r: number[]) => r.reduce((q, a) => q * xs[a]!, 1);
    const t = this.op('Transpose', [this.reshape(x, byInput.map(size))], {
      perm: runs.map((r) => byInput.indexOf(r)),
    });
    return this.reshape(t, outShape);
  }
  /** `x` broadcast to `shape` (an Expand only where it is smaller). */
  expandTo(x: string, shape: number[]): string {
    const xs = this.shapeOr(x);
    if (xs && sameShape(xs, shape)) return x;
    return this.op('Expand', [x, this.ints(shape)]);
  }
  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    return this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceMean(x: string, axes: number[], keepdims: boolean): string {
    if (this.opset >= 18) return this.op('ReduceMean', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
    return this.op('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 });
  }
  /**
   * Sum `g` down to the broadcast operand's shape `to`. `from` is g's shape when the inference
   * does not know it. A g that is still broadcastable (size 1 where `to` is not) stays so.
   */
  unbroadcast(g: string, from: number[], to: number[]): string {
    from = this.shapeOr(g) ?? from;
    const off = from.length - to.length;
    if (off < 0) return this.expandTo(g, to);
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) {
      if (i < off || (to[i - off] === 1 && from[i] !== 1)) axes.push(i);
    }
    const target = to.map((d, j) => (from[j + off] === 1 ? 1 : d));
    if (!axes.length) return g;
    // summing leading axes (the rows of a bias or modulation gradient) is a vector-matrix
    // product, which onnxruntime runs several times faster than ReduceSum over those axes
    const big = from.map((_, i) => i).filter((i) => from[i]! > 1);
    const red = big.filter((i) => axes.includes(i));
    const kept = big.filter((i) => !axes.includes(i));
    const et = this.info.types.get(g)?.elemType;
    if (
      red.length &&
      kept.length &&
      red[red.length - 1]! < kept[0]! &&
      (et === DataType.FLOAT || et === DataType.DOUBLE)
    ) {
      const rows = red.reduce((p, i) => p * from[i]!, 1);
      const cols = kept.reduce((p, i) => p * from[i]!, 1);
      const r = this.op('MatMul', [this.ones([1, rows], et), this.reshape(g, [rows, cols])]);
      return this.reshape(r, target);
    }
    if (axes.every((i) => i < off)) return this.reduceSum(g, axes, false);
    return this.reshape(this.reduceSum(g, axes, true), target);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  /** The emitted two-input Gemm that computes `x` (possibly through a Reshape), if any. */
  gemmOf(x: string): [NodeProto, boolean] | undefined {
    let p = this.producer.get(x);
    const reshaped = p?.opType === 'Reshape' && this.emitted.has(p);
    if (reshaped) p = this.producer.get(p!.input![0]!);
    if (p?.opType !== 'Gemm' || !this.emitted.has(p) || (p.input ?? []).length !== 2) return undefined;
    return [p, reshaped];
  }
  /**
   * a + b for two cotangent contributions. Where one is an emitted Gemm's product (the dX of a
   * linear layer, maybe reshaped), the other becomes that Gemm's C, accumulated in place instead
   * of by a separate pass; otherwise an Add (which onnxruntime may still fold into a MatMul).
   */
  accumulate(a: string, b: string): string {
    for (const [x, y] of [
      [b, a],
      [a, b],
    ] as const) {
      const xs = this.shapeOr(x);
      const ys = this.shapeOr(y);
      if (!xs || !ys || !sameShape(xs, ys)) continue;
      const gemm = this.gemmOf(x);
      if (!gemm) continue;
      const [p, reshaped] = gemm;
      const gs = this.shapeOr(p.output![0]!);
      if (!gs || (this.info.types.get(x)?.elemType ?? 0) !== (this.info.types.get(y)?.elemType ?? -1))
        continue;
      const attrs: Record<string, AttrValue> = {
        transA: attrInt(p, 'transA', 0),
        transB: attrInt(p, 'transB', 0),
      };
      const alpha = attrFloat(p, 'alpha', 1);
      if (alpha !== 1) attrs.alpha = alpha;
      const out = this.op('Gemm', [p.input![0]!, p.input![1]!, this.reshape(y, gs)], attrs);
      return reshaped ? this.reshape(out, xs) : out;
    }
    return this.op('Add', [a, b]);
  }
  /** Transpose swapping the last two axes of a value of rank `rank`. */
  swapLast(x: string, rank: number): string {
    const perm = Array.from({ length: rank }, (_, i) => i);
    perm[rank - 1] = rank - 2;
    perm[rank - 2] = rank - 1;
    return this.transpose(x, perm);
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Ops whose rules take a cotangent that is still broadcastable (smaller than the output). */
const BROADCAST_OK = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Neg',
  'Identity',
  'Sqrt',
  'Reciprocal',
  'Exp',
  'Log',
  'Tanh',
  'Sigmoid',
  'Sum',
  'Mean',
  'Cast',
]);

type Rule = (
  ctx: Ctx,
  node: NodeProto,
  dY: (string | undefined)[],
  wants: boolean[],
) => (string | undefined)[];

const I = (n: NodeProto, i: number): string => n.input![i]!;
const O = (n: NodeProto, i = 0): string => n.output![i]!;

/** Rule for y = f(x) with dX = dY · f'(x), f' given by `deriv` (names of forward values). */
const unary =
  (deriv: (c: Ctx, x: string, y: string, et: number) => string): Rule =>
  (c, n, [dY]) => [c.mul(dY!, deriv(c, I(n, 0), O(n), c.et(I(n, 0))))];

/** Binary elementwise rule: `pa`/`pb` give the unreduced cotangents (of the output's shape). */
const binary =
  (
    pa: (c: Ctx, dY: string, n: NodeProto) => string,
    pb: (c: Ctx, dY: string, n: NodeProto) => string,
  ): Rule =>
  (c, n, [dY], w) => {
    const y = c.shape(O(n));
    return [
      w[0] ? c.unbroadcast(pa(c, dY!, n), y, c.shape(I(n, 0))) : undefined,
      w[1] ? c.unbroadcast(pb(c, dY!, n), y, c.shape(I(n, 1))) : undefined,
    ];
  };

const reshapeBack: Rule = (c, n, [dY]) => [c.reshape(dY!, c.shape(I(n, 0)))];

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

const RULES: Record<string, Rule> = {
  Identity: (_c, _n, [dY]) => [dY],
  Dropout: (_c, _n, [dY]) => [dY],
  Neg: (c, _n, [dY]) => [c.op('Neg', [dY!])],
  Add: binary(
    (_c, d) => d,
    (_c, d) => d,
  ),
  Sub: (c, n, [dY], w) => {
    // negate after any broadcast reduction, on the smaller tensor
    const y = c.shape(O(n));
    return [
      w[0] ? c.unbroadcast(dY!, y, c.shape(I(n, 0))) : undefined,
      w[1] ? c.op('Neg', [c.unbroadcast(dY!, y, c.shape(I(n, 1)))]) : undefined,
    ];
  },
  Mul: binary(
    (c, d, n) => c.mul(d, I(n, 1)),
    (c, d, n) => c.mul(d, I(n, 0)),
  ),
  Div: (c, n, [dY], w) => {
    const y = c.shape(O(n));
    const dA = c.op('Div', [dY!, I(n, 1)]);
    return [
      w[0] ? c.unbroadcast(dA, y, c.shape(I(n, 0))) : undefined,
      w[1] ? c.op('Neg', [c.unbroadcast(c.mul(dA, O(n)), y, c.shape(I(n, 1)))]) : undefined,
    ];
  },
  Sum: (c, n, [dY], w) =>
    (n.input ?? []).map((x, i) => (w[i] ? c.unbroadcast(dY!, c.shape(O(n)), c.shape(x)) : undefined)),
  Mean: (c, n, [dY], w) => {
    const d = c.mul(dY!, c.scalar(1 / n.input!.length, c.et(O(n))));
    return (n.input ?? []).map((x, i) => (w[i] ? c.unbroadcast(d, c.shape(O(n)), c.shape(x)) : undefined));
  },
  Pow: (c, n, [dY], w) => {
    const x = I(n, 0);
    const e = I(n, 1);
    const et = c.et(x);
    const y = c.shape(O(n));
    let dX: string | undefined;
    if (w[0]) {
      const ec = c.constOf(e);
      let g: string;
      if (ec && ec.data.length === 1) {
        // e·dY first: dY may still be a small broadcastable tensor (a reduction's cotangent)
        const ev = ec.data[0]!;
        const xe = ev === 2 ? x : c.op('Pow', [x, c.scalar(ev - 1, et)]);
        g = ev === 1 ? dY! : c.mul(c.mul(dY!, c.scalar(ev, et)), xe);
      } else {
        const ef = c.et(e) === et ? e : c.op('Cast', [e], { to: et });
        g = c.mul(dY!, c.mul(c.op('Pow', [x, c.op('Sub', [ef, c.scalar(1, et)])]), ef));
      }
      dX = c.unbroadcast(g, y, c.shape(x));
    }
    const dE = w[1] ? c.unbroadcast(c.mul(c.mul(dY!, O(n)), c.op('Log', [x])), y, c.shape(e)) : undefined;
    return [dX, dE];
  },
  Sqrt: (c, n, [dY]) => [c.op('Div', [c.mul(dY!, c.scalar(0.5, c.et(O(n)))), O(n)])],
  Reciprocal: (c, n, [dY]) => [c.op('Neg', [c.mul(dY!, c.mul(O(n), O(n)))])],
  Exp: (c, n, [dY]) => [c.mul(dY!, O(n))],
  Log: (c, n, [dY]) => [c.op('Div', [dY!, I(n, 0)])],
  Abs: unary((c, x) => c.op('Sign', [x])),
  Tanh: unary((c, _x, y, et) => c.op('Sub', [c.scalar(1, et), c.mul(y, y)])),
  Sigmoid: unary((c, _x, y, et) => c.mul(y, c.op('Sub', [c.scalar(1, et), y]))),
  Softplus: unary((c, x) => c.op('Sigmoid', [x])),
  Erf: unary((c, x, _y, et) =>
    c.mul(c.op('Exp', [c.op('Neg', [c.mul(x, x)])]), c.scalar(2 / Math.sqrt(Math.PI), et)),
  ),
  Sin: unary((c, x) => c.op('Cos', [x])),
  Cos: unary((c, x) => c.op('Neg', [c.op('Sin', [x])])),
  Relu: (c, n, [dY]) => {
    const x = I(n, 0);
    const mask = c.op('Greater', [x, c.scalar(0, c.et(x))]);
    return [c.op('Where', [mask, dY!, c.scalar(0, c.et(x))])];
  },
  LeakyRelu: (c, n, [dY]) => {
    const x = I(n, 0);
    const et = c.et(x);
    const mask = c.op('Greater', [x, c.scalar(0, et)]);
    return [c.op('Where', [mask, dY!, c.mul(dY!, c.scalar(attrFloat(n, 'alpha', 0.01), et))])];
  },
  Gelu: (c, n, [dY]) => {
    const x = I(n, 0);
    const s = (v: number) => c.scalar(v, c.et(x));
    let d: string;
    if (attrString(n, 'approximate', 'none') === 'tanh') {
      // y = 0.5x(1 + tanh u) = x·σ(v), v = 2u = x(k0 + k1x²), u = √(2/π)(x + 0.044715x³), so
      // y' = σ(v)·(1 + x(1 − σ(v))·v'), v' = k0 + 3k1x²: fewer passes than the tanh form
      const k0 = 2 * SQRT_2_OVER_PI;
      const k1 = k0 * 0.044715;
      const x2 = c.mul(x, x);
      const sv = c.op('Sigmoid', [c.mul(x, c.op('Add', [c.mul(x2, s(k1)), s(k0)]))]);
      const xv = c.mul(x, c.op('Add', [c.mul(x2, s(3 * k1)), s(k0)]));
      d = c.mul(sv, c.op('Add', [c.mul(xv, c.op('Sub', [s(1), sv])), s(1)]));
    } else {
      // Φ(x) + x·φ(x)
      const cdf = c.mul(c.op('Add', [s(1), c.op('Erf', [c.mul(x, s(Math.SQRT1_2))])]), s(0.5));
      const pdf = c.mul(c.op('Exp', [c.mul(c.mul(x, x), s(-0.5))]), s(1 / Math.sqrt(2 * Math.PI)));
      d = c.op('Add', [cdf, c.mul(x, pdf)]);
    }
    return [c.mul(dY!, d)];
  },
  Softmax: (c, n, [dY]) => {
    const y = O(n);
    const ys = c.shape(y);
    const axis = normAxis(attrInt(n, 'axis', -1), ys.length);
    const s = attentionRowSum(c, y, axis) ?? c.reduceSum(c.mul(dY!, y), [axis], true);
    return [c.mul(y, c.op('Sub', [dY!, s]))];
  },
  LogSoftmax: (c, n, [dY]) => {
    const y = O(n);
    const axis = normAxis(attrInt(n, 'axis', -1), c.shape(y).length);
    const s = c.reduceSum(dY!, [axis], true);
    return [c.op('Sub', [dY!, c.mul(c.op('Exp', [y]), s)])];
  },
  Max: minMax('GreaterOrEqual'),
  Min: minMax('LessOrEqual'),
  Clip: (c, n, [dY], w) => {
    const x = I(n, 0);
    const et = c.et(x);
    const zero = c.scalar(0, et);
    const lo = n.input?.[1];
    const hi = n.input?.[2];
    let inside: string | undefined;
    if (lo) inside = c.op('GreaterOrEqual', [x, lo]);
    if (hi) {
      const m = c.op('LessOrEqual', [x, hi]);
      inside = inside ? c.op('And', [inside, m]) : m;
    }
    const y = c.shape(O(n));
    return [
      inside ? c.op('Where', [inside, dY!, zero]) : dY,
      w[1] && lo
        ? c.unbroadcast(c.op('Where', [c.op('Less', [x, lo]), dY!, zero]), y, c.shape(lo))
        : undefined,
      w[2] && hi
        ? c.unbroadcast(c.op('Where', [c.op('Greater', [x, hi]), dY!, zero]), y, c.shape(hi))
        : undefined,
    ];
  },
  Where: (c, n, [dY], w) => {
    const y = c.shape(O(n));
    const zero = c.scalar(0, c.et(O(n)));
    return [
      undefined,
      w[1] ? c.unbroadcast(c.op('Where', [I(n, 0), dY!, zero]), y, c.shape(I(n, 1))) : undefined,
      w[2] ? c.unbroadcast(c.op('Where', [I(n, 0), zero, dY!]), y, c.shape(I(n, 2))) : undefined,
    ];
  },
  Cast: (c, n, [dY]) => {
    const et = c.et(I(n, 0));
    return [et === c.et(O(n)) ? dY : c.op('Cast', [dY!], { to: et })];
  },
  CastLike: (c, n, [dY]) => {
    const et = c.et(I(n, 0));
    return [et === c.et(O(n)) ? dY : c.op('Cast', [dY!], { to: et }), undefined];
  },
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: (c, n, [dY]) => {
    const r = c.shape(I(n, 0)).length;
    const perm = attrInts(n, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    const inv = new Array<number>(r);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [c.transpose(dY!, inv)];
  },
  Expand: (c, n, [dY]) => [c.unbroadcast(dY!, c.shape(O(n)), c.shape(I(n, 0)))],
  Tile: (c, n, [dY]) => {
    const xs = c.shape(I(n, 0));
    const reps = c.constOf(I(n, 1))!.data;
    const split: number[] = [];
    xs.forEach((d, i) => {
      split.push(reps[i]!, d);
    });
    const r = c.reduceSum(
      c.reshape(dY!, split),
      xs.map((_, i) => 2 * i),
      false,
    );
    return [c.reshape(r, xs)];
  },
  ReduceSum: reduceRule(false),
  ReduceMax: reduceExtremumRule,
  ReduceMin: reduceExtremumRule,
  ReduceSumSquare: (c, n, dY, w) => {
    const x = I(n, 0);
    const g = reduceRule(false)(c, n, dY, w)[0]!;
    return [c.mul(g, c.mul(x, c.scalar(2, c.et(x)))), undefined];
  },
  ReduceL2: (c, n, dY, w) => {
    // d‖x‖/dx = x / ‖x‖ (Y broadcast back in keepdims form)
    const x = I(n, 0);
    const g = reduceRule(false)(c, n, dY, w)[0]!;
    return [c.mul(g, c.op('Div', [x, keptOutput(c, n)])), undefined];
  },
  ReduceMean: reduceRule(true),
  Concat: (c, n, [dY], w) => {
    const ys = c.shape(O(n));
    const axis = normAxis(attrInt(n, 'axis', 0), ys.length);
    const sizes = n.input!.map((x) => c.shape(x)[axis]!);
    const parts = c.b.opN('Split', [dY!, c.ints(sizes)], { axis }, { outputs: sizes.length });
    return parts.map((p, i) => (w[i] ? p : undefined));
  },
  Split: (c, n, dYs) => {
    const axis = normAxis(attrInt(n, 'axis', 0), c.shape(I(n, 0)).length);
    const parts = n.output!.map((o, i) => dYs[i] ?? c.zeros(c.shape(o), c.et(I(n, 0))));
    return [parts.length === 1 ? parts[0] : c.op('Concat', parts, { axis })];
  },
  Slice: (c, n, [dY]) => {
    const xs = c.shape(I(n, 0));
    const cs = n.input!.map((i) => (i ? c.constOf(i) : undefined));
    const spec = sliceSpec(n, cs, xs);
    if (spec.steps.every((s) => s === 1)) {
      const pads = [...spec.starts, ...xs.map((d, a) => d - spec.ends[a]!)];
      if (pads.every((p) => p === 0)) return [dY];
      return [c.op('Pad', [dY!, c.ints(pads)])];
    }
    if (spec.steps.every((s) => s > 0)) {
      // positive steps: interleave step−1 zeros along each strided axis, then pad/crop
      const et = c.et(I(n, 0));
      let d = dY!;
      const cur = [...spec.outShape];
      xs.forEach((_, a) => {
        const st = spec.steps[a]!;
        if (st === 1 || cur[a] === 0) return;
        const un = [...cur.slice(0, a + 1), 1, ...cur.slice(a + 1)];
        const pads = new Array(2 * un.length).fill(0);
        pads[un.length + a + 1] = st - 1;
        d = c.op('Pad', [c.reshape(d, un), c.ints(pads), c.scalar(0, et)]);
        cur[a] = cur[a]! * st;
        d = c.reshape(d, cur);
      });
      const crop = xs.map((dim, a) => Math.min(cur[a]!, dim - spec.starts[a]!));
      if (crop.some((v, a) => v !== cur[a])) {
        d = c.op('Slice', [d, c.ints(xs.map(() => 0)), c.ints(crop), c.ints(xs.map((_, a) => a))]);
      }
      const pads = [...spec.starts, ...xs.map((dim, a) => dim - spec.starts[a]! - crop[a]!)];
      return [pads.every((p) => p === 0) ? d : c.op('Pad', [d, c.ints(pads)])];
    }
    // negative steps: scatter into zeros at the indices the slice read
    const total = numElements(spec.outShape);
    if (total * xs.length > 1 << 22)
      throw new InputError('model', `strided Slice ${nodeLabel(n)} is too large to differentiate`);
    const idx = new BigInt64Array(total * xs.length);
    const os = spec.outShape;
    for (let i = 0; i < total; i++) {
      let rem = i;
      for (let a = os.length - 1; a >= 0; a--) {
        const cix = rem % os[a]!;
        rem = Math.floor(rem / os[a]!);
        idx[i * xs.length + a] = BigInt(spec.starts[a]! + cix * spec.steps[a]!);
      }
    }
    const name = c.b.fresh('grad_slice_idx');
    c.b.graph.initializer!.push(makeTensor(name, [...os, xs.length], idx));
    return [c.op('ScatterND', [c.zeros(xs, c.et(I(n, 0))), name, dY!])];
  },
  Einsum: (c, n, [dY], w) => {
    const eq = parseEinsum(attrString(n, 'equation', ''), n.input!.length);
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
      const g = c.op('Einsum', [dY!, ...ins.filter((_, k) => k !== i)], {
        equation: `${[eq.output, ...others].join(',')}->${kept}`,
      });
      if (kept.length === spec.length) return g;
      // indices summed inside this operand alone: the gradient is constant along them
      const xs = c.shape(x);
      const withOnes = [...spec].map((l, k) => (avail.has(l) ? xs[k]! : 1));
      return c.op('Expand', [c.reshape(g, withOnes), c.ints(xs)]);
    });
  },
  Pad: (c, n, [dY]) => {
    if (attrString(n, 'mode', 'constant') !== 'constant') {
      throw new InputError('model', `Pad ${nodeLabel(n)}: only constant mode has a gradient rule`);
    }
    const xs = c.shape(I(n, 0));
    const r = xs.length;
    const pads = c.constOf(I(n, 1))?.data;
    if (!pads) throw new InputError('model', `Pad ${nodeLabel(n)}: pads must be constant`);
    const axes = n.input?.[3] ? c.constOf(I(n, 3))!.data.map((a) => normAxis(a, r)) : xs.map((_, i) => i);
    const starts = axes.map((_, i) => pads[i]!);
    const ends = axes.map((a, i) => pads[i]! + xs[a]!);
    return [c.op('Slice', [dY!, c.ints(starts), c.ints(ends), c.ints(axes)])];
  },
  Gather: (c, n, [dY]) => {
    const x = I(n, 0);
    const xs = c.shape(x);
    const axis = normAxis(attrInt(n, 'axis', 0), xs.length);
    const idxName = I(n, 1);
    const q = c.shape(idxName);
    const qn = numElements(q);
    // dY as [pre, qn, post] with the indices flattened, ScatterElements-add into zeros of X
    const mid = [...xs.slice(0, axis), qn, ...xs.slice(axis + 1)];
    const d = c.reshape(dY!, mid);
    const flatIdx = c.reshape(idxName, [qn]);
    const idxShape = mid.map((_, i) => (i === axis ? qn : 1));
    let idx = c.op('Expand', [c.reshape(flatIdx, idxShape), c.ints(mid)]);
    if (c.et(idxName) !== DataType.INT64) idx = c.op('Cast', [idx], { to: DataType.INT64 });
    const zeros = c.zeros(xs, c.et(x));
    if (c.opset >= 16)
      return [c.op('ScatterElements', [zeros, idx, d], { axis, reduction: 'add' }), undefined];
    const ic = c.constOf(idxName);
    const uniq = ic && new Set(ic.data.map((v) => (v < 0 ? v + xs[axis]! : v))).size === ic.data.length;
    if (!uniq) {
      throw new InputError(
        'model',
        `Gather ${nodeLabel(n)}: gradient with repeated or runtime indices needs opset 16+`,
      );
    }
    return [c.op('ScatterElements', [zeros, idx, d], { axis }), undefined];
  },
  MatMul: (c, n, [dY], w) => {
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
  },
  Gemm: (c, n, [dY], w) => {
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
  },
  Conv: (c, n, [dY], w) => {
    const X = I(n, 0);
    const W = I(n, 1);
    const xs = c.shape(X);
    const ws = c.shape(W);
    const spec = convSpec(n, xs, ws);
    const nsp = xs.length - 2;
    const ys = spec.outShape;
    const g = spec.group;
    let dX: string | undefined;
    let dW: string | undefined;
    let dB: string | undefined;
    if (w[0]) {
      const outPad = spec.kernel.map(
        (k, i) =>
          xs[i + 2]! +
          spec.pads[i]! +
          spec.pads[i + nsp]! -
          ((ys[i + 2]! - 1) * spec.strides[i]! + (k - 1) * spec.dilations[i]! + 1),
      );
      dX = c.op('ConvTranspose', [dY!, W], {
        strides: spec.strides,
        pads: spec.pads,
        dilations: spec.dilations,
        group: g,
        kernel_shape: spec.kernel,
        ...(outPad.some((p) => p) ? { output_padding: outPad } : {}),
      });
    }
    const k = spec.kernel;
    const o = ys.slice(2);
    const patchify =
      g === 1 &&
      k.every((ki, i) => spec.strides[i] === ki && spec.dilations[i] === 1 && xs[i + 2] === o[i]! * ki) &&
      spec.pads.every((q) => q === 0);
    if (w[1] && patchify) {
      // kernel = stride, no padding (a patch embedding): dW is one product of the patches
      // [N·o, C·k] with dY [N·o, M], far cheaper than a dilated Conv over the whole input
      const [N, C, M] = [xs[0]!, xs[1]!, ws[0]!];
      const split = [N, C, ...o.flatMap((oi, i) => [oi, k[i]!])];
      const perm = [0, ...o.map((_, i) => 2 + 2 * i), 1, ...k.map((_, i) => 3 + 2 * i)];
      const rows = N * numElements(o);
      const patches = c.reshape(c.transpose(c.reshape(X, split), perm), [rows, C * numElements(k)]);
      const dRows = c.reshape(c.transpose(dY!, [0, ...o.map((_, i) => 2 + i), 1]), [rows, M]);
      dW = c.reshape(c.op('Gemm', [dRows, patches], { transA: 1 }), ws);
    } else if (w[1]) {
      const [N, C] = [xs[0]!, xs[1]!];
      const sp = xs.slice(2);
      const axesRest = sp.map((_, i) => i + 3);
      // channels become the batch: Xg [C/g, g·N, sp], kernel dYᵀ [M, N, o]
      const Xg =
        g === 1
          ? c.op('Transpose', [X], { perm: [1, 0, ...sp.map((_, i) => i + 2)] })
          : c.reshape(
              c.op('Transpose', [c.reshape(X, [N, g, C / g, ...sp])], { perm: [2, 1, 0, ...axesRest] }),
              [C / g, g * N, ...sp],
            );
      const K = c.op('Transpose', [dY!], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
      let r = c.op('Conv', [Xg, K], {
        strides: spec.dilations,
        dilations: spec.strides,
        pads: spec.pads,
        group: g,
      });
      const got = spec.kernel.map(
        (_, i) =>
          Math.floor(
            (sp[i]! + spec.pads[i]! + spec.pads[i + nsp]! - ((ys[i + 2]! - 1) * spec.strides[i]! + 1)) /
              spec.dilations[i]!,
          ) + 1,
      );
      if (got.some((v, i) => v !== spec.kernel[i])) {
        r = c.op('Slice', [
          r,
          c.ints(spec.kernel.map(() => 0)),
          c.ints(spec.kernel),
          c.ints(spec.kernel.map((_, i) => i + 2)),
        ]);
      }
      dW = c.op('Transpose', [r], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
    }
    if (w[2]) dB = c.reduceSum(dY!, [0, ...ys.slice(2).map((_, i) => i + 2)], false);
    return [dX, dW, dB];
  },
  LayerNormalization: (c, n, [dY], w) => {
    if (!dY) return [];
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
    if (w[0]) {
      const g = unit ? dY : c.mul(dY, I(n, 1));
      const mg = c.reduceMean(g, axes, true);
      const mgx = c.reduceMean(c.mul(g, xh), axes, true);
      dX = c.mul(rsT, c.op('Sub', [c.op('Sub', [g, mg]), c.mul(xh, mgx)]));
    }
    const dS = w[1] ? c.unbroadcast(c.mul(dY, xh), xs, c.shape(I(n, 1))) : undefined;
    const dB = w[2] && n.input?.[2] ? c.unbroadcast(dY, xs, c.shape(I(n, 2))) : undefined;
    return [dX, dS, dB];
  },
};

/**
 * Σ_j dP_ij·P_ij for attention weights P = Softmax(S) read only by O = MatMul(P, V): since
 * dP = dO·Vᵀ, it equals Σ_n dO_in·O_in (FlashAttention's identity), a sum over the head size
 * instead of over the keys, which avoids a pass over the large tokens² matrix.
 */
function attentionRowSum(c: Ctx, y: string, axis: number): string | undefined {
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
  return c.reduceSum(c.mul(dO, o), [axis], true);
}

function minMax(cmp: 'GreaterOrEqual' | 'LessOrEqual'): Rule {
  return (c, n, [dY], w) => {
    const y = c.shape(O(n));
    const ins = n.input!;
    const zero = c.scalar(0, c.et(O(n)));
    if (ins.length === 1) return [dY];
    if (ins.length === 2) {
      const m = c.op(cmp, [ins[0]!, ins[1]!]);
      return [
        w[0] ? c.unbroadcast(c.op('Where', [m, dY!, zero]), y, c.shape(ins[0]!)) : undefined,
        w[1] ? c.unbroadcast(c.op('Where', [m, zero, dY!]), y, c.shape(ins[1]!)) : undefined,
      ];
    }
    return ins.map((x, i) =>
      w[i] ? c.unbroadcast(c.op('Where', [c.op('Equal', [x, O(n)]), dY!, zero]), y, c.shape(x)) : undefined,
    );
  };
}

/** The reduction's output reshaped to keepdims form, so it broadcasts against the input. */
function keptOutput(c: Ctx, n: NodeProto): string {
  const xs = c.shape(I(n, 0));
  const cs = n.input!.map((i) => (i ? c.constOf(i) : undefined));
  const axes = reduceAxes(n, cs, xs.length) ?? xs.map((_, i) => i);
  const y = O(n);
  return attrInt(n, 'keepdims', 1) === 0
    ? c.reshape(
        y,
        xs.map((d, i) => (axes.includes(i) ? 1 : d)),
      )
    : y;
}

/** ReduceMax/ReduceMin: the cotangent goes to the extremal elements, split evenly among ties. */
function reduceExtremumRule(...[c, n, dY, w]: Parameters<Rule>): ReturnType<Rule> {
  const x = I(n, 0);
  const xs = c.shape(x);
  const et = c.et(x);
  const mask = c.op('Cast', [c.op('Equal', [x, keptOutput(c, n)])], { to: et });
  const cs = n.input!.map((i) => (i ? c.constOf(i) : undefined));
  const axes = reduceAxes(n, cs, xs.length) ?? xs.map((_, i) => i);
  const share = c.op('Div', [mask, c.reduceSum(mask, axes.length ? axes : xs.map((_, i) => i), true)]);
  const g = reduceRule(false)(c, n, dY, w)[0]!;
  return [c.mul(g, share), undefined];
}

function reduceRule(mean: boolean): Rule {
  return (c, n, [dY]) => {
    const x = I(n, 0);
    const xs = c.shape(x);
    const cs = n.input!.map((i) => (i ? c.constOf(i) : undefined));
    const axes = reduceAxes(n, cs, xs.length) ?? xs.map((_, i) => i);
    const keep = xs.map((d, i) => (axes.includes(i) ? 1 : d));
    let d = dY!;
    if (mean) {
      const count = axes.reduce((p, a) => p * xs[a]!, 1);
      d = c.mul(d, c.scalar(1 / count, c.et(x)));
    }
    if (attrInt(n, 'keepdims', 1) === 0) d = c.reshape(d, keep);
    // left in keepdims form: elementwise consumers broadcast it, others expand it (main loop)
    return [d, undefined];
  };
}
