/**
 * Sampling noise drawn ahead on a worker thread. onnxruntime-node runs a session on the calling
 * (main) thread, so the main thread cannot draw the next step's noise while the denoiser runs;
 * a worker can, on a free core (or while a GPU computes). The values are exactly batchNoise's,
 * whichever thread draws them.
 *
 * Each draw is a job that one side claims (a compare-and-swap on a shared word): the worker when
 * it gets to it, or the main thread when the noise is needed before the worker has started it
 * (the worker still booting, or busy with an earlier job) — so waiting on the worker never costs
 * more than drawing on the main thread would. Close it (try/finally): an open worker keeps the
 * process alive.
 */
import { Worker } from 'node:worker_threads';
import { batchNoise, type Seed } from './prng.js';

/** A job's claim word: who draws it. */
export const QUEUED = 0;
export const BY_WORKER = 1;
export const BY_MAIN = 2;

/** What the main thread posts to the worker (src/rl/noise-worker.ts). */
export interface NoiseJob {
  id: number;
  seeds: bigint[];
  step: number | null;
  perSample: number;
  /** Int32Array over a SharedArrayBuffer of one word: QUEUED, BY_WORKER or BY_MAIN. */
  claim: Int32Array;
}

/** One draw in flight. */
export interface NoiseDraw {
  /** The noise: the worker's, or drawn here if the worker has not started it. */
  take(): Promise<Float32Array>;
  /** Who draws it (QUEUED until one side claims it). */
  readonly claim: Int32Array;
}

export class NoisePool {
  private worker?: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { job: NoiseJob; resolve: (out: Float32Array) => void }>();

  constructor(enabled = true) {
    if (!enabled) return;
    try {
      this.worker = spawnWorker();
      this.worker.on('message', (m: { id: number; out: Float32Array }) => {
        this.pending.get(m.id)?.resolve(m.out);
        this.pending.delete(m.id);
      });
      this.worker.on('error', () => {
        // Fall back to the main thread, finishing what the worker had claimed.
        this.worker = undefined;
        for (const { job, resolve } of this.pending.values()) {
          Atomics.compareExchange(job.claim, 0, QUEUED, BY_MAIN);
          resolve(draw(job));
        }
        this.pending.clear();
      });
    } catch {
      this.worker = undefined;
    }
  }

  /**
   * Noise for `seeds` at a step (null: the initial latents), as batchNoise gives it.
   *
   * @example
   *   const eps = pool.draw(seeds, 3, C * F * H * W); // start now…
   *   const noise = await eps.take(); // …take when needed
   */
  draw(seeds: readonly Seed[], step: number | null, perSample: number): NoiseDraw {
    const job: NoiseJob = {
      id: this.nextId++,
      seeds: seeds.map(BigInt),
      step,
      perSample,
      claim: new Int32Array(new SharedArrayBuffer(4)),
    };
    if (!this.worker) {
      job.claim[0] = BY_MAIN;
      return { take: async () => draw(job), claim: job.claim };
    }
    const result = new Promise<Float32Array>((resolve) => this.pending.set(job.id, { job, resolve }));
    this.worker.postMessage(job);
    return {
      claim: job.claim,
      take: () => {
        if (Atomics.compareExchange(job.claim, 0, QUEUED, BY_MAIN) !== QUEUED) return result;
        this.pending.delete(job.id); // the worker will skip it
        return Promise.resolve(draw(job));
      },
    };
  }

  /** Stop the worker. Not awaited: the thread winds down on its own while the caller goes on,
   * and unref lets the process exit meanwhile. */
  close(): void {
    this.worker?.unref();
    void this.worker?.terminate();
    this.worker = undefined;
  }
}

/**
 * The worker. Compiled, noise-worker.js sits beside this file and needs no loader (a parent's,
 * such as tsx under the bench, would only slow its boot). Under tsx (tests, bin/dev.js) it is the
 * .ts source, and loader hooks do not follow a worker (`--import tsx` in its execArgv does not
 * load it in Node 20): it registers tsx itself, then imports the source.
 */
function spawnWorker(): Worker {
  const source = import.meta.url.endsWith('.ts');
  const url = new URL(`./noise-worker${source ? '.ts' : '.js'}`, import.meta.url);
  if (!source) return new Worker(url, { execArgv: [] });
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(boot, { eval: true, execArgv: [] });
}

/** The job's noise, drawn on this thread. */
export function draw(job: Pick<NoiseJob, 'seeds' | 'step' | 'perSample'>): Float32Array {
  return batchNoise(job.seeds, job.step, job.perSample);
}
