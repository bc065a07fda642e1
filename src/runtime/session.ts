/**
 * The one adapter that owns onnxruntime-node: sessions from a path or bytes, device, threads
 * and graph optimisation level, and conversion between the project's tensors and ORT's.
 * Nothing else imports onnxruntime-node.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { InputError, RuntimeFailure } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { type DType, numel, type Tensor } from '../shards/tensor.js';

export type Device = 'cpu' | 'cuda';
export interface RuntimeOptions {
  device: Device;
  /** 0 lets onnxruntime choose. */
  threads: number;
  graphOptimization: 'disabled' | 'basic' | 'extended' | 'all';
  /** The CPU memory arena (default true). false: memory goes back after each run instead of
   * staying in the session's arena (many sessions run one after another:
   * src/rl/checkpointed-gradient.ts), at the cost of page-faulting every large value anew. */
  memoryArena?: boolean;
  /** onnxruntime's memory pattern (default true): one block planned per run for all
   * intermediates; beside the arena it keeps a second such block after the first run. */
  memoryPattern?: boolean;
  /** Prepacked weight copies (default true): a packed copy of each weight per product reading it. */
  prepack?: boolean;
}

export const DEFAULT_RUNTIME: RuntimeOptions = { device: 'cpu', threads: 0, graphOptimization: 'all' };

/**
 * The set-up of a gradient session: on CPU the arena without memory pattern or prepacking. A
 * gradient graph's intermediates are the forward's activations and their cotangents, and its
 * products read each weight twice or more (forward, dX), so the defaults' pattern block and packed
 * copies cost more than the step itself; the arena still reuses its chunks tensor by tensor, so no
 * large value is page-faulted anew each run. Measured by `npm run bench -- autodiff` (two
 * Wan2.1-1.3B-shaped blocks: peak memory 1.77× → 1.0× PyTorch's, for ≈ 5% more time; the toy
 * DiT's time does not change).
 */
export function gradientRuntime(rt: Partial<RuntimeOptions>): Partial<RuntimeOptions> {
  if ((rt.device ?? DEFAULT_RUNTIME.device) !== 'cpu') return rt;
  return { memoryPattern: false, prepack: false, ...rt };
}

/** onnxruntime's session options for `o` (the benchmarks set their sessions up with this too). */
export function sessionOptions(o: RuntimeOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: o.device === 'cuda' ? [{ name: 'cuda' }, 'cpu'] : ['cpu'],
    graphOptimizationLevel: o.graphOptimization,
    // Sequential execution keeps results independent of inter-op scheduling.
    executionMode: 'sequential',
    ...(o.memoryArena === false ? { enableCpuMemArena: false } : {}),
    ...(o.memoryPattern === false ? { enableMemPattern: false } : {}),
    ...(o.prepack === false ? { extra: { session: { disable_prepacking: '1' } } } : {}),
    ...(o.threads > 0 ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
  };
}

export interface IoInfo {
  name: string;
  dtype: DType | string;
  /** Numbers for static dims, strings for symbolic ones, null for unknown. */
  shape: (number | string | null)[];
}

const ORT_TO_DTYPE: Record<string, DType> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const DTYPE_TO_ORT: Record<DType, string> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** Where onnxruntime-node keeps its native libraries (the CUDA provider lands there too). */
function ortBinDir(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    const root = dirname(req.resolve('onnxruntime-node/package.json'));
    const bin = join(root, 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = join(bin, napi, process.platform, process.arch);
      if (existsSync(dir)) return dir;
    }
  } catch {
    // fall through: unknown layout
  }
  return undefined;
}

export function cudaProviderInstalled(): boolean {
  const dir = ortBinDir();
  return !!dir && readdirSync(dir).some((f) => f.includes('providers_cuda'));
}

/** Time spent inside onnxruntime across all sessions (for the overhead benchmark): in run()
 * (`ms`), and creating and releasing sessions (`sessionMs`: graph optimisation, kernel set-up). */
export const runtimeStats = { runs: 0, ms: 0, sessionMs: 0 };

/** `f()`, its time added to runtimeStats.sessionMs. */
async function sessionTimed<T>(f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    runtimeStats.sessionMs += performance.now() - t0;
  }
}

/** A loaded model. */
export class ModelSession {
  private constructor(
    readonly source: string,
    private readonly session: ort.InferenceSession,
  ) {}

  /**
   * Open a model from a path (external data beside it, validated by loadModel first) or from
   * bytes (a self-contained model under 2 GB; see model-cache.ts for models held in memory).
   *
   * @example
   *   const s = await ModelSession.open('onnx/fixtures/denoiser.onnx', { device: 'cpu', threads: 2, graphOptimization: 'all' });
   */
  static async open(
    model: string | Uint8Array,
    opts: Partial<RuntimeOptions> = {},
    label?: string,
  ): Promise<ModelSession> {
    const o = { ...DEFAULT_RUNTIME, ...opts };
    const where = label ?? (typeof model === 'string' ? model : '<model bytes>');
    if (typeof model === 'string') {
      if (!existsSync(model)) throw new InputError(model, 'model file not found');
      if (statSync(model).isDirectory()) throw new InputError(model, 'is a directory, not an .onnx model');
      // Our checks first: external data outside the folder or past the file's end, named by tensor.
      loadModel(model);
    }
    if (o.device === 'cuda' && !cudaProviderInstalled()) {
      throw new InputError(
        '--device cuda',
        'the CUDA execution provider of onnxruntime-node is not installed; reinstall with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci` on a machine with CUDA 12',
      );
    }
    const options = sessionOptions(o);
    try {
      const session = await sessionTimed(() =>
        typeof model === 'string'
          ? ort.InferenceSession.create(model, options)
          : ort.InferenceSession.create(model, options),
      );
      return new ModelSession(where, session);
    } catch (err) {
      throw new InputError(where, `onnxruntime cannot load the model: ${firstLine(err)}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  get inputs(): IoInfo[] {
    return this.session.inputMetadata.map(meta);
  }
  get outputs(): IoInfo[] {
    return this.session.outputMetadata.map(meta);
  }

  /** Run with named inputs; returns the requested (default: all) outputs as project tensors. */
  async run(feeds: Record<string, Tensor>, fetches?: string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    let res: ort.InferenceSession.ReturnType;
    const t0 = performance.now();
    try {
      res = fetches ? await this.session.run(ortFeeds, fetches) : await this.session.run(ortFeeds);
    } catch (err) {
      throw new RuntimeFailure(`${this.source}: onnxruntime error: ${firstLine(err)}`);
    } finally {
      runtimeStats.ms += performance.now() - t0;
      runtimeStats.runs++;
    }
    const out: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(res)) out[name] = fromOrt(t);
    return out;
  }

  async release(): Promise<void> {
    await sessionTimed(() => this.session.release());
  }
}

function meta(m: ort.InferenceSession.ValueMetadata): IoInfo {
  if (!m.isTensor) return { name: m.name, dtype: 'non-tensor', shape: [] };
  return {
    name: m.name,
    dtype: ORT_TO_DTYPE[m.type] ?? m.type,
    shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' ? d : null)),
  };
}

/** The ort.Tensor wrapping each typed array, by dtype and shape: the LoRA weights and the
 * latents stepped in place are fed again on every step, and a wrapper is costly to build. */
const wrapped = new WeakMap<object, { key: string; tensor: ort.Tensor }>();

/** The onnxruntime view of a tensor (no copy: it reads `t.data` as it is at run time). */
export function toOrt(t: Tensor): ort.Tensor {
  const key = `${t.dtype}:${t.shape.join(',')}`;
  const hit = wrapped.get(t.data);
  if (hit?.key === key) return hit.tensor;
  const tensor = new ort.Tensor(DTYPE_TO_ORT[t.dtype] as 'float32', t.data as Float32Array, t.shape);
  wrapped.set(t.data, { key, tensor });
  return tensor;
}

export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = ORT_TO_DTYPE[t.type];
  if (!dtype) throw new RuntimeFailure(`unsupported onnxruntime output type ${t.type}`);
  const data = t.data as Tensor['data'];
  if (data.length !== numel(t.dims as number[]))
    throw new RuntimeFailure('onnxruntime returned a tensor of the wrong size');
  return {
    dtype,
    shape: [...t.dims],
    data: dtype === 'BOOL' ? new Uint8Array(data as unknown as ArrayLike<number>) : data,
  };
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}
