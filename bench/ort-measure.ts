/**
 * Measuring onnxruntime sessions for the benchmarks: interleaved median timings (wall and CPU)
 * and the peak memory of one run in a fresh process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import { encodeModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { DEFAULT_RUNTIME, type RuntimeOptions, sessionOptions } from '../src/runtime/session.js';

export type Runner = () => Promise<unknown>;

/**
 * How a session is set up and run: the adapter's knobs (src/runtime/session.ts), one intra-op
 * thread unless `threads` says otherwise (the ratios then measure work, not how busy the other
 * cores are).
 */
export type RunOptions = Partial<
  Pick<RuntimeOptions, 'threads' | 'memoryArena' | 'memoryPattern' | 'prepack'>
>;

/** CPU session options for `o`: the adapter's, quiet. */
export function benchSessionOptions(o: RunOptions = {}): ort.InferenceSession.SessionOptions {
  return { ...sessionOptions({ ...DEFAULT_RUNTIME, threads: 1, ...o }), logSeverityLevel: 3 };
}

/** A session of `model` (a ModelProto or a path, external data beside it) run on `feeds`, warmed up once. */
export async function runner(
  model: ModelProto | string,
  feeds: Record<string, ort.Tensor>,
  o: RunOptions = {},
): Promise<Runner> {
  const opts = benchSessionOptions(o);
  const s =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, opts)
      : await ort.InferenceSession.create(encodeModel(model), opts);
  const f: Record<string, ort.Tensor> = {};
  for (const k of s.inputNames) {
    const t = feeds[k];
    if (t) f[k] = t;
  }
  const run = () => s.run(f);
  await run(); // warm-up
  return run;
}

export const median = (t: number[]): number => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!;

/** `values`' median and range, e.g. "2.91 (repeats 2.85–3.02)". */
export function withSpread(values: number[], digits = 2): string {
  const f = (v: number) => v.toFixed(digits);
  return `${f(median(values))} (repeats ${f(Math.min(...values))}–${f(Math.max(...values))})`;
}

/**
 * Median wall times (ms) of the runners, run interleaved so load changes hit them alike, and
 * median CPU times (ms of this process's user+system time): with one onnxruntime thread the
 * CPU time is the work done, which other processes on a shared machine disturb much less.
 */
export async function timeInterleaved(
  runners: Runner[],
  runs: number,
): Promise<number[] & { cpu: number[] }> {
  const times: number[][] = runners.map(() => []);
  const cpu: number[][] = runners.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < runners.length; k++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await runners[k]!();
      times[k]!.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[k]!.push((c.user + c.system) / 1000);
    }
  }
  return Object.assign(times.map(median), { cpu: cpu.map(median) });
}

/**
 * Peak memory of running `model` (a ModelProto, or a path with its external data beside it)
 * `runs` times (default 2: a loop's steady state — allocators keep or fragment what the first
 * run freed, PyTorch's peak is taken over its passes too): a fresh Node process loads
 * onnxruntime, creates the session (CPU, `threads`) and runs it on zeros; returns the growth of
 * its resident-set high-water mark over what it held before creating the session (MiB): the
 * model's weights, onnxruntime's copies of them, the outputs and the live intermediate values.
 */
export function peakMib(model: ModelProto | string, o: RunOptions = {}, runs = 2): number {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-peak-'));
  try {
    let file = model as string;
    if (typeof model !== 'string') {
      file = join(dir, 'model.onnx');
      writeFileSync(file, encodeModel(model));
    }
    const ortUrl = pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href;
    // the high-water mark is read from /proc (reset first: a child inherits its parent's maxRSS)
    const script = `
      const ort = (await import(${JSON.stringify(ortUrl)})).default;
      const fs = await import('node:fs');
      const hwm = () => {
        try {
          return Number(/VmHWM:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
        } catch {
          return process.resourceUsage().maxRSS;
        }
      };
      try { fs.writeFileSync('/proc/self/clear_refs', '5'); } catch {}
      const base = hwm();
      const s = await ort.InferenceSession.create(${JSON.stringify(file)},
        ${JSON.stringify(benchSessionOptions(o))});
      const zeros = (names, meta) => Object.fromEntries(names.map((name, i) => {
        const shape = meta[i].shape;
        return [name, new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape)];
      }));
      const feeds = zeros(s.inputNames, s.inputMetadata);
      for (let k = 0; k < ${runs}; k++) await s.run(feeds);
      console.log((hwm() - base) / 1024);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    return r.status === 0 ? Math.round(Number(r.stdout.trim())) : Number.NaN;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The environment for a PyTorch child at `threads` threads: OpenBLAS and OpenMP pinned to that
 * count, and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (which a shared machine's settings may force on
 * every process) unset, so OpenBLAS picks its kernels for this CPU.
 */
export function torchEnv(threads: number): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return { ...env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
}
