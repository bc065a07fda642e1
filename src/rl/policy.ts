/**
 * The policy: the denoiser with LoRA branches injected (unmerged), fed the adapter weights as
 * graph inputs; a half-precision denoiser is given float32 inputs and outputs first, and its LoRA
 * branches run in float32 (src/onnx/precision.ts, src/onnx/lora.ts). `sample` and `grpo-step`
 * both run this same graph with the same batch shape, so the log-prob recomputed for the GRPO
 * ratio equals the recorded one.
 */

import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { injectLora } from '../onnx/lora.js';
import { allTensors, encodeModel, loadModel } from '../onnx/model.js';
import { float32Policy, type Precision } from '../onnx/precision.js';
import { cachedWidening, openModel } from '../runtime/model-cache.js';
import type { ModelSession, RuntimeOptions } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';
import {
  initLora,
  type LoraWeights,
  loadCheckpoint,
  loraTensors,
  type PolicyCheckpoint,
} from './checkpoint.js';

export interface DenoiserShape {
  C: number;
  F: number;
  H: number;
  W: number;
  L: number;
  D: number;
}

export interface Policy {
  session: ModelSession;
  lora: LoraWeights;
  checkpoint?: PolicyCheckpoint;
  shape: DenoiserShape;
  /** The LoRA-injected model (for building training graphs); external data stays on disk.
   * Encoded on first use: `sample` never needs it. */
  readonly modelBytes: Uint8Array;
  denoiserPath: string;
  /** What the denoiser's weights and arithmetic are in; its inputs and outputs are float32. */
  precision: Precision;
  /** To show once per run (a bfloat16 export is widened). */
  warnings: string[];
}

export function runtimeOptions(config: Config): Partial<RuntimeOptions> {
  return {
    device: config.runtime.device,
    threads: config.runtime.threads,
    graphOptimization: config.runtime.graph_optimization,
  };
}

/** Seed of a fresh LoRA (no checkpoint): fixed, so `sample` and `grpo-step` initialise the same A. */
export const LORA_INIT_SEED = 0x10a;

/**
 * Load the denoiser, inject LoRA per `config.lora`, and take the adapter weights from the
 * checkpoint folder (or a fresh peft-style init, B = 0, when there is none); with `ema`, the
 * checkpoint's EMA of them (src/rl/ema.ts).
 *
 * @example
 *   const policy = await loadPolicy(config, 'runs/x/iter-0003/policy');
 */
export async function loadPolicy(
  config: Config,
  checkpointDir?: string,
  opts: { ema?: boolean } = {},
): Promise<Policy> {
  const path = config.models.denoiser;
  if (!path)
    throw new InputError('config', 'models.denoiser is not set (give --config with models.denoiser)');
  // a float16/bfloat16 export: float32 at its boundary (src/onnx/precision.ts)
  const raw = loadModel(path);
  const external = [...allTensors(raw)].some((t) => t.dataLocation === 1);
  const { model: base, precision, warning } = float32Policy(raw, path, external ? cachedWidening : undefined);
  checkDenoiserContract(base, path);
  const { model, adapters } = injectLora(base, {
    rank: config.lora.rank,
    alpha: config.lora.alpha,
    targets: config.lora.targets,
  });
  if (adapters.length === 0) {
    throw new InputError(
      path,
      `no MatMul/Gemm weight matches lora.targets ${JSON.stringify(config.lora.targets)}`,
    );
  }
  const adapterDims = adapters.map((a) => ({ weight: a.weight, inDim: a.inDim, outDim: a.outDim }));
  let lora: LoraWeights;
  let checkpoint: PolicyCheckpoint | undefined;
  if (checkpointDir) {
    checkpoint = loadCheckpoint(checkpointDir);
    lora = checkpoint.lora;
    if (opts.ema) {
      // Sampling with the EMA weights (sampler.use_ema): the same adapters, other values.
      if (!checkpoint.ema)
        throw new InputError(
          join(checkpointDir, 'ema_model.safetensors'),
          'missing: sampler.use_ema needs a checkpoint trained with grpo.ema',
        );
      lora = { ...lora, params: checkpoint.ema.params };
    }
    for (const a of adapterDims) {
      const got = lora.adapters.find((x) => x.weight === a.weight);
      if (!got || got.inDim !== a.inDim || got.outDim !== a.outDim) {
        throw new InputError(
          checkpointDir,
          `adapter for '${a.weight}' missing or of the wrong shape for ${path}`,
        );
      }
    }
    if (lora.rank !== config.lora.rank) {
      throw new InputError(
        checkpointDir,
        `LoRA rank ${lora.rank} differs from lora.rank ${config.lora.rank}`,
      );
    }
    // The branch scale is α/r: a different α is a different policy, not a detail.
    if (lora.alpha !== config.lora.alpha) {
      throw new InputError(
        join(checkpointDir, 'adapter_config.json'),
        `lora_alpha ${lora.alpha} differs from lora.alpha ${config.lora.alpha} in the config`,
      );
    }
  } else {
    lora = initLora(adapterDims, config.lora.rank, LORA_INIT_SEED, config.lora.alpha);
  }
  // From a file when the model has external data (a protobuf buffer stops at 2 GB).
  const session = await openModel(model, runtimeOptions(config), path);
  let bytes: Uint8Array | undefined;
  return {
    session,
    lora,
    checkpoint,
    shape: denoiserShape(session, config, path),
    get modelBytes() {
      bytes ??= encodeModel(model);
      return bytes;
    },
    denoiserPath: path,
    precision,
    warnings: warning ? [`${path}: ${warning}`] : [],
  };
}

/** The denoiser contract (onnx/README.md), checked before LoRA targets are looked for. */
function checkDenoiserContract(model: ReturnType<typeof loadModel>, path: string): void {
  const graph = model.graph;
  const inputs = new Set((graph?.input ?? []).map((i) => i.name));
  const outputs = new Set((graph?.output ?? []).map((o) => o.name));
  const missing = ['latents', 'timestep', 'context'].filter((n) => !inputs.has(n));
  if (missing.length)
    throw new InputError(
      path,
      `not a denoiser: no input${missing.length > 1 ? 's' : ''} ${missing.map((n) => `'${n}'`).join(', ')} (contract: latents, timestep, context → velocity)`,
    );
  if (!outputs.has('velocity'))
    throw new InputError(
      path,
      "not a denoiser: no output 'velocity' (contract: latents, timestep, context → velocity)",
    );
}

function denoiserShape(session: ModelSession, config: Config, path: string): DenoiserShape {
  // The inputs exist: checkDenoiserContract ran on the model before LoRA injection.
  const byName = Object.fromEntries(session.inputs.map((i) => [i.name, i]));
  const lat = byName.latents!.shape;
  const ctx = byName.context!.shape;
  const fromCfg = config.sampler.latent_shape;
  const dims = [1, 2, 3, 4].map((k, j) => (typeof lat[k] === 'number' ? (lat[k] as number) : fromCfg?.[j]));
  if (dims.some((d) => d === undefined)) {
    throw new InputError(path, 'latents input has dynamic C/F/H/W: set sampler.latent_shape [C, F, H, W]');
  }
  const [C, F, H, W] = dims as number[];
  const L = typeof ctx[1] === 'number' ? ctx[1] : -1;
  const D = typeof ctx[2] === 'number' ? ctx[2] : -1;
  return { C: C!, F: F!, H: H!, W: W!, L, D };
}

/**
 * Velocity for a batch: x [B, C, F, H, W], σ per step (timestep = 1000σ), context [B, L, D].
 *
 * @example
 *   const v = await velocity(policy, x, B, 0.9, ctx);
 */
export async function velocity(
  policy: Policy,
  x: Float32Array,
  batch: number,
  sigma: number,
  context: Tensor,
): Promise<Float32Array> {
  const { C, F, H, W } = policy.shape;
  const feeds: Record<string, Tensor> = {
    latents: f32([batch, C, F, H, W], x),
    timestep: f32([batch], new Float32Array(batch).fill(Math.fround(1000 * sigma))),
    context,
  };
  for (const [name, t] of loraTensors(policy.lora)) feeds[name] = t;
  const out = await policy.session.run(feeds, ['velocity']);
  return out.velocity!.data as Float32Array;
}
