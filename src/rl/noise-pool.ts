/**
 * Sampling noise drawn ahead on a worker thread. onnxruntime-node runs a session on the calling
 * (main) thread, so the main thread cannot draw the next step's noise while the denoiser runs;
 * a worker can, on a free core (or while a GPU computes). The values are exactly batchNoise's.
 * Close it (try/finally): an open worker keeps the process alive.
 */
import { Worker } from 'node:worker_threads';
import { batchNoise, type Seed } from './prng.js';

export class NoisePool {
  private worker?: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, (out: Float32Array) => void>();
  private readonly jobs = new Map<
    number,
    { seeds: readonly Seed[]; step: number | null; perSample: number }
  >();

  constructor(enabled = true) {
    if (!enabled) return;
    // The compiled worker sits beside this file; under tsx (tests, bin/dev.js) it is the .ts source.
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    try {
      this.worker = new Worker(new URL(`./noise-worker${ext}`, import.meta.url), {
        // Loader hooks do not follow a worker by themselves: give it tsx when running sources.
        execArgv: ext === '.ts' ? [...process.execArgv, '--import', 'tsx'] : process.execArgv,
      });
      this.worker.on('message', (m: { id: number; out: Float32Array }) => {
        this.pending.get(m.id)?.(m.out);
        this.pending.delete(m.id);
        this.jobs.delete(m.id);
      });
      this.worker.on('error', () => {
        // Fall back to the main thread, finishing what was asked of the worker.
        this.worker = undefined;
        for (const [id, job] of this.jobs) {
          this.pending.get(id)?.(batchNoise(job.seeds, job.step, job.perSample));
          this.pending.delete(id);
        }
        this.jobs.clear();
      });
    } catch {
      this.worker = undefined;
    }
  }

  /**
   * Noise for `seeds` at a step (null: the initial latents), as batchNoise gives it.
   *
   * @example
   *   const eps = pool.draw(seeds, 3, C * F * H * W); // start now, await later
   */
  draw(seeds: readonly Seed[], step: number | null, perSample: number): Promise<Float32Array> {
    if (!this.worker) return Promise.resolve(batchNoise(seeds, step, perSample));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.jobs.set(id, { seeds, step, perSample });
      this.worker!.postMessage({ id, seeds: seeds.map(BigInt), step, perSample });
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
