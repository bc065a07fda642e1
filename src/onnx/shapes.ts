/**
 * Static shape and element-type resolution for every value of a graph, with constant folding of
 * small (Shape-driven) subgraphs, so PyTorch-exported graphs get fully static shapes.
 *
 * Both forms of the operators whose attributes became inputs are read (ReduceSum's axes since
 * 13, the other reductions' since 18, Split sizes and Squeeze/Unsqueeze axes since 13): the
 * input is used when present, else the attribute.
 *
 * @example
 *   const info = inferShapes(model, { shapes: { latents: [1, 16, 5, 8, 8] } });
 *   info.types.get('velocity'); // { elemType: 1, shape: [1, 16, 5, 8, 8] }
 */
import { InputError } from '../errors.js';
import { modelOpset, nodeLabel, topoSort } from './graph.js';
import { numElements } from './model.js';
import { opDef } from './ops/index.js';
import type { Const, ValueType } from './ops/types.js';
import { castValue, isStatic, RUNTIME_DIM, tensorConst } from './ops/util.js';
import type { ModelProto, NodeProto } from './proto.js';

export type { Const, ValueType } from './ops/types.js';
export {
  broadcastShapes,
  convSpec,
  isFloatType,
  normAxis,
  parseEinsum,
  reduceAxes,
  sliceSpec,
  squeezeAxes,
} from './ops/util.js';
export { tensorConst };

export interface ShapeInfo {
  opset: number;
  types: Map<string, ValueType>;
  consts: Map<string, Const>;
  /** The graph's nodes in topological order. */
  order: NodeProto[];
}

export interface ShapeOptions {
  /** Overrides: an input's name → its full shape, or a symbolic dim name → [value]. */
  shapes?: Record<string, number[]>;
  /** Largest tensor (elements) that is folded or kept as a constant. Default 4096. */
  constLimit?: number;
}

/** Resolve every value's static type; throws InputError for unresolved dims or unknown ops. */
export function inferShapes(model: ModelProto, opts: ShapeOptions = {}): ShapeInfo {
  const graph = model.graph ?? {};
  const opset = modelOpset(model);
  const limit = opts.constLimit ?? 4096;
  const overrides = opts.shapes ?? {};
  const types = new Map<string, ValueType>();
  const consts = new Map<string, Const>();
  const inits = new Set<string>();

  for (const t of graph.initializer ?? []) {
    const name = t.name ?? '';
    inits.add(name);
    const vt = { elemType: t.dataType ?? 0, shape: [...(t.dims ?? [])] };
    types.set(name, vt);
    const c = tensorConst(t, limit);
    if (c) consts.set(name, c);
  }
  for (const v of graph.input ?? []) {
    const name = v.name ?? '';
    const tt = v.type?.tensorType;
    if (!tt) throw new InputError('model', `input '${name}' is not a tensor`);
    const dims = tt.shape?.dim;
    const ov = overrides[name];
    let shape: number[];
    if (ov) {
      if (dims && dims.length !== ov.length) {
        throw new InputError(
          `--shape ${name}`,
          `rank ${ov.length} but the model's input has rank ${dims.length}`,
        );
      }
      dims?.forEach((d, i) => {
        if (d.dimValue !== undefined && d.dimValue !== ov[i]) {
          throw new InputError(
            `--shape ${name}`,
            `dim ${i} is ${ov[i]} but the model fixes it to ${d.dimValue}`,
          );
        }
      });
      shape = [...ov];
    } else if (inits.has(name)) {
      continue; // an initializer that is also an input keeps its stored shape
    } else {
      if (!dims)
        throw new InputError('model', `input '${name}' has no shape; give it with --shape ${name}=...`);
      shape = dims.map((d, i) => {
        if (d.dimValue !== undefined && d.dimValue > 0) return d.dimValue;
        const sym = d.dimParam && overrides[d.dimParam];
        if (sym && sym.length === 1) return sym[0]!;
        throw new InputError(
          'model',
          `input '${name}' has dynamic dim ${i}${d.dimParam ? ` ('${d.dimParam}')` : ''}; give its shape with --shape ${name}=...`,
        );
      });
    }
    types.set(name, { elemType: tt.elemType ?? 0, shape });
    // an empty tensor's value is known from its shape alone (e.g. an empty axes list fed at run time)
    if (numElements(shape) === 0) consts.set(name, { elemType: tt.elemType ?? 0, shape, data: [] });
  }

  const declared = new Map<string, ValueType>();
  for (const v of [...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const tt = v.type?.tensorType;
    const dims = tt?.shape?.dim;
    if (tt?.elemType && dims?.every((d) => d.dimValue !== undefined)) {
      declared.set(v.name ?? '', { elemType: tt.elemType, shape: dims.map((d) => d.dimValue!) });
    }
  }

  const order = topoSort(graph);
  for (const node of order) {
    const ins = (node.input ?? []).map((n) => (n ? types.get(n) : undefined));
    const cs = (node.input ?? []).map((n) => (n ? consts.get(n) : undefined));
    let outs: ValueType[];
    try {
      outs = inferNode(node, ins, cs, opset);
    } catch (err) {
      const outsDeclared = (node.output ?? []).map((o) => declared.get(o));
      if (err instanceof UnknownOp && outsDeclared.every((d) => d)) outs = outsDeclared as ValueType[];
      else if (err instanceof InputError) throw err;
      else
        throw new InputError('model', `node ${nodeLabel(node)} (${node.opType}): ${(err as Error).message}`);
    }
    (node.output ?? []).forEach((o, i) => {
      if (o && outs[i]) types.set(o, outs[i]!);
    });
    const out0 = outs[0];
    if (out0 && (node.output ?? []).length === 1 && numElements(out0.shape) <= limit) {
      try {
        const c = foldNode(node, ins, cs, out0);
        if (c) consts.set(node.output![0]!, c);
      } catch {
        // folding is an optimisation for shapes; a value that cannot be folded stays dynamic
      }
    }
  }
  return { opset, types, consts, order };
}

/** The type of `name`, or an InputError naming it. */
export function typeOf(info: ShapeInfo, name: string): ValueType {
  const t = info.types.get(name);
  if (!t) throw new InputError('model', `no static type for value '${name}'`);
  return t;
}

class UnknownOp extends Error {}

/** Output types of one node from its input types (and the constant inputs). */
export function inferNode(
  node: NodeProto,
  ins: (ValueType | undefined)[],
  cs: (Const | undefined)[],
  opset: number,
): ValueType[] {
  const def = opDef(node);
  if (!def?.infer) {
    throw new UnknownOp(`no shape rule for operator ${node.domain ? `${node.domain}.` : ''}${node.opType}`);
  }
  if (def.runtimeDims || ins.every((t) => !t || isStatic(t.shape))) return def.infer(node, ins, cs, opset);
  let outs: ValueType[];
  try {
    outs = def.infer(node, ins, cs, opset);
  } catch (err) {
    const dims = ins.map((t) => `[${t?.shape.map((d) => (d === RUNTIME_DIM ? '?' : d)).join(',')}]`);
    throw new Error(
      `inputs of shapes ${dims.join(' ')} ('?': known only at run time, from a shape value fed then): ${(err as Error).message}`,
    );
  }
  return outs.map((t) => ({ ...t, shape: t.shape.map(() => RUNTIME_DIM) }));
}

/** The folded value of a node's only output, or undefined. */
function foldNode(
  node: NodeProto,
  ins: (ValueType | undefined)[],
  cs: (Const | undefined)[],
  out: ValueType,
): Const | undefined {
  const def = opDef(node);
  if (!def?.fold || !isStatic(out.shape)) return undefined;
  // without `foldAny`, every present input must be a constant
  if (!def.foldAny && (node.input ?? []).some((n, i) => n && !cs[i])) return undefined;
  const data = def.fold(node, cs, out, ins);
  if (!data) return undefined;
  return { elemType: out.elemType, shape: out.shape, data: data.map((v) => castValue(v, out.elemType)) };
}
