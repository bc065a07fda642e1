/**
 * Composite functions written in primitives. Exporters below opset 20 have no Gelu operator, so
 * GELU arrives as a chain of scalar Mul/Add/Pow around a Tanh (PyTorch's approximate='tanh', Wan's
 * FFN) or an Erf (the exact form). The chain rule through every primitive costs about twenty
 * passes over the FFN's widest activation and keeps the chain's intermediates alive, which also
 * stops onnxruntime from fusing the forward into one FastGelu kernel. Recognised here, the
 * backward walk (src/onnx/autodiff.ts) gives the chain GELU's own derivative instead
 * (src/onnx/ops/elementwise.ts, geluDerivative), read from the chain's input alone.
 *
 * A chain is recognised by what it computes, not by its spelling: the nodes between one input x
 * and one output y, each an elementwise operator whose other inputs are scalar constants, with no
 * intermediate value used outside the chain, evaluated at sample points and compared with both
 * GELU forms. Any operand order, any factoring, float32 constants: all the same chain.
 *
 * @example
 *   const gelus = findGeluChains(info, graph); // y → { x, approximate, nodes }
 */
import type { GraphProto, NodeProto } from './proto.js';
import type { ShapeInfo } from './shapes.js';

export interface GeluChain {
  /** The chain's input. */
  x: string;
  approximate: 'tanh' | 'none';
  /** The chain's nodes, in graph order (the last writes y). */
  nodes: NodeProto[];
}

type Scalar = (a: number, b: number) => number;
const BINARY: Record<string, Scalar> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b) => a / b,
  Pow: (a, b) => a ** b,
};
const UNARY: Record<string, (a: number) => number> = {
  Tanh: Math.tanh,
  Erf: erf,
  Neg: (a) => -a,
  Sqrt: Math.sqrt,
  Identity: (a) => a,
};
const SAMPLES = [-4, -2.5, -1, -0.4, -0.05, 0, 0.1, 0.7, 1.3, 3, 5];
const K = Math.sqrt(2 / Math.PI);
const FORMS: [GeluChain['approximate'], (x: number) => number][] = [
  ['tanh', (x) => 0.5 * x * (1 + Math.tanh(K * (x + 0.044715 * x ** 3)))],
  ['none', (x) => 0.5 * x * (1 + erf(x / Math.SQRT2))],
];
/** How far a chain may run past its Tanh/Erf to its output. */
const DEPTH = 6;

/** Every GELU chain of the graph, keyed by its output. */
export function findGeluChains(info: ShapeInfo, graph: GraphProto): Map<string, GeluChain> {
  const producer = new Map<string, NodeProto>();
  const users = new Map<string, NodeProto[]>();
  for (const n of info.order) {
    for (const o of n.output ?? []) if (o) producer.set(o, n);
    for (const i of n.input ?? []) if (i) users.set(i, [...(users.get(i) ?? []), n]);
  }
  const outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const position = new Map(info.order.map((n, k) => [n, k]));
  const scalar = (v: string) => {
    const c = info.consts.get(v);
    return c && c.data.length === 1 ? c.data[0] : undefined;
  };
  // an elementwise node reading a computed value, its other inputs scalar constants or values of
  // its own shape (a bias that broadcasts ends the chain: the chain's input is then the sum)
  const pointwise = (n: NodeProto) => {
    if ((n.domain && n.domain !== 'ai.onnx') || (n.output?.length ?? 0) !== 1) return false;
    const ins = n.input ?? [];
    if (!(n.opType! in BINARY && ins.length === 2) && !(n.opType! in UNARY && ins.length === 1)) return false;
    const shape = info.types.get(n.output![0]!)?.shape.join();
    const computed = ins.filter((i) => scalar(i) === undefined);
    return computed.length > 0 && computed.every((i) => info.types.get(i)?.shape.join() === shape);
  };

  /** The nodes from y back to its computed leaves; undefined unless the only leaf is one value. */
  const region = (y: string): { x: string; nodes: Set<NodeProto> } | undefined => {
    const nodes = new Set<NodeProto>();
    const leaves = new Set<string>();
    const visit = (v: string) => {
      if (scalar(v) !== undefined) return;
      const p = producer.get(v);
      if (!p || !pointwise(p)) {
        leaves.add(v);
        return;
      }
      if (nodes.has(p)) return;
      nodes.add(p);
      for (const i of p.input ?? []) visit(i);
    };
    visit(y);
    return leaves.size === 1 ? { x: [...leaves][0]!, nodes } : undefined;
  };

  const found = new Map<string, GeluChain>();
  const taken = new Set<NodeProto>();
  for (const anchor of info.order) {
    if ((anchor.opType !== 'Tanh' && anchor.opType !== 'Erf') || taken.has(anchor) || !pointwise(anchor))
      continue;
    // candidate outputs: values downstream of the anchor through pointwise nodes, farthest first
    const candidates: NodeProto[] = [];
    let front = [anchor];
    for (let d = 0; d < DEPTH && front.length; d++) {
      candidates.push(...front);
      front = front.flatMap((n) => (users.get(n.output![0]!) ?? []).filter(pointwise));
    }
    candidates.sort((a, b) => position.get(b)! - position.get(a)!);
    for (const last of candidates) {
      const y = last.output![0]!;
      const r = region(y);
      if (!r?.nodes.has(anchor)) continue;
      const inner = [...r.nodes].filter((n) => n !== last);
      const private_ = inner.every((n) => {
        const o = n.output![0]!;
        return !outputs.has(o) && (users.get(o) ?? []).every((u) => r.nodes.has(u));
      });
      if (!private_) continue;
      const nodes = [...r.nodes].sort((a, b) => position.get(a)! - position.get(b)!);
      const form = FORMS.find(([, f]) => SAMPLES.every((s) => close(evaluate(nodes, r.x, s, scalar), f(s))));
      if (!form) continue;
      found.set(y, { x: r.x, approximate: form[0], nodes });
      for (const n of nodes) taken.add(n);
      break;
    }
  }
  return found;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * (1 + Math.abs(b));

/** The chain's value at x = s, in float64. */
function evaluate(
  nodes: NodeProto[],
  x: string,
  s: number,
  scalar: (v: string) => number | undefined,
): number {
  const vals = new Map<string, number>([[x, s]]);
  const val = (v: string) => vals.get(v) ?? scalar(v) ?? Number.NaN;
  let last = Number.NaN;
  for (const n of nodes) {
    const [a, b] = (n.input ?? []).map(val);
    last = n.opType! in BINARY ? BINARY[n.opType!]!(a!, b!) : UNARY[n.opType!]!(a!);
    vals.set(n.output![0]!, last);
  }
  return last;
}

/** erf to about 1e-12 (a continued Taylor series near 0, the complementary expansion beyond). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc x = e^(−x²)/(x√π) · (1 − 1/(2x²) + 3/(2x²)² − …), asymptotic, ample for |x| ≥ 2.5
  let term = 1;
  let sum = 1;
  const inv = 1 / (2 * ax * ax);
  for (let n = 1; n < 12; n++) {
    term *= -(2 * n - 1) * inv;
    sum += term;
  }
  return Math.sign(x) * (1 - (Math.exp(-ax * ax) / (ax * Math.sqrt(Math.PI))) * sum);
}
