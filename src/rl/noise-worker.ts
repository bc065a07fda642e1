/** Worker side of the noise pool: draws batchNoise off the main thread (see noise-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { BY_WORKER, draw, type NoiseJob, QUEUED } from './noise-pool.js';

parentPort!.on('message', (job: NoiseJob) => {
  // A job the main thread has claimed meanwhile is its to draw.
  if (Atomics.compareExchange(job.claim, 0, QUEUED, BY_WORKER) !== QUEUED) return;
  const out = draw(job);
  parentPort!.postMessage({ id: job.id, out }, [out.buffer as ArrayBuffer]);
});
