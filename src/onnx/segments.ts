/**
 * Cutting a forward graph into segments at transformer-block boundaries, for per-block gradient
 * checkpointing (onnx/README.md, "Per-block gradient checkpointing"): each segment becomes a
 * model of its own whose inputs are the values it reads from earlier segments (or the graph's
 * inputs) and whose outputs are the values later segments (or the graph's outputs) read.
 *
 * Boundaries are tensor names, or found automatically: parameters named `blocks.N.…` (Wan's
 * module names, also behind a prefix such as `transformer.` or `lora:`) mark block N, and the
 * boundary after block N is the first point in topological order, after the last reader of a
 * block-N parameter and before the first reader of a block-(N+1) one, where exactly one live
 * value depends on block parameters: the residual stream.
 *
 * @example
 *   const plan = cutSegments(model, { shapes: { latents: [1, 16, 5, 20, 36] } });
 *   plan.segments.length; // blocks + 1 (the last segment is the head)
 */
import { InputError } from '../errors.js';
import { valueInfo } from './builder.js';
import { makeTensor, type TensorArray } from './model.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { type Const, inferShapes, type ShapeInfo } from './shapes.js';

export interface Segment {
  index: number;
  /** The segment as a model with static shapes: `inputs` → `outputs`. */
  model: ModelProto;
  /** Values read from earlier segments or the graph inputs. */
  inputs: string[];
  /** Values that later segments or the graph outputs read. */
  outputs: string[];
  nodes: number;
}

export interface SegmentPlan {
  /** The tensor after each cut, in order (one fewer than the segments). */
  boundaries: string[];
  segments: Segment[];
  info: ShapeInfo;
}

export interface CutOptions {
  /** Static shapes for dynamic inputs, as buildGradientGraph takes them. */
  shapes?: Record<string, number[]>;
  /** Boundary tensors in order; default: found from `blocks.N.` parameter names. */
  boundaries?: string[];
}

const BLOCK = /(?:^|[.:/])blocks\.(\d+)\./;

/** Block index of a parameter name (`blocks.3.ffn.0.weight`, `lora:transformer.blocks.3.…`), if any. */
export function blockOf(name: string): number | undefined {
  const m = BLOCK.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * The residual-stream tensor after each transformer block, found from parameter names.
 *
 * @example
 *   findBlockBoundaries(buildDenoiser({}).model, inferShapes(m, { shapes })); // ['Add_57_out0', 'Add_112_out0']
 */
export function findBlockBoundaries(model: ModelProto, info: ShapeInfo): string[] {
  const graph = model.graph ?? {};
  const params = new Set<string>([
    ...(graph.initializer ?? []).map((t) => t.name ?? ''),
    ...(graph.input ?? []).map((v) => v.name ?? ''),
  ]);
  const order = info.order;
  // First and last position of a node reading each block's parameters.
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  order.forEach((n, pos) => {
    for (const i of n.input ?? []) {
      const b = params.has(i) ? blockOf(i) : undefined;
      if (b === undefined) continue;
      if (!first.has(b)) first.set(b, pos);
      last.set(b, pos);
    }
  });
  const blocks = [...first.keys()].sort((a, b) => a - b);
  if (blocks.length < 1)
    throw new InputError('model', "no parameters named 'blocks.N.…': give the boundaries");
  const dependent = blockDependent(order, params);
  const lastUse = lastUses(model, order);
  const produced = new Map<string, number>();
  order.forEach((n, pos) => {
    for (const o of n.output ?? []) produced.set(o, pos);
  });
  const boundaries: string[] = [];
  blocks.forEach((b, k) => {
    const from = last.get(b)!;
    const next = blocks[k + 1];
    const to = next === undefined ? order.length : first.get(next)!;
    const found = singleLive(from, to, dependent, lastUse, produced);
    if (!found) throw new InputError('model', `no single tensor separates block ${b} from what follows`);
    boundaries.push(found);
  });
  // A boundary that is a graph output (no head after the last block) is not a cut.
  const outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  return boundaries.filter((b) => !outputs.has(b));
}

/** Values that depend on some block parameter. */
function blockDependent(order: NodeProto[], params: Set<string>): Set<string> {
  const dep = new Set<string>([...params].filter((p) => blockOf(p) !== undefined));
  for (const n of order) {
    if ((n.input ?? []).some((i) => dep.has(i))) for (const o of n.output ?? []) dep.add(o);
  }
  return dep;
}

/** Position of each value's last reader (graph outputs: past the end). */
function lastUses(model: ModelProto, order: NodeProto[]): Map<string, number> {
  const use = new Map<string, number>();
  order.forEach((n, pos) => {
    for (const i of n.input ?? []) use.set(i, pos);
  });
  for (const o of model.graph?.output ?? []) use.set(o.name ?? '', order.length);
  return use;
}

/** The first position in [from, to) after which exactly one block-dependent value is live: that value. */
function singleLive(
  from: number,
  to: number,
  dependent: Set<string>,
  lastUse: Map<string, number>,
  produced: Map<string, number>,
): string | undefined {
  for (let p = from; p < to; p++) {
    const live: string[] = [];
    for (const [v, pos] of produced) {
      if (pos <= p && (lastUse.get(v) ?? -1) > p && dependent.has(v)) {
        live.push(v);
        if (live.length > 1) break;
      }
    }
    if (live.length === 1) return live[0];
  }
  return undefined;
}

/**
 * Cut `model` at the boundaries into consecutive segments; every node an output needs lands in
 * exactly one segment, and each segment reads only graph inputs and earlier segments' values.
 *
 * @example
 *   const { segments } = cutSegments(loraModel, { shapes });
 */
export function cutSegments(model: ModelProto, opts: CutOptions = {}): SegmentPlan {
  const info = inferShapes(model, { shapes: opts.shapes });
  const boundaries = opts.boundaries ?? findBlockBoundaries(model, info);
  const graph = model.graph ?? {};
  const order = info.order;
  const producer = new Map<string, number>();
  order.forEach((n, pos) => {
    for (const o of n.output ?? []) producer.set(o, pos);
  });
  for (const b of boundaries)
    if (!producer.has(b)) throw new InputError(`boundary ${b}`, 'no node of the model produces it');
  const segOf = new Int32Array(order.length).fill(-1);
  const targets = [...boundaries.map((b) => [b]), (graph.output ?? []).map((o) => o.name ?? '')];
  targets.forEach((names, s) => {
    const stack = names.map((n) => producer.get(n)).filter((p): p is number => p !== undefined);
    while (stack.length) {
      const pos = stack.pop()!;
      if (segOf[pos] !== -1) continue;
      segOf[pos] = s;
      for (const i of order[pos]!.input ?? []) {
        const p = producer.get(i);
        if (p !== undefined && segOf[p] === -1) stack.push(p);
      }
    }
  });
  const segments = targets.map((_, s) => buildSegment(model, info, order, segOf, s, producer));
  return { boundaries, segments, info };
}

function buildSegment(
  model: ModelProto,
  info: ShapeInfo,
  order: NodeProto[],
  segOf: Int32Array,
  s: number,
  producer: Map<string, number>,
): Segment {
  const graph = model.graph ?? {};
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const nodes = order.filter((_, pos) => segOf[pos] === s);
  const readLater = new Set<string>();
  order.forEach((n, pos) => {
    if (segOf[pos]! > s) for (const i of n.input ?? []) readLater.add(i);
  });
  const produced = new Set(nodes.flatMap((n) => n.output ?? []));
  const initializer: TensorProto[] = [];
  const inputs: string[] = [];
  const seen = new Set<string>();
  for (const n of nodes) {
    for (const i of n.input ?? []) {
      if (!i || seen.has(i) || produced.has(i)) continue;
      seen.add(i);
      const init = inits.get(i);
      const c = info.consts.get(i);
      if (init) initializer.push(init);
      // Small known values (shape arithmetic) are re-stated in the segment, not passed along.
      else if (c && producer.has(i) && INT_TYPES.has(c.elemType)) initializer.push(constTensor(i, c));
      else inputs.push(i);
    }
  }
  const outputs = [...produced].filter((o) => readLater.has(o) || graphOutputs.has(o));
  const typed = (name: string) => {
    const t = info.types.get(name);
    if (!t) throw new InputError('model', `no static type for value '${name}'`);
    return valueInfo(name, t.elemType, t.shape);
  };
  const segModel: ModelProto = {
    ...model,
    graph: {
      name: `${graph.name ?? 'model'}:segment${s}`,
      node: nodes,
      initializer,
      input: inputs.map(typed),
      output: outputs.map(typed),
      valueInfo: [],
    },
  };
  return { index: s, model: segModel, inputs, outputs, nodes: nodes.length };
}

/** Integer and boolean constants are exact when folded; float ones are passed as values. */
const INT_TYPES = new Set<number>([DataType.INT64, DataType.INT32, DataType.BOOL, DataType.UINT8]);

/** A folded integer or boolean constant as an initializer. */
function constTensor(name: string, c: Const): TensorProto {
  let data: TensorArray;
  if (c.elemType === DataType.INT64) data = BigInt64Array.from(c.data, (v) => BigInt(v));
  else if (c.elemType === DataType.INT32) data = Int32Array.from(c.data);
  else data = Uint8Array.from(c.data);
  return makeTensor(name, [...c.shape], data, c.elemType);
}
