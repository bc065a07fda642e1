/**
 * Reverse-mode automatic differentiation of ONNX graphs, written with standard ai.onnx ops only
 * (so stock onnxruntime builds run the result). The contract and how operators
 * declare their rules: docs/AUTODIFF.md; the rules themselves: src/onnx/ops/.
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
import { GraphBuilder, valueInfo } from './builder.js';
import { findGeluChains } from './composites.js';
import { foldOutputIdentities, GradContext, pruneDeadNodes, RuntimeShapeError } from './emit.js';
import { globMatch, nodeLabel } from './graph.js';
import { BF16_WIDENED, widenBf16 } from './half.js';
import { geluDerivative } from './ops/elementwise.js';
import { opDef } from './ops/index.js';
import { covers, type GradDef } from './ops/types.js';
import { isFloatType, isStatic } from './ops/util.js';
import { DataType, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import { inferShapes } from './shapes.js';
import { onlyTied, tiedNames, untie } from './tied.js';
import { TARGET_OPSET, upgradeOpset } from './upgrade.js';

export { pruneDeadNodes } from './emit.js';

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

export const gradName = (v: string): string => `grad:${v}`;

/**
 * Build the gradient graph of `model` with respect to the parameters selected by `opts.wrt`.
 *
 * @example
 *   const { model } = buildGradientGraph(loadModel('denoiser.onnx'), { wrt: ['*.weight'], shapes: { latents: [1, 16, 5, 8, 8] } });
 */
export function buildGradientGraph(model: ModelProto, opts: GradOptions): GradResult {
  const warnings: string[] = [];
  const wide = widenBf16(model);
  if (wide !== model) warnings.push(BF16_WIDENED);
  model = wide;
  const params = selectParams(model, opts.wrt);
  // each tied name selected becomes an initializer of its own (src/onnx/tied.ts)
  model = untie(model, (n) => params.includes(n));
  let info = inferShapes(model, { shapes: opts.shapes });
  if (info.opset < TARGET_OPSET) {
    // older graphs are read as opset 16 where their meaning allows (src/onnx/upgrade.ts)
    const m = upgradeOpset(model, info);
    if (m !== model) info = inferShapes(m, { shapes: opts.shapes });
    model = m;
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

  for (const p of params) {
    const t = info.types.get(p);
    if (!t || !isFloatType(t.elemType)) throw new InputError(`--wrt ${p}`, 'is not a floating-point tensor');
  }

  // Forward: values that depend on a parameter through differentiable inputs, and which one.
  const source = new Map<string, string>();
  for (const p of params) source.set(p, p);
  for (const node of info.order) {
    const grad = opDef(node)?.grad;
    if (grad === 'zero') continue;
    const from = (node.input ?? []).find((x, i) => source.has(x) && !grad?.constant?.includes(i));
    if (!from) continue;
    for (const o of node.output ?? []) {
      const t = info.types.get(o);
      if (o && t && isFloatType(t.elemType)) source.set(o, source.get(from) ?? from);
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
    b.input(gn, t.elemType, symbolicDims(name, t.shape));
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

  // rules may ask for more of the forward (e.g. LayerNormalization's saved statistics)
  graph.node = (graph.node ?? []).map((n) => {
    const grad = opDef(n)?.grad;
    const onPath = (n.output ?? []).some((o) => source.has(o));
    return onPath && grad && grad !== 'zero' && grad.prepare ? grad.prepare(n, info, (p) => b.fresh(p)) : n;
  });
  const ctx = new GradContext(b, info, graph, total);
  // GELU written in primitives gets GELU's derivative, not the chain rule through each (src/onnx/composites.ts)
  const gelus = findGeluChains(ctx, graph);

  // Backward walk (rules append their nodes after the forward ones).
  const forward = [...(graph.node ?? [])];
  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k];
    if (!node) continue;
    const outs = node.output ?? [];
    let dYs = outs.map((o) => (o && source.has(o) ? total(o) : undefined));
    if (dYs.every((d) => d === undefined)) continue;
    const chain = outs.length === 1 ? gelus.get(outs[0] ?? '') : undefined;
    if (chain) {
      if (source.has(chain.x)) {
        const dY = wholeCotangent(ctx, dYs[0]!, outs[0] ?? '');
        add(chain.x, ctx.mul(dY, geluDerivative(ctx, chain.x, chain.form)));
      }
      continue;
    }
    const ins = node.input ?? [];
    const grad = ruleOf(node, source);
    const wants = ins.map((x, i) => !!x && source.has(x) && !grad.constant?.includes(i));
    if (!wants.some((w) => w)) continue;
    checkCoverage(node, grad, dYs, wants);
    checkValuesKnown(node, grad, ctx);
    // cotangents may still be broadcastable (a reduction's, kept small); most rules need them whole
    if (!grad.broadcast) dYs = dYs.map((d, i) => d && wholeCotangent(ctx, d, outs[i] ?? ''));
    const grads = vjpOf(ctx, node, grad, dYs, wants);
    grads.forEach((g, i) => {
      const x = ins[i];
      if (g && x && wants[i]) add(x, g);
    });
  }

  // Gradient outputs.
  for (const p of params) {
    const gn = gradName(p);
    if (existing.has(gn) || b.has(gn)) throw new InputError('model', `value '${gn}' already exists`);
    const t = info.types.get(p)!;
    // half-precision parameters: their gradient's terms are summed, and returned, in float32
    const et = isHalf(t.elemType) ? DataType.FLOAT : t.elemType;
    let g = et === t.elemType ? total(p) : totalIn(ctx, contrib.get(p) ?? [], et);
    if (!g) {
      warnings.push(`parameter '${p}' does not reach any float output: its gradient is zero`);
      g = ctx.zeros(t.shape, et);
    } else g = ctx.expandTo(g, t.shape);
    b.op('Identity', [g], {}, { outputs: [gn] });
    graph.output!.push(valueInfo(gn, et, t.shape));
  }

  pruneDeadNodes(graph);
  foldOutputIdentities(graph, new Set(forward));
  return { model: out, params, warnings };
}

/**
 * Parameters: initializers, graph inputs and tied names (Identity copies of an initializer)
 * matched by name or glob, in the order of `wrt`. An initializer read only through tied names
 * is no parameter of its own.
 */
export function selectParams(model: ModelProto, wrt: string[]): string[] {
  const src = model.graph ?? {};
  const shared = onlyTied(model);
  const candidates = [
    ...(src.initializer ?? []).map((t) => t.name ?? '').filter((n) => !shared.has(n)),
    ...(src.input ?? []).map((v) => v.name ?? ''),
    ...[...tiedNames(model).keys()].filter((n) => !shared.has(n)),
  ].filter((n, i, a) => a.indexOf(n) === i);
  const params: string[] = [];
  for (const pat of wrt) {
    const hits = candidates.filter((c) => globMatch(pat, c));
    if (!hits.length) {
      const why = shared.has(pat) ? ' (it is read only through its tied copies; name those)' : '';
      throw new InputError(`--wrt ${pat}`, `matches no initializer or graph input${why}`);
    }
    for (const h of hits) if (!params.includes(h)) params.push(h);
  }
  return params;
}

/**
 * The default parameters of `onnx grad`: every floating-point initializer and tied name (an
 * initializer read only through tied names is left out).
 */
export function defaultParams(model: ModelProto): string[] {
  const float = new Set([1, 10, 11, 16]);
  const shared = onlyTied(model);
  const inits = (model.graph?.initializer ?? []).filter((t) => float.has(t.dataType ?? 0));
  const tied = [...tiedNames(model)].filter(([n, t]) => float.has(t.dataType ?? 0) && !shared.has(n));
  return [...inits.map((t) => t.name ?? '').filter((n) => !shared.has(n)), ...tied.map(([n]) => n)];
}

const isHalf = (et: number): boolean => et === DataType.FLOAT16 || et === DataType.BFLOAT16;

/** The sum of cotangent terms `terms`, each cast to `et` first (float32 for a half-precision parameter). */
function totalIn(ctx: GradContext, terms: string[], et: number): string | undefined {
  const wide = terms.map((g) => ctx.op('Cast', [g], { to: et }));
  return wide.length ? wide.slice(1).reduce((acc, g) => ctx.accumulate(acc, g), wide[0]!) : undefined;
}

/**
 * The cotangent `d` of forward value `y` at y's full shape. Where y's dims are known only at run
 * time, anything but the fed `grad:y` itself is expanded to Shape(y) there.
 */
function wholeCotangent(ctx: GradContext, d: string, y: string): string {
  if (isStatic(ctx.dims(y))) return ctx.expandTo(d, ctx.shape(y));
  return d === gradName(y) ? d : ctx.expandLike(d, y);
}

/** The rule's VJP; a static shape it asks for that is known only at run time is exit 2 naming the node. */
function vjpOf(
  ctx: GradContext,
  node: NodeProto,
  grad: GradDef,
  dYs: (string | undefined)[],
  wants: boolean[],
): (string | undefined)[] {
  try {
    return grad.vjp(ctx, node, dYs, wants);
  } catch (err) {
    if (!(err instanceof RuntimeShapeError)) throw err;
    throw new InputError(
      'model',
      `node ${nodeLabel(node)} (${node.opType}): ${err.message} (it depends on a value fed at run time), and the gradient rule of ${node.opType} needs it when the graph is written; give that value as a constant`,
    );
  }
}

/** Inputs whose values the rule reads when the graph is written must be constants. */
function checkValuesKnown(node: NodeProto, grad: GradDef, ctx: GradContext): void {
  for (const i of grad.valueNeeded ?? []) {
    const x = node.input?.[i];
    if (x && ctx.runtime(x)) {
      throw new InputError(
        'model',
        `node ${nodeLabel(node)} (${node.opType}): input ${i} ('${x}') is computed at run time, but the gradient rule needs its value when the graph is written; make it a constant`,
      );
    }
  }
}

/** A declared shape with a named dim (`<value>_d<i>`) wherever it is known only at run time. */
function symbolicDims(name: string, shape: number[]): (number | string)[] {
  return shape.map((d, i) => (d >= 0 ? d : `${name}_d${i}`));
}

/** The node's gradient rule, or an InputError naming the node and the parameter it is needed for. */
function ruleOf(node: NodeProto, source: Map<string, string>): GradDef {
  const grad = opDef(node)?.grad;
  if (grad && grad !== 'zero') return grad;
  const x = (node.input ?? []).find((i) => source.has(i)) ?? '';
  const op = `${node.domain ? `${node.domain}.` : ''}${node.opType}`;
  throw new InputError(
    'model',
    `no gradient rule for operator ${op} (node ${nodeLabel(node)}), needed for the gradient of '${source.get(x)}'`,
  );
}

/**
 * A cotangent on an output the rule does not read, or a parameter reaching an input it does not
 * differentiate, would silently give a wrong gradient: both are errors naming node and value.
 */
function checkCoverage(node: NodeProto, grad: GradDef, dYs: (string | undefined)[], wants: boolean[]): void {
  const outs = node.output ?? [];
  const ins = node.input ?? [];
  const badOut = dYs.findIndex((d, i) => d !== undefined && !covers(grad.outputs, i));
  if (badOut >= 0) {
    throw new InputError(
      'model',
      `node ${nodeLabel(node)} (${node.opType}): no gradient rule for its output ${badOut} ('${outs[badOut]}'), which the result depends on`,
    );
  }
  const badIn = wants.findIndex((w, i) => w && !covers(grad.inputs, i));
  if (badIn >= 0) {
    throw new InputError(
      'model',
      `node ${nodeLabel(node)} (${node.opType}): no gradient rule for its input ${badIn} ('${ins[badIn]}'), which depends on a parameter`,
    );
  }
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
