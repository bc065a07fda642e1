/**
 * Graph surgery for stitching (onnx/README.md, "Stitching a latent geometry model"): cut a model
 * at a named tensor into the prefix that computes it (`--to`) or the suffix that continues from
 * it (`--from`). The suffix takes the tensor as a graph input with its inferred shape; only the
 * nodes the outputs still need are kept, unused initializers are dropped, and an output that still
 * reads an original input (a skip connection around the cut) keeps that input.
 *
 * Dynamic dims (the batch `B`) stay dynamic: shapes are inferred twice with each symbolic dim set
 * to two different values, and a dim of the cut tensor that changes between the two is written
 * symbolic (named after the input dim it follows when it equals it in both).
 *
 * @example
 *   const suffix = cutModel(loadModel('geometry_rgb.onnx'), { from: 'blocks.1.output' }).model;
 *   const prefix = cutModel(loadModel('geometry_rgb.onnx'), { to: 'blocks.1.output' }).model;
 */
import { InputError } from '../errors.js';
import { valueInfo } from './builder.js';
import { topoSort } from './graph.js';
import type { ModelProto, NodeProto, ValueInfoProto } from './proto.js';
import { inferShapes } from './shapes.js';

export interface CutSpec {
  /** The suffix: this tensor becomes the graph input. */
  from?: string;
  /** The prefix: this tensor becomes the (only) graph output. */
  to?: string;
  /** Static shapes for dynamic inputs (input name → shape, or dim name → [value]); default: each symbolic dim is kept symbolic. */
  shapes?: Record<string, number[]>;
}

export interface CutResult {
  model: ModelProto;
  inputs: string[];
  outputs: string[];
  nodes: number;
  /** Initializers of the original model the cut no longer needs. */
  droppedInitializers: number;
}

/**
 * Names a stitch point can take: graph inputs and node outputs, in graph order.
 *
 * @example
 *   tensorNames(model); // ['frames', 'tokenizer.output', …]
 */
export function tensorNames(model: ModelProto): string[] {
  const graph = model.graph ?? {};
  const inits = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const names = (graph.input ?? []).map((v) => v.name ?? '').filter((n) => !inits.has(n));
  for (const n of topoSort(graph)) for (const o of n.output ?? []) if (o) names.push(o);
  return names;
}

/** A short list of candidates for an error message: named tensors first (not `Op_12_out0`). */
export function candidateList(model: ModelProto, max = 24): string {
  const all = tensorNames(model);
  const named = all.filter((n) => !/_out\d+$|^\/|::|^onnx::/.test(n));
  const list = (named.length ? named : all).slice(0, max);
  const more = (named.length ? named : all).length - list.length;
  return `${list.join(', ')}${more > 0 ? `, … (${more} more)` : ''}`;
}

/** Exit-2 check that `name` is a tensor of the model, listing candidates when not. */
function checkTensor(model: ModelProto, name: string, flag: string): void {
  if (tensorNames(model).includes(name)) return;
  throw new InputError(flag, `'${name}' is not a tensor of the model; candidates: ${candidateList(model)}`);
}

/**
 * Cut `model` at `spec.from` and/or `spec.to` (both: the segment between them).
 *
 * @example
 *   const { model, inputs } = cutModel(phi, { from: 'blocks.1.output' }); // inputs: ['blocks.1.output']
 */
export function cutModel(model: ModelProto, spec: CutSpec): CutResult {
  if (spec.from === undefined && spec.to === undefined) throw new InputError('--from', 'give --from or --to');
  if (spec.from !== undefined) checkTensor(model, spec.from, '--from');
  if (spec.to !== undefined) checkTensor(model, spec.to, '--to');
  const graph = model.graph ?? {};
  const outputs = spec.to !== undefined ? [spec.to] : (graph.output ?? []).map((o) => o.name ?? '');
  const stop = new Set(spec.from !== undefined ? [spec.from] : []);
  const nodes = neededNodes(topoSort(graph), outputs, stop);
  const read = new Set<string>([...outputs]);
  for (const n of nodes) for (const i of n.input ?? []) if (i) read.add(i);
  const inits = (graph.initializer ?? []).filter((t) => read.has(t.name ?? ''));
  const initNames = new Set(inits.map((t) => t.name ?? ''));
  const keptInputs = (graph.input ?? []).filter(
    (v) => read.has(v.name ?? '') && !initNames.has(v.name ?? ''),
  );
  const typeOfCut = typedValues(model, spec, [...stop, ...outputs]);
  const input: ValueInfoProto[] = [
    ...[...stop].filter((s) => !keptInputs.some((v) => v.name === s)).map((s) => typeOfCut(s)),
    ...keptInputs,
  ];
  const original = new Map((graph.output ?? []).map((o) => [o.name ?? '', o]));
  const output = outputs.map((o) => original.get(o) ?? typeOfCut(o));
  const cut: ModelProto = {
    ...model,
    graph: {
      ...graph,
      node: nodes,
      initializer: inits,
      input,
      output,
      valueInfo: (graph.valueInfo ?? []).filter((v) => read.has(v.name ?? '') && !stop.has(v.name ?? '')),
    },
  };
  return {
    model: cut,
    inputs: input.map((v) => v.name ?? ''),
    outputs,
    nodes: nodes.length,
    droppedInitializers: (graph.initializer ?? []).length - inits.length,
  };
}

/** The nodes (in graph order) that `outputs` need, not looking past the `stop` values. */
function neededNodes(order: NodeProto[], outputs: string[], stop: Set<string>): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const n of order) for (const o of n.output ?? []) producer.set(o, n);
  const keep = new Set<NodeProto>();
  const stack = outputs.filter((o) => !stop.has(o));
  while (stack.length) {
    const v = stack.pop()!;
    const n = producer.get(v);
    if (!n || keep.has(n)) continue;
    keep.add(n);
    // Subgraph bodies (If/Loop) read outer values by name; those names count as read too.
    for (const i of [...(n.input ?? []), ...outerReads(n)]) if (i && !stop.has(i)) stack.push(i);
  }
  return order.filter((n) => keep.has(n));
}

/** Names a node's subgraphs read from the enclosing scope (every name they use; extra ones are harmless). */
function outerReads(n: NodeProto): string[] {
  const out: string[] = [];
  for (const a of n.attribute ?? []) {
    for (const g of [a.g, ...(a.graphs ?? [])]) {
      for (const sub of g?.node ?? []) out.push(...(sub.input ?? []), ...outerReads(sub));
    }
  }
  return out;
}

/**
 * A value-info maker for the cut tensors: their inferred shapes, with dims that follow a symbolic
 * input dim written symbolically. A model whose shapes cannot be inferred falls back to the
 * declared value info (or an untyped tensor, which onnxruntime still accepts for outputs).
 */
function typedValues(model: ModelProto, spec: CutSpec, names: string[]): (name: string) => ValueInfoProto {
  const symbols = symbolicDims(model);
  const probe = (k: number) => {
    const shapes: Record<string, number[]> = { ...(spec.shapes ?? {}) };
    symbols.forEach((s, i) => {
      if (!(s in shapes)) shapes[s] = [PROBES[k]! + i];
    });
    return inferShapes(model, { shapes });
  };
  const a = probe(0);
  const b = symbols.length ? probe(1) : a;
  const declared = new Map(
    [...(model.graph?.valueInfo ?? []), ...(model.graph?.output ?? [])].map((v) => [v.name ?? '', v]),
  );
  const made = new Map<string, ValueInfoProto>();
  for (const name of names) {
    const ta = a.types.get(name);
    const tb = b.types.get(name);
    if (!ta || !tb) {
      const d = declared.get(name);
      if (d) made.set(name, d);
      continue;
    }
    const shape = ta.shape.map((d, i) => {
      if (d === tb.shape[i]) return d;
      const s = symbols.findIndex((_, k) => d === PROBES[0]! + k && tb.shape[i] === PROBES[1]! + k);
      return s >= 0 ? symbols[s]! : `${name}_dim${i}`;
    });
    made.set(name, valueInfo(name, ta.elemType, shape));
  }
  return (name) => made.get(name) ?? { name };
}

/** Two sets of values for the symbolic dims, far from any real size, so a dim that follows one is recognised. */
const PROBES = [7919, 7951] as const;

/** Symbolic dim names of the graph inputs, in order of first use. */
function symbolicDims(model: ModelProto): string[] {
  const out: string[] = [];
  for (const v of model.graph?.input ?? []) {
    for (const d of v.type?.tensorType?.shape?.dim ?? []) {
      if (d.dimValue === undefined && d.dimParam && !out.includes(d.dimParam)) out.push(d.dimParam);
    }
  }
  return out;
}
