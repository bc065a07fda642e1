/** Worker side of the noise pool: draws the samples it claims off the main thread (see noise-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { BY_WORKER, claimAll, type NoiseJob, QUEUED } from './noise-pool.js';

parentPort!.on('message', (job: NoiseJob) => {
  claimAll(job, QUEUED, BY_WORKER);
  parentPort!.postMessage(job.id);
});
