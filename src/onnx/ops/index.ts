/**
 * The operator registry: every ai.onnx operator this project knows, declared once in its
 * family's file with its shape rule, folding and gradient (src/onnx/ops/types.ts).
 */
import type { NodeProto } from '../proto.js';
import { ATTENTION } from './attention.js';
import { CONV } from './conv.js';
import { ELEMENTWISE } from './elementwise.js';
import { LINALG } from './linalg.js';
import { NORM } from './norm.js';
import { REDUCE } from './reduce.js';
import { RESAMPLE } from './resample.js';
import { SHAPE } from './shape.js';
import type { OpDef } from './types.js';

const FAMILIES = [ELEMENTWISE, REDUCE, SHAPE, LINALG, CONV, NORM, RESAMPLE, ATTENTION];
const OPS = new Map<string, OpDef>();
for (const f of FAMILIES) {
  for (const [name, def] of Object.entries(f)) {
    if (OPS.has(name)) throw new Error(`operator ${name} is declared twice`);
    OPS.set(name, def);
  }
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
