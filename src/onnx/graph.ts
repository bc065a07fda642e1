/**
 * Small helpers over decoded graphs: attribute getters, the default-domain opset, topological
 * order and glob matching of value names.
 *
 * @example
 *   const axis = attrInt(node, 'axis', -1);
 */
import { InputError } from '../errors.js';
import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto } from './proto.js';

export function findAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, def: number): number;
export function attrInt(node: NodeProto, name: string): number | undefined;
export function attrInt(node: NodeProto, name: string, def?: number): number | undefined {
  const a = findAttr(node, name);
  return a?.i ?? (a && a.type === 2 ? 0 : def);
}

export function attrFloat(node: NodeProto, name: string, def: number): number {
  // float32 as onnxruntime sees it, even for attributes written in memory as doubles
  const a = findAttr(node, name);
  return a?.f !== undefined ? Math.fround(a.f) : a && a.type === 1 ? 0 : def;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = findAttr(node, name);
  return a ? (a.ints ?? []) : undefined;
}

export function attrFloats(node: NodeProto, name: string): number[] | undefined {
  const a = findAttr(node, name);
  return a ? (a.floats ?? []).map(Math.fround) : undefined;
}

export function attrString(node: NodeProto, name: string, def: string): string {
  const a = findAttr(node, name);
  return a?.s ? new TextDecoder().decode(a.s) : def;
}

export function attrTensor(node: NodeProto, name: string): TensorProto | undefined {
  return findAttr(node, name)?.t;
}

/** The default-domain (ai.onnx) opset the model imports. */
export function modelOpset(model: ModelProto): number {
  const o = model.opsetImport?.find((x) => !x.domain || x.domain === 'ai.onnx');
  if (!o) throw new InputError('model', 'imports no ai.onnx opset');
  return o.version ?? 1;
}

/** A label for error messages: the node's name, or its op type and first output. */
export function nodeLabel(node: NodeProto): string {
  return node.name ? `'${node.name}'` : `${node.opType} -> '${node.output?.[0] ?? ''}'`;
}

/**
 * Nodes in an order where every input is produced before use (stable for already-sorted graphs).
 * Throws InputError on a cycle or a missing input.
 */
export function topoSort(graph: GraphProto): NodeProto[] {
  const nodes = graph.node ?? [];
  const available = new Set<string>(['']);
  for (const v of graph.input ?? []) available.add(v.name ?? '');
  for (const t of graph.initializer ?? []) available.add(t.name ?? '');
  const out: NodeProto[] = [];
  let pending = nodes;
  while (pending.length) {
    const next: NodeProto[] = [];
    for (const n of pending) {
      if ((n.input ?? []).every((i) => available.has(i))) {
        out.push(n);
        for (const o of n.output ?? []) available.add(o);
      } else next.push(n);
    }
    if (next.length === pending.length) {
      const n = next[0]!;
      const missing = (n.input ?? []).find((i) => !available.has(i));
      throw new InputError(
        'model',
        `node ${nodeLabel(n)} (${n.opType}) reads '${missing}' which nothing produces`,
      );
    }
    pending = next;
  }
  return out;
}

/** Glob match with `*` (any run of characters) and `?` (one character); otherwise exact. */
export function globMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === name;
  const re = new RegExp(
    `^${pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
  );
  return re.test(name);
}
