/** Worker side of the noise pool: draws batchNoise off the main thread (see noise-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { batchNoise } from './prng.js';

parentPort!.on('message', (m: { id: number; seeds: bigint[]; step: number | null; perSample: number }) => {
  const out = batchNoise(m.seeds, m.step, m.perSample);
  parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
});
