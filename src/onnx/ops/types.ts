/**
 * What one operator declares, in one place: its shape/type rule, its constant folding, and its
 * gradient (the VJP with the inputs and outputs it covers). The registry of all operators is
 * src/onnx/ops/index.ts; docs/AUTODIFF.md says how to add one.
 */
import type { GradContext } from '../emit.js';
import type { NodeProto } from '../proto.js';

export interface ValueType {
  elemType: number;
  shape: number[];
}

/** A small constant known at graph-writing time (int64 values as plain numbers). */
export interface Const extends ValueType {
  data: number[];
}

/** Output types of a node from its input types and its constant inputs (throws on a fault). */
export type Infer = (
  node: NodeProto,
  ins: (ValueType | undefined)[],
  cs: (Const | undefined)[],
  opset: number,
) => ValueType[];

/**
 * The folded data of output 0 (cast to `out`'s type by the caller), or undefined. Called only
 * when every present input is a constant, unless the OpDef says `foldAny`; may throw (no fold).
 */
export type Fold = (
  node: NodeProto,
  cs: (Const | undefined)[],
  out: ValueType,
  ins: (ValueType | undefined)[],
) => number[] | undefined;

/**
 * A vector-Jacobian product: the cotangents of the node's inputs (undefined where not wanted)
 * from those of its outputs (undefined where none reaches them).
 */
export type Vjp = (
  ctx: GradContext,
  node: NodeProto,
  dY: (string | undefined)[],
  wants: boolean[],
) => (string | undefined)[];

export interface GradDef {
  vjp: Vjp;
  /** Inputs the VJP differentiates. A parameter reaching any other float input is an error. */
  inputs: number[] | 'all';
  /** Inputs in which the operator is constant (indices, shapes, conditions): no gradient flows. */
  constant?: number[];
  /**
   * Inputs whose values the VJP reads when the graph is written (Resize's scales, Dropout's
   * ratio): a value computed at run time there is an error naming the node. All other constant
   * inputs (shapes, axes, starts/ends, sizes, repeats, pads, indices) may be fed at run time.
   */
  valueNeeded?: number[];
  /** Outputs whose cotangents the VJP reads. A cotangent reaching another output is an error. */
  outputs: number[] | 'all';
  /** The VJP takes cotangents that are still broadcastable (smaller than the output). */
  broadcast?: boolean;
  /**
   * The forward node as the VJP wants it (e.g. with optional outputs it reuses), for nodes on a
   * gradient path; a new node, never the caller's edited. New values get types in `info`.
   */
  prepare?: (
    node: NodeProto,
    info: { types: Map<string, ValueType> },
    fresh: (prefix: string) => string,
  ) => NodeProto;
}

export interface OpDef {
  /** Absent where outputs are data-dependent: the graph's declared types are used. */
  infer?: Infer;
  /**
   * `infer` is exact for inputs with dims known only at run time (RUNTIME_DIM). Otherwise such
   * inputs give outputs of the inferred rank with every dim RUNTIME_DIM (a sum like Concat's
   * would be wrong), so the rules that read them refuse instead of emitting a wrong graph.
   */
  runtimeDims?: boolean;
  /** Constant folding on small tensors. */
  fold?: Fold;
  /** Fold even where some inputs are not constants (Shape, Size, ConstantOfShape). */
  foldAny?: boolean;
  /** The gradient; `'zero'` for operators whose outputs carry none (integer or piecewise constant). */
  grad?: GradDef | 'zero';
}

/** Input `i` / output `i` of a node (present by the caller's check). */
export const I = (n: NodeProto, i: number): string => n.input?.[i] ?? '';
export const O = (n: NodeProto, i = 0): string => n.output?.[i] ?? '';

/** Whether `list` (a GradDef's inputs or outputs) names index `i`. */
export const covers = (list: number[] | 'all' | undefined, i: number): boolean =>
  list === 'all' || !!list?.includes(i);
