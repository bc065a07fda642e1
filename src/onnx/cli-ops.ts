/**
 * The library side of `vggrpo onnx grad` and `vggrpo onnx lora`: plain functions taking paths
 * and options, returning typed summaries (the oclif commands only parse flags and print).
 *
 * @example
 *   const r = gradCommand({ model: 'denoiser.onnx', out: 'denoiser.grad.onnx', wrt: ['lora:*'], shapes: parseShapes(['batch=1']) });
 */
import { InputError } from '../errors.js';
import { buildGradientGraph } from './autodiff.js';
import { injectLora, type LoraAdapter } from './lora.js';
import { loadModel, saveModel } from './model.js';
import type { ModelProto } from './proto.js';

/**
 * Parse `--shape` flags: `name=d0,d1,...` for an input's full shape (`name=` for a scalar), or
 * `dim=value` for a symbolic dim name. Repeatable; also accepts several separated by `;`.
 *
 * @example
 *   parseShapes(['latents=1,16,5,8,8', 'batch=1']); // { latents: [1,16,5,8,8], batch: [1] }
 */
export function parseShapes(flags: readonly string[] = []): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const f of flags.flatMap((s) => s.split(';')).filter((s) => s.trim())) {
    const eq = f.lastIndexOf('=');
    const name = f.slice(0, eq).trim();
    const rest = f.slice(eq + 1).trim();
    // `name=` (nothing after =) is a scalar's shape, []
    const dims = rest ? rest.split(/[,x×]/).map((d) => Number(d.trim())) : [];
    if (eq <= 0 || dims.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new InputError(`--shape ${f}`, 'expected NAME=D0,D1,... with non-negative integers');
    }
    // Beyond these no tensor of that shape can be allocated: say so now, not as a RangeError later.
    if (dims.some((d) => d > 2 ** 31 - 1) || dims.reduce((a, d) => a * d, 1) > 2 ** 32)
      throw new InputError(`--shape ${f}`, 'too large (a dimension above 2³¹−1 or more than 2³² elements)');
    out[name] = dims;
  }
  return out;
}

export interface GradCommandOptions {
  model: string;
  out: string;
  /** Parameter names or globs. */
  wrt: string[];
  shapes?: Record<string, number[]>;
  /** Move tensors of at least this many bytes to `<out>.data`. */
  externalDataThreshold?: number;
}

export interface GradCommandResult {
  out: string;
  params: string[];
  /** Inputs of the gradient model (original inputs, then `grad:Y` cotangents). */
  inputs: string[];
  /** Outputs (original outputs, then `grad:P`). */
  outputs: string[];
  warnings: string[];
  nodes: number;
}

const names = (m: ModelProto, k: 'input' | 'output') => (m.graph?.[k] ?? []).map((v) => v.name ?? '');

/**
 * Read a model, build its gradient graph and write it atomically.
 *
 * @example
 *   gradCommand({ model: 'm.onnx', out: 'm.grad.onnx', wrt: ['*.weight'] });
 */
export function gradCommand(o: GradCommandOptions): GradCommandResult {
  if (!o.wrt.length) throw new InputError('--wrt', 'give at least one parameter name or glob');
  const model = loadModel(o.model);
  const { model: g, params, warnings } = buildGradientGraph(model, { wrt: o.wrt, shapes: o.shapes });
  saveModel(g, o.out, { externalDataThreshold: o.externalDataThreshold });
  return {
    out: o.out,
    params,
    inputs: names(g, 'input'),
    outputs: names(g, 'output'),
    warnings,
    nodes: g.graph?.node?.length ?? 0,
  };
}

export interface LoraCommandOptions {
  model: string;
  out: string;
  rank: number;
  alpha: number;
  targets: string[];
  externalDataThreshold?: number;
}

/**
 * Read a model, inject LoRA branches and write it atomically.
 *
 * @example
 *   loraCommand({ model: 'm.onnx', out: 'm.lora.onnx', rank: 8, alpha: 16, targets: ['blocks.*.weight'] });
 */
export function loraCommand(o: LoraCommandOptions): { out: string; adapters: LoraAdapter[] } {
  const model = loadModel(o.model);
  const { model: m, adapters } = injectLora(model, { rank: o.rank, alpha: o.alpha, targets: o.targets });
  saveModel(m, o.out, { externalDataThreshold: o.externalDataThreshold });
  return { out: o.out, adapters };
}
