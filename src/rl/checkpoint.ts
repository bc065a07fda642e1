/**
 * The policy checkpoint folder (README.md, Shard formats): a peft-loadable LoRA adapter plus what the toolkit
 * needs to resume.
 *
 *   adapter_model.safetensors  base_model.model.<module>.lora_A.weight = Aᵀ [r, in]
 *                              base_model.model.<module>.lora_B.weight = Bᵀ [out, r]
 *   adapter_config.json        peft's LoraConfig fields (r, lora_alpha, target_modules, …)
 *   optimizer.safetensors      AdamW moments `<param>.exp_avg`, `<param>.exp_avg_sq` in the
 *                              internal layout, step in metadata `vggrpo.adamw_step`
 *   ema_model.safetensors      with `grpo.ema`: the EMA of the LoRA weights, in the adapter's
 *                              layout (a peft adapter too), decay in metadata `vggrpo.ema_decay`
 *   state.json                 { step, config_hash, training_hash, training, metrics }
 *
 * Internally (and as ONNX graph inputs) a LoRA pair is `lora:<weight>:A` [in, r] and
 * `lora:<weight>:B` [r, out], with y = x·W + (α/r)·(x·A)·B; peft stores the nn.Linear layout,
 * i.e. the transposes, with the same α/r scaling. `<module>` is the weight initializer's name
 * without a trailing `.weight`; the exact initializer names are kept in the adapter file's
 * metadata (`vggrpo.weights`) so names without that suffix round-trip too.
 *
 * The folder is written atomically: everything goes into a temp sibling folder, each file and the
 * folder are fsynced, then the folder is renamed into place (an existing target is renamed aside
 * first and removed after). A crash leaves the old folder or the new one, never a mix.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { parseJson } from '../config/validate.js';
import { check, InputError } from '../errors.js';
import { atomicWrite, fsyncDir, settleTemp, tempBeside } from '../shards/atomic.js';
import { encodeSafetensors, readSafetensors } from '../shards/safetensors.js';
import { type Tensor, tensor, toFloat32 } from '../shards/tensor.js';
import type { AdamWState, ParamMap } from './adamw.js';
import { hashString, type Seed, splitSeed, uniform } from './prng.js';

export const ADAPTER_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'state.json';
export const EMA_FILE = 'ema_model.safetensors';

/** One adapted weight: its ONNX initializer name and the y = x·W dims of W [in, out]. */
export interface LoraAdapter {
  weight: string;
  inDim: number;
  outDim: number;
}

/** LoRA parameters in the internal layout, keyed by their ONNX input names. */
export interface LoraWeights {
  rank: number;
  alpha: number;
  adapters: LoraAdapter[];
  /** `lora:<weight>:A` → [in·r] row-major [in, r]; `lora:<weight>:B` → [r·out] row-major [r, out]. */
  params: ParamMap;
}

export interface CheckpointState {
  /** GRPO iterations done. */
  step: number;
  /** Hash of the resolved config that produced this policy. */
  configHash: string;
  metrics: Record<string, number>;
  /** Hash of the keys that define the training (src/rl/training-hash.ts), and those keys. */
  trainingHash?: string;
  training?: Record<string, unknown>;
}

export interface PolicyCheckpoint {
  lora: LoraWeights;
  optimizer: AdamWState;
  state: CheckpointState;
  /** peft's base_model_name_or_path (the denoiser file), null when unknown. */
  baseModel?: string | null;
  /** The EMA of the LoRA parameters (same names and sizes), with its decay. */
  ema?: { params: ParamMap; decay: number };
}

/** Test hook: runs after all files are in the temp folder, before it is renamed into place. */
export const checkpointHooks: { beforeRename?: (tmpDir: string) => void } = {};

/** The ONNX input names of a weight's LoRA pair. */
export function loraInputNames(weight: string): { a: string; b: string } {
  return { a: `lora:${weight}:A`, b: `lora:${weight}:B` };
}

/** peft module name of a weight initializer: the name without a trailing `.weight`. */
export function moduleName(weight: string): string {
  return weight.endsWith('.weight') ? weight.slice(0, -'.weight'.length) : weight;
}

/**
 * Fresh LoRA weights as peft initialises them: B = 0 (so the policy starts as the base model)
 * and A by kaiming_uniform_(a=√5) on peft's [r, in] tensor, whose fan_in is `in`:
 * gain = sqrt(2/(1+5)), bound = gain·sqrt(3/in) = 1/√in, so A ~ U(−1/√in, 1/√in). Each
 * weight draws from its own stream (seed, hash of its name), in peft's [r, in] order, then is
 * transposed to [in, r]; adding or reordering adapters does not change the others.
 *
 * @example
 *   const lora = initLora([{ weight: 'fc1.weight', inDim: 16, outDim: 32 }], 4, 0, 8);
 */
export function initLora(adapters: LoraAdapter[], rank: number, seed: Seed, alpha = 2 * rank): LoraWeights {
  check(Number.isInteger(rank) && rank > 0, 'lora.rank', `expected a positive integer, got ${rank}`);
  check(alpha > 0, 'lora.alpha', `expected a positive number, got ${alpha}`);
  const params: ParamMap = new Map();
  const seen = new Set<string>();
  for (const ad of adapters) {
    check(!seen.has(ad.weight), 'lora', `weight '${ad.weight}' listed twice`);
    seen.add(ad.weight);
    check(
      ad.inDim > 0 && ad.outDim > 0,
      'lora',
      `weight '${ad.weight}' has empty dims ${ad.inDim}×${ad.outDim}`,
    );
    const bound = 1 / Math.sqrt(ad.inDim);
    const aPeft = uniform(splitSeed(seed, hashString(ad.weight)), rank * ad.inDim, -bound, bound);
    const names = loraInputNames(ad.weight);
    params.set(names.a, transpose(aPeft, rank, ad.inDim));
    params.set(names.b, new Float32Array(rank * ad.outDim));
  }
  return { rank, alpha, adapters: adapters.map((a) => ({ ...a })), params };
}

/**
 * The LoRA parameters as tensors with their internal shapes (for ONNX feeds).
 *
 * @example
 *   const feeds = loraTensors(lora); // Map 'lora:fc1.weight:A' → F32 [16, 4], …
 */
export function loraTensors(lora: LoraWeights): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const ad of lora.adapters) {
    const n = loraInputNames(ad.weight);
    out.set(n.a, tensor('F32', [ad.inDim, lora.rank], lora.params.get(n.a)!));
    out.set(n.b, tensor('F32', [lora.rank, ad.outDim], lora.params.get(n.b)!));
  }
  return out;
}

/** Row-major [rows, cols] → [cols, rows]. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j]!;
  return out;
}

function peftKey(module: string, which: 'A' | 'B'): string {
  return `base_model.model.${module}.lora_${which}.weight`;
}

/** peft's LoraConfig as JSON, with the fields a peft user expects. */
function adapterConfig(lora: LoraWeights, baseModel: string | null): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.rank,
    rank_pattern: {},
    revision: null,
    target_modules: lora.adapters.map((a) => moduleName(a.weight)),
    task_type: null,
    use_dora: false,
    use_rslora: false,
  };
}

/**
 * Write the checkpoint folder atomically (see the module comment).
 *
 * @example
 *   saveCheckpoint('runs/x/policy/step-0001', { lora, optimizer, state: { step: 1, configHash, metrics: {} } });
 */
export function saveCheckpoint(dir: string, ckpt: PolicyCheckpoint): void {
  const { lora, optimizer, state } = ckpt;
  validateLora(lora, dir);
  const target = resolve(dir);
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  if (existsSync(target) && !statSync(target).isDirectory())
    throw new InputError(dir, 'exists and is not a folder');
  const tmp = tempBeside(target, '.tmp-dir');
  const tag = basename(tmp);
  mkdirSync(tmp);
  let aside: string | null = null;
  try {
    const weights = moduleWeights(lora, dir);
    atomicWrite(
      join(tmp, ADAPTER_FILE),
      encodeSafetensors(peftTensors(lora, lora.params), {
        format: 'pt',
        'vggrpo.weights': JSON.stringify(weights),
      }),
    );
    if (ckpt.ema) {
      atomicWrite(
        join(tmp, EMA_FILE),
        encodeSafetensors(peftTensors(lora, ckpt.ema.params), {
          format: 'pt',
          'vggrpo.weights': JSON.stringify(weights),
          'vggrpo.ema_decay': String(ckpt.ema.decay),
        }),
      );
    }
    atomicWrite(
      join(tmp, ADAPTER_CONFIG_FILE),
      `${JSON.stringify(adapterConfig(lora, ckpt.baseModel ?? null), null, 2)}\n`,
    );
    // optimizer: internal layout, keyed by parameter name.
    const optTensors = new Map<string, Tensor>();
    for (const ad of lora.adapters) {
      const n = loraInputNames(ad.weight);
      const shapes: [string, number[]][] = [
        [n.a, [ad.inDim, lora.rank]],
        [n.b, [lora.rank, ad.outDim]],
      ];
      for (const [name, shape] of shapes) {
        const m = optimizer.expAvg.get(name) ?? new Float32Array(lora.params.get(name)!.length);
        const v = optimizer.expAvgSq.get(name) ?? new Float32Array(lora.params.get(name)!.length);
        check(
          m.length === v.length && m.length === lora.params.get(name)!.length,
          dir,
          `moments of '${name}' have the wrong size`,
        );
        optTensors.set(`${name}.exp_avg`, tensor('F32', shape, m));
        optTensors.set(`${name}.exp_avg_sq`, tensor('F32', shape, v));
      }
    }
    atomicWrite(
      join(tmp, OPTIMIZER_FILE),
      encodeSafetensors(optTensors, {
        'vggrpo.kind': 'optimizer',
        'vggrpo.adamw_step': String(optimizer.step),
      }),
    );
    const stateJson = {
      step: state.step,
      config_hash: state.configHash,
      ...(state.trainingHash ? { training_hash: state.trainingHash, training: state.training } : {}),
      metrics: state.metrics,
    };
    atomicWrite(join(tmp, STATE_FILE), `${JSON.stringify(stateJson, null, 2)}\n`);
    fsyncDir(tmp);
    checkpointHooks.beforeRename?.(tmp);
    if (existsSync(target)) {
      aside = join(parent, `.${basename(target)}.old-${tag}`);
      renameSync(target, aside);
    }
    try {
      renameSync(tmp, target);
    } catch (err) {
      if (aside) renameSync(aside, target);
      aside = null;
      throw err;
    }
    fsyncDir(parent);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  settleTemp(tmp);
  if (aside) rmSync(aside, { recursive: true, force: true });
}

/** peft module name → ONNX weight name, one module per weight. */
function moduleWeights(lora: LoraWeights, dir: string): Record<string, string> {
  const weights: Record<string, string> = {};
  for (const ad of lora.adapters) {
    const mod = moduleName(ad.weight);
    check(
      weights[mod] === undefined,
      dir,
      `weights '${weights[mod]}' and '${ad.weight}' map to one module '${mod}'`,
    );
    weights[mod] = ad.weight;
  }
  return weights;
}

/** Parameters in peft's layout (transposed), modules in adapter order, A before B. */
function peftTensors(lora: LoraWeights, params: ParamMap): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const ad of lora.adapters) {
    const mod = moduleName(ad.weight);
    const n = loraInputNames(ad.weight);
    out.set(
      peftKey(mod, 'A'),
      tensor('F32', [lora.rank, ad.inDim], transpose(params.get(n.a)!, ad.inDim, lora.rank)),
    );
    out.set(
      peftKey(mod, 'B'),
      tensor('F32', [ad.outDim, lora.rank], transpose(params.get(n.b)!, lora.rank, ad.outDim)),
    );
  }
  return out;
}

function validateLora(lora: LoraWeights, where: string): void {
  for (const ad of lora.adapters) {
    const n = loraInputNames(ad.weight);
    const a = lora.params.get(n.a);
    const b = lora.params.get(n.b);
    check(a !== undefined && b !== undefined, where, `no LoRA pair for weight '${ad.weight}'`);
    check(
      a.length === ad.inDim * lora.rank,
      where,
      `'${n.a}' has ${a.length} elements, expected ${ad.inDim}×${lora.rank}`,
    );
    check(
      b.length === lora.rank * ad.outDim,
      where,
      `'${n.b}' has ${b.length} elements, expected ${lora.rank}×${ad.outDim}`,
    );
  }
}

/** Checkpoint JSON files are small; a bigger one is not a checkpoint file. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** A JSON file of the checkpoint, validated by `schema`; every fault names the file and the key. */
function readJson<T>(path: string, schema: z.ZodType<T>): T {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new InputError(path, 'is not a regular file');
    if (st.size > MAX_JSON_BYTES)
      throw new InputError(path, `${st.size} bytes: too large for a checkpoint JSON file`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseJson(text, schema, path, '');
}

const notTrue = z
  .boolean()
  .refine((v) => !v, 'true is not supported')
  .nullish();
const emptyMap = z
  .record(z.string(), z.unknown())
  .refine((m) => Object.keys(m).length === 0, 'is not supported')
  .nullish();

/** peft's adapter_config.json: the fields the toolkit reads; peft's other fields pass. */
const AdapterConfigJson = z.looseObject({
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  peft_type: z.literal('LORA').nullish(),
  use_rslora: notTrue,
  use_dora: notTrue,
  fan_in_fan_out: notTrue,
  rank_pattern: emptyMap,
  alpha_pattern: emptyMap,
  base_model_name_or_path: z.string().nullish(),
});

const StateJson = z.looseObject({
  step: z.number().int().nonnegative(),
  config_hash: z.string(),
  training_hash: z.string().optional(),
  training: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.number().nullable()).default({}),
});

function requireFile(dir: string, name: string): string {
  const p = join(dir, name);
  if (!existsSync(p)) throw new InputError(p, 'missing from the policy checkpoint folder');
  return p;
}

/**
 * Read and validate a checkpoint folder; every fault is an InputError naming the file. With
 * `adapterOnly`, a plain peft adapter folder (no optimizer.safetensors / state.json) loads with
 * fresh optimiser state and step 0.
 *
 * @example
 *   const { lora, optimizer, state } = loadCheckpoint('runs/x/policy/step-0001');
 */
export function loadCheckpoint(dir: string, opts: { adapterOnly?: boolean } = {}): PolicyCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new InputError(dir, 'no such policy checkpoint folder');
  const cfgPath = requireFile(dir, ADAPTER_CONFIG_FILE);
  const adapterPath = requireFile(dir, ADAPTER_FILE);
  const optPath =
    opts.adapterOnly && !existsSync(join(dir, OPTIMIZER_FILE)) ? null : requireFile(dir, OPTIMIZER_FILE);
  const statePath =
    opts.adapterOnly && !existsSync(join(dir, STATE_FILE)) ? null : requireFile(dir, STATE_FILE);

  const cfg = readJson(cfgPath, AdapterConfigJson);
  const r = cfg.r;
  const alpha = cfg.lora_alpha;

  const adapterFile = readSafetensors(adapterPath);
  let weights: Record<string, string> = {};
  if (adapterFile.metadata['vggrpo.weights'] !== undefined) {
    try {
      weights = JSON.parse(adapterFile.metadata['vggrpo.weights']) as Record<string, string>;
    } catch {
      throw new InputError(adapterPath, 'metadata vggrpo.weights is not valid JSON');
    }
  }
  const pairs = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const [key, t] of adapterFile.tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(key);
    if (!m)
      throw new InputError(
        adapterPath,
        `tensor '${key}' is not a peft LoRA key (base_model.model.<module>.lora_A|B.weight)`,
      );
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype))
      throw new InputError(adapterPath, `tensor '${key}': dtype ${t.dtype} is not a float`);
    const entry = pairs.get(m[1]!) ?? {};
    entry[m[2] as 'A' | 'B'] = t;
    pairs.set(m[1]!, entry);
  }
  if (pairs.size === 0) throw new InputError(adapterPath, 'holds no LoRA tensors');
  const adapters: LoraAdapter[] = [];
  const params: ParamMap = new Map();
  for (const [mod, { A, B }] of pairs) {
    if (!A) throw new InputError(adapterPath, `module '${mod}' has lora_B but no lora_A`);
    if (!B) throw new InputError(adapterPath, `module '${mod}' has lora_A but no lora_B`);
    if (A.shape.length !== 2 || A.shape[0] !== r) {
      throw new InputError(
        adapterPath,
        `'${peftKey(mod, 'A')}' has shape [${A.shape.join(', ')}], expected [${r}, in]`,
      );
    }
    if (B.shape.length !== 2 || B.shape[1] !== r) {
      throw new InputError(
        adapterPath,
        `'${peftKey(mod, 'B')}' has shape [${B.shape.join(', ')}], expected [out, ${r}]`,
      );
    }
    const inDim = A.shape[1]!;
    const outDim = B.shape[0]!;
    const weight = weights[mod] ?? `${mod}.weight`;
    if (moduleName(weight) !== mod)
      throw new InputError(adapterPath, `metadata maps module '${mod}' to weight '${weight}'`);
    adapters.push({ weight, inDim, outDim });
    const n = loraInputNames(weight);
    params.set(n.a, transpose(toFloat32(A), r, inDim));
    params.set(n.b, transpose(toFloat32(B), outDim, r));
    checkFinite(params.get(n.a)!, adapterPath, peftKey(mod, 'A'));
    checkFinite(params.get(n.b)!, adapterPath, peftKey(mod, 'B'));
  }
  const lora: LoraWeights = { rank: r, alpha, adapters, params };

  const optimizer: AdamWState = { step: 0, expAvg: new Map(), expAvgSq: new Map() };
  if (optPath) {
    const opt = readSafetensors(optPath);
    const stepText = opt.metadata['vggrpo.adamw_step'];
    const step = Number(stepText);
    if (stepText === undefined || !Number.isSafeInteger(step) || step < 0) {
      throw new InputError(
        optPath,
        `metadata vggrpo.adamw_step must be a non-negative integer, got ${JSON.stringify(stepText)}`,
      );
    }
    optimizer.step = step;
    const expected = new Map<string, number[]>();
    for (const ad of adapters) {
      const n = loraInputNames(ad.weight);
      expected.set(`${n.a}.exp_avg`, [ad.inDim, r]);
      expected.set(`${n.a}.exp_avg_sq`, [ad.inDim, r]);
      expected.set(`${n.b}.exp_avg`, [r, ad.outDim]);
      expected.set(`${n.b}.exp_avg_sq`, [r, ad.outDim]);
    }
    for (const key of opt.tensors.keys()) {
      if (!expected.has(key))
        throw new InputError(optPath, `tensor '${key}' matches no LoRA parameter of the adapter`);
    }
    for (const [key, shape] of expected) {
      const t = opt.tensors.get(key);
      if (!t) throw new InputError(optPath, `tensor '${key}' is missing`);
      if (t.dtype !== 'F32') throw new InputError(optPath, `tensor '${key}': expected F32, got ${t.dtype}`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new InputError(
          optPath,
          `tensor '${key}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
        );
      }
      const data = Float32Array.from(t.data as Float32Array); // own copy: the state is updated in place
      checkFinite(data, optPath, key);
      const isSq = key.endsWith('.exp_avg_sq');
      (isSq ? optimizer.expAvgSq : optimizer.expAvg).set(
        key.slice(0, key.lastIndexOf(isSq ? '.exp_avg_sq' : '.exp_avg')),
        data,
      );
    }
  }

  let state: CheckpointState = { step: 0, configHash: '', metrics: {} };
  if (statePath) {
    const s = readJson(statePath, StateJson);
    const metrics = s.metrics;
    state = {
      step: s.step,
      configHash: s.config_hash,
      metrics: metrics as Record<string, number>,
      ...(s.training_hash ? { trainingHash: s.training_hash, training: s.training ?? undefined } : {}),
    };
  }
  const base = cfg.base_model_name_or_path ?? null;
  const emaPath = join(dir, EMA_FILE);
  const ema = existsSync(emaPath) ? readEma(emaPath, lora) : undefined;
  return { lora, optimizer, state, baseModel: typeof base === 'string' ? base : null, ema };
}

/** ema_model.safetensors: the adapter's modules and shapes, in peft's layout. */
function readEma(path: string, lora: LoraWeights): { params: ParamMap; decay: number } {
  const file = readSafetensors(path);
  const decay = Number(file.metadata['vggrpo.ema_decay']);
  if (!(decay > 0 && decay < 1))
    throw new InputError(
      path,
      `metadata vggrpo.ema_decay must lie in (0, 1), got ${file.metadata['vggrpo.ema_decay']}`,
    );
  const params: ParamMap = new Map();
  for (const ad of lora.adapters) {
    const mod = moduleName(ad.weight);
    const n = loraInputNames(ad.weight);
    for (const [which, name, rows, cols] of [
      ['A', n.a, lora.rank, ad.inDim],
      ['B', n.b, ad.outDim, lora.rank],
    ] as const) {
      const t = file.tensors.get(peftKey(mod, which));
      if (t?.shape.length !== 2 || t.shape[0] !== rows || t.shape[1] !== cols)
        throw new InputError(
          path,
          `tensor '${peftKey(mod, which)}' missing or not of shape [${rows}, ${cols}]`,
        );
      params.set(name, transpose(toFloat32(t), rows, cols));
      checkFinite(params.get(name)!, path, peftKey(mod, which));
    }
  }
  if (file.tensors.size !== 2 * lora.adapters.length)
    throw new InputError(path, 'holds tensors that match no module of the adapter');
  return { params, decay };
}

function checkFinite(data: Float32Array, file: string, name: string): void {
  for (let j = 0; j < data.length; j++) {
    if (!Number.isFinite(data[j]!))
      throw new InputError(file, `tensor '${name}' holds a non-finite value at element ${j}`);
  }
}
