/**
 * Sampling noise drawn ahead on a worker thread. onnxruntime-node runs a session on the calling
 * (main) thread, so the main thread cannot draw the next step's noise while the denoiser runs;
 * a worker can, on a free core (or while a GPU computes). The values are exactly batchNoise's,
 * whichever thread draws them.
 *
 * Each sample of a draw is claimed by one side (a compare-and-swap on a shared word): by the
 * worker when it gets to it, or by the main thread when the noise is needed before the worker
 * has started it (the worker still booting, or busy with an earlier draw). So taking a draw never
 * waits longer than drawing its unstarted samples here would take, and both threads work on a
 * late one. Close it (try/finally): an open worker keeps the process alive.
 */
import { Worker } from 'node:worker_threads';
import { type Seed, sampleNoise } from './prng.js';

/** A sample's claim word: who draws it. */
export const QUEUED = 0;
export const BY_WORKER = 1;
export const BY_MAIN = 2;

/** What the main thread posts to the worker (src/rl/noise-worker.ts). */
export interface NoiseJob {
  id: number;
  seeds: bigint[];
  step: number | null;
  perSample: number;
  /** One word per sample, over a SharedArrayBuffer: QUEUED, BY_WORKER or BY_MAIN. */
  claim: Int32Array;
  /** The noise [seeds.length · perSample], over a SharedArrayBuffer both threads write. */
  out: Float32Array;
}

/** One draw in flight. */
export interface NoiseDraw {
  /** The noise: the worker's samples and those drawn here, over shared memory (onnxruntime
   * refuses a SharedArrayBuffer: `slice()` it to feed it). */
  take(): Promise<Float32Array>;
  /** Who draws each sample (QUEUED until one side claims it). */
  readonly claim: Int32Array;
}

export class NoisePool {
  private worker?: Worker;
  private nextId = 0;
  /** Draws the worker has not reported done, with what resolves their `done`. */
  private readonly pending = new Map<number, { job: NoiseJob; done: () => void }>();

  constructor(enabled = true) {
    if (!enabled) return;
    try {
      this.worker = spawnWorker();
      this.worker.on('message', (id: number) => {
        this.pending.get(id)?.done();
        this.pending.delete(id);
      });
      this.worker.on('error', () => {
        // Fall back to the main thread, redrawing what the worker had claimed (it may not have finished).
        this.worker = undefined;
        for (const { job, done } of this.pending.values()) {
          claimAll(job, BY_WORKER, BY_MAIN);
          done();
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
    const n = seeds.length;
    const job: NoiseJob = {
      id: this.nextId++,
      seeds: seeds.map(BigInt),
      step,
      perSample,
      claim: new Int32Array(new SharedArrayBuffer(4 * n)),
      out: new Float32Array(new SharedArrayBuffer(4 * n * perSample)),
    };
    const done = this.worker
      ? new Promise<void>((resolve) => this.pending.set(job.id, { job, done: resolve }))
      : Promise.resolve();
    this.worker?.postMessage(job);
    return {
      claim: job.claim,
      take: async () => {
        claimAll(job, QUEUED, BY_MAIN);
        if (job.claim.includes(BY_WORKER)) await done;
        return job.out;
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
 * Claim as `by` every sample of the job still marked `from`, and draw it into job.out. The
 * worker calls it with (QUEUED, BY_WORKER); the main thread with (QUEUED, BY_MAIN), or with
 * (BY_WORKER, BY_MAIN) to redraw after the worker failed.
 */
export function claimAll(job: NoiseJob, from: number, by: number): void {
  for (let b = 0; b < job.seeds.length; b++) {
    if (Atomics.compareExchange(job.claim, b, from, by) !== from) continue;
    job.out.set(sampleNoise(job.seeds[b]!, job.step, job.perSample), b * job.perSample);
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
