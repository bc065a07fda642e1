/**
 * Emission of gradient nodes: every emitted value gets its type inferred (so later rules see
 * static shapes), identical nodes are emitted once, and small peepholes keep the graph lean
 * (Reshape and Transpose chains collapsed, broadcast sums as a vector-matrix product, a
 * linear layer's dX accumulated as the Gemm's C). After the walk, `foldOutputIdentities` and
 * `pruneDeadNodes` tidy the result.
 */
import { InputError } from '../errors.js';
import type { AttrValue, GraphBuilder } from './builder.js';
import { attrFloat, attrInt, attrInts } from './graph.js';
import { floatTensor, floatToHalf, halfToFloat } from './half.js';
import { makeTensor, numElements } from './model.js';
import type { Const } from './ops/types.js';
import { isStatic, sameShape } from './ops/util.js';
import { DataType, type GraphProto, type NodeProto } from './proto.js';
import { inferNode, type ShapeInfo } from './shapes.js';

/**
 * A rule asked for the static shape of a value whose dims are known only at run time; the walk
 * turns it into an InputError naming the node.
 */
export class RuntimeShapeError extends Error {
  constructor(readonly value: string) {
    super(`the shape of '${value}' is known only at run time`);
  }
}

/**
 * The element types gradients are computed in: float32, float64 and float16 (onnxruntime's CPU
 * provider has float16 kernels; bfloat16 graphs are widened to float32 first, src/onnx/half.ts).
 */
function checkedFloat(et: number): number {
  if (et === DataType.DOUBLE || et === DataType.FLOAT || et === DataType.FLOAT16) return et;
  throw new InputError(
    'model',
    `gradients in element type ${et} are not supported (float32/float64/float16 are)`,
  );
}

/** Emission helpers shared by the gradient rules. */
export class GradContext {
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
  /** The static shape of `v`; a value with dims known only at run time is a RuntimeShapeError. */
  shape(v: string): number[] {
    const t = this.info.types.get(v);
    if (!t) throw new InputError('model', `no static shape for '${v}'`);
    if (!isStatic(t.shape)) throw new RuntimeShapeError(v);
    return t.shape;
  }
  /** The shape of `v` with RUNTIME_DIM where a dim is known only at run time (the rank is always known). */
  dims(v: string): number[] {
    const t = this.info.types.get(v);
    if (!t) throw new InputError('model', `no static shape for '${v}'`);
    return t.shape;
  }
  /** Whether `v`'s value is unknown when the graph is written (a graph input or computed from one). */
  runtime(v: string): boolean {
    return !!v && !this.info.consts.has(v);
  }
  /** `x` reshaped to `like`'s shape (Reshape to Shape(like) where that is known only at run time). */
  reshapeLike(x: string, like: string): string {
    const s = this.dims(like);
    return isStatic(s) ? this.reshape(x, s) : this.op('Reshape', [x, this.op('Shape', [like])]);
  }
  /** `x` broadcast to `like`'s shape (at run time where that is not static). */
  expandLike(x: string, like: string): string {
    const s = this.dims(like);
    return isStatic(s) ? this.expandTo(x, s) : this.op('Expand', [x, this.op('Shape', [like])]);
  }
  /** Zeros of `like`'s shape and element type `et` (ConstantOfShape(Shape(like)) where not static). */
  zerosLike(like: string, et: number): string {
    const s = this.dims(like);
    if (isStatic(s)) return this.zeros(s, et);
    return this.op('ConstantOfShape', [this.op('Shape', [like])], { value: this.zeroValue(et) });
  }
  /** An int64 scalar constant. */
  int64(v: number): string {
    return this.reshape(this.ints([v]), []);
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
  /** The static shape of `v` where known (every static forward value, most emitted ones). */
  shapeOr(v: string): number[] | undefined {
    const s = this.info.types.get(v)?.shape;
    return s && isStatic(s) ? s : undefined;
  }
  /** A float scalar of element type `et` (float32, float64 or float16: the forward's dtype). */
  scalar(v: number, et: number): string {
    const key = `s:${et}:${v}`;
    let n = this.cache.get(key);
    if (!n) {
      n = this.b.fresh('grad_const');
      this.b.graph.initializer!.push(floatTensor(n, [], [v], checkedFloat(et)));
      this.info.types.set(n, { elemType: et, shape: [] });
      const held = et === DataType.FLOAT16 ? halfToFloat(floatToHalf(v)) : v;
      this.info.consts.set(n, { elemType: et, shape: [], data: [held] });
      this.cache.set(key, n);
    }
    return n;
  }
  /** A float constant of element type `et` (float32, float64 or float16). */
  floats(shape: number[], data: readonly number[], et: number): string {
    const key = `f:${et}:${shape.join(',')}:${data.join(',')}`;
    let n = this.cache.get(key);
    if (!n) {
      n = this.b.fresh('grad_const');
      this.b.graph.initializer?.push(floatTensor(n, shape, data, checkedFloat(et)));
      this.info.types.set(n, { elemType: et, shape });
      this.cache.set(key, n);
    }
    return n;
  }
  /** A tensor of ones, of element type `et`. */
  ones(shape: number[], et: number): string {
    const key = `o:${et}:${shape.join(',')}`;
    let n = this.cache.get(key);
    if (!n) {
      n = this.b.fresh('grad_ones');
      const data = new Array<number>(numElements(shape)).fill(1);
      this.b.graph.initializer!.push(floatTensor(n, shape, data, checkedFloat(et)));
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
  private zeroValue(et: number) {
    return floatTensor('value', [1], [0], checkedFloat(et));
  }
  zeros(shape: number[], et: number): string {
    const value = this.zeroValue(et);
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
    // `from` may hold RUNTIME_DIMs (an Expand to a shape fed at run time): an axis where `to` is 1
    // is summed whatever its size, a no-op where it is 1 too
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
      isStatic(from) &&
      red.length &&
      kept.length &&
      red[red.length - 1]! < kept[0]! &&
      (et === DataType.FLOAT || et === DataType.DOUBLE)
    ) {
      const rows = red.reduce((p, i) => p * from[i]!, 1);
      const cols = kept.reduce((p, i) => p * from[i]!, 1);
      // a 1-D ones vector gives the [cols] sum itself: no Reshape after for a bias
      const r = this.op('MatMul', [this.ones([rows], et), this.reshape(g, [rows, cols])]);
      return this.reshape(r, target);
    }
    if (axes.every((i) => i < off)) return this.reduceSum(g, axes, false);
    return this.reshape(this.reduceSum(g, axes, true), target);
  }
  /**
   * The cotangent `g` of a broadcasting op's output `y`, summed down to the shape of its operand
   * `x`. Where x's dims are known only at run time, the axes to sum (x is 1, g is not) are found
   * then: NonZero of a Shape comparison feeds ReduceSum's axes.
   */
  sumTo(g: string, y: string, x: string): string {
    const xs = this.dims(x);
    if (isStatic(xs)) return this.unbroadcast(g, this.dims(y), xs);
    const off = this.dims(g).length - xs.length;
    const d =
      off > 0
        ? this.reduceSum(
            g,
            Array.from({ length: off }, (_, i) => i),
            false,
          )
        : g;
    const one = this.ints([1]);
    const isOne = (v: string) => this.op('Equal', [this.op('Shape', [v]), one]);
    const summed = this.op('And', [isOne(x), this.op('Not', [isOne(d)])]);
    const axes = this.reshape(this.op('NonZero', [summed]), [-1]);
    return this.op('ReduceSum', [d, axes], { keepdims: 1, noop_with_empty_axes: 1 });
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

/**
 * `grad:P = Identity(v)` copies the whole gradient; when `v` is written by a backward node
 * and read by nothing else, that node writes `grad:P` directly instead.
 */
export function foldOutputIdentities(graph: GraphProto, forward: Set<NodeProto>): void {
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
