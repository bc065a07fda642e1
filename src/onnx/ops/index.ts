/**
 * The operator registry: every ai.onnx operator this project knows, declared once in its
 * family's file with its shape rule, folding and gradient (src/onnx/ops/types.ts).
 */
import type { NodeProto } from '../proto.js';
import { ATTENTION, ATTENTION_SAME_BEFORE_16 } from './attention.js';
import { CONV, CONV_SAME_BEFORE_16 } from './conv.js';
import { ELEMENTWISE, ELEMENTWISE_SAME_BEFORE_16, EXACT_INFERS } from './elementwise.js';
import { LINALG, LINALG_SAME_BEFORE_16 } from './linalg.js';
import { NORM, NORM_SAME_BEFORE_16 } from './norm.js';
import { REDUCE, REDUCE_SAME_BEFORE_16 } from './reduce.js';
import { RESAMPLE, RESAMPLE_SAME_BEFORE_16 } from './resample.js';
import { SHAPE, SHAPE_SAME_BEFORE_16 } from './shape.js';
import type { OpDef } from './types.js';

const FAMILIES = [ELEMENTWISE, REDUCE, SHAPE, LINALG, CONV, NORM, RESAMPLE, ATTENTION];
const OPS = new Map<string, OpDef>();
for (const f of FAMILIES) {
  for (const [name, def] of Object.entries(f)) {
    if (OPS.has(name)) throw new Error(`operator ${name} is declared twice`);
    // the shared elementwise shape rules copy or broadcast dims, exact for run-time ones too
    OPS.set(name, def.infer && EXACT_INFERS.has(def.infer) ? { ...def, runtimeDims: true } : def);
  }
}

const SAME_BEFORE_16 = new Set([
  ...ELEMENTWISE_SAME_BEFORE_16,
  ...REDUCE_SAME_BEFORE_16,
  ...SHAPE_SAME_BEFORE_16,
  ...LINALG_SAME_BEFORE_16,
  ...CONV_SAME_BEFORE_16,
  ...NORM_SAME_BEFORE_16,
  ...RESAMPLE_SAME_BEFORE_16,
  ...ATTENTION_SAME_BEFORE_16,
]);

/**
 * Whether a node of this operator in a graph older than opset 16 means what it means at 16 (after
 * src/onnx/upgrade.ts's rewrites), as its family file declares.
 */
export function sameBefore16(node: NodeProto): boolean {
  return (!node.domain || node.domain === 'ai.onnx') && SAME_BEFORE_16.has(node.opType ?? '');
}

/** The definition of a node's operator; undefined outside ai.onnx or for unknown operators. */
export function opDef(node: NodeProto): OpDef | undefined {
  if (node.domain && node.domain !== 'ai.onnx') return undefined;
  return OPS.get(node.opType ?? '');
}

/** Every operator with a gradient rule (for docs and the conformance test). */
export function differentiableOps(): string[] {
  return [...OPS].filter(([, d]) => d.grad && d.grad !== 'zero').map(([n]) => n);
}
