/**
 * Tied initializers. PyTorch's exporter stores initializers with equal values once and re-creates
 * each original name as `Identity(shared)` (often all freshly initialised norm weights). Each such
 * name is a parameter of its own for gradients, LoRA targets and checkpoints: `untie` gives it its
 * own initializer (a copy of the shared tensor), so that training can move the names apart.
 *
 * @example
 *   const m = untie(model, (name) => wanted.has(name));
 */
import type { ModelProto, NodeProto, TensorProto } from './proto.js';

const isIdentity = (n: NodeProto) => n.opType === 'Identity' && (!n.domain || n.domain === 'ai.onnx');

/**
 * Names written by an Identity (or a chain of them) of an initializer, each with that initializer.
 * Graph outputs are left out (they must stay node outputs).
 */
export function tiedNames(model: ModelProto): Map<string, TensorProto> {
  const g = model.graph ?? {};
  const source = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const outputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  const tied = new Map<string, TensorProto>();
  // nodes come in any order; repeat until no chain grows
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of g.node ?? []) {
      const [x, y] = [n.input?.[0] ?? '', n.output?.[0] ?? ''];
      if (!isIdentity(n) || !y || tied.has(y) || outputs.has(y)) continue;
      const t = source.get(x) ?? tied.get(x);
      if (!t) continue;
      tied.set(y, t);
      grew = true;
    }
  }
  return tied;
}

/**
 * The model with every tied name that `select` accepts as an initializer of its own (the node
 * that wrote it removed). Initializers only read through those names are kept in place (the
 * pruning of a gradient graph drops them). The input model is not modified.
 */
export function untie(model: ModelProto, select: (name: string) => boolean): ModelProto {
  const tied = [...tiedNames(model)].filter(([name]) => select(name));
  if (!tied.length) return model;
  const g = model.graph ?? {};
  const names = new Set(tied.map(([n]) => n));
  return {
    ...model,
    graph: {
      ...g,
      node: (g.node ?? []).filter((n) => !(isIdentity(n) && names.has(n.output?.[0] ?? ''))),
      initializer: [...(g.initializer ?? []), ...tied.map(([name, t]) => ({ ...t, name }))],
    },
  };
}

/**
 * Initializers and tied names read only through (further) tied names, the links of a chain
 * included: no node, nor graph output, reads them directly, so they are no parameter of their own.
 */
export function onlyTied(model: ModelProto): Set<string> {
  const g = model.graph ?? {};
  const tied = tiedNames(model);
  const viaTied = new Set<string>();
  const direct = new Set<string>((g.output ?? []).map((o) => o.name ?? ''));
  for (const n of g.node ?? []) {
    const reads = isIdentity(n) && tied.has(n.output?.[0] ?? '') ? viaTied : direct;
    for (const i of n.input ?? []) reads.add(i);
  }
  return new Set([...viaTied].filter((s) => !direct.has(s)));
}
