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
 * intermediate value used outside the chain, evaluated in float64 at sample points. The
 * coefficients of a GELU form are fitted to those values (a and b of 0.5x(1 + tanh(ax + bx³)),
 * or a of 0.5x(1 + erf(ax))), must lie within 2% of GELU's own, and must then reproduce every
 * sample: any operand order, any factoring, constants of any precision (a bf16 export's 0.044715
 * is 0.04468), and the derivative is the one of the function the constants actually define.
 *
 * @example
 *   const gelus = findGeluChains(ctx, graph); // y → { x, form, nodes }
 */

import type { GradContext } from './emit.js';
import { GELU_FORMS, type GeluForm } from './ops/elementwise.js';
import type { GraphProto, NodeProto } from './proto.js';

export interface GeluChain {
  /** The chain's input. */
  x: string;
  /** The form and coefficients the chain computes. */
  form: GeluForm;
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

/** The GELU form `f` computes (coefficients fitted, then checked at every sample), or undefined. */
export function fitGeluForm(f: (x: number) => number): GeluForm | undefined {
  const near = (v: number, ideal: number) => Math.abs(v - ideal) <= 0.02 * Math.abs(ideal);
  const fits = (g: (x: number) => number) =>
    SAMPLES.every((s) => Math.abs(f(s) - g(s)) <= 1e-9 * (1 + Math.abs(f(s))));
  // tanh: u(s) = atanh(2f(s)/s − 1) = as + bs³, solved from s = 0.5 and s = 1
  const u = (s: number) => Math.atanh((2 * f(s)) / s - 1);
  const [u1, u2] = [u(0.5), u(1)];
  const det = 0.5 - 0.125;
  const t = { approximate: 'tanh' as const, a: (u1 - 0.125 * u2) / det, b: (0.5 * u2 - u1) / det };
  if (near(t.a, GELU_FORMS.tanh.a) && near(t.b, GELU_FORMS.tanh.b)) {
    if (fits((x) => 0.5 * x * (1 + Math.tanh(t.a * x + t.b * x ** 3)))) return t;
  }
  // exact: erf(a) = 2f(1) − 1, erf increasing: bisection
  const target = 2 * f(1) - 1;
  let [lo, hi] = [0.5 * GELU_FORMS.none.a, 2 * GELU_FORMS.none.a];
  for (let k = 0; k < 80; k++) {
    const mid = (lo + hi) / 2;
    if (erf(mid) < target) lo = mid;
    else hi = mid;
  }
  const e = { approximate: 'none' as const, a: (lo + hi) / 2, b: 0 };
  if (near(e.a, GELU_FORMS.none.a) && fits((x) => 0.5 * x * (1 + erf(e.a * x)))) return e;
  return undefined;
}

/** How far a chain may run past its Tanh/Erf to its output. */
const DEPTH = 6;

/**
 * Every GELU chain of the forward graph (its nodes in topological order, as the backward walk
 * sees them; `ctx` knows their consumers), keyed by its output.
 */
export function findGeluChains(ctx: GradContext, graph: GraphProto): Map<string, GeluChain> {
  const { info, consumers: users } = ctx;
  const forward = graph.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const n of forward) for (const o of n.output ?? []) if (o) producer.set(o, n);
  const outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const position = new Map(forward.map((n, k) => [n, k]));
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
  for (const anchor of forward) {
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
      const form = fitGeluForm((s) => evaluate(nodes, r.x, s, scalar));
      if (!form) continue;
      found.set(y, { x: r.x, form, nodes });
      for (const n of nodes) taken.add(n);
      break;
    }
  }
  return found;
}

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
