/**
 * The noise pool (src/rl/noise-pool.ts) gives batchNoise's values whichever thread draws them:
 * the worker, or the main thread when it takes a draw the worker has not started.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BY_MAIN, BY_WORKER, NoisePool } from '../../src/rl/noise-pool.js';
import { batchNoise, sampleSeed } from '../../src/rl/prng.js';

const seeds = [0, 1, 2].map((k) => sampleSeed(11, k));
const M = 4099;

test('drawn by the worker or taken by the main thread: exactly batchNoise', async () => {
  const pool = new NoisePool();
  try {
    // Taken at once, while the worker is still booting: the main thread claims it.
    const early = pool.draw(seeds, null, M);
    assert.deepEqual(await early.take(), batchNoise(seeds, null, M));
    assert.deepEqual([...early.claim], [BY_MAIN, BY_MAIN, BY_MAIN]);
    // Left to the worker: a few draws ahead, taken once they are all done.
    const ahead = [0, 1, 2].map((step) => pool.draw(seeds, step, M));
    const last = pool.draw(seeds, 3, M);
    for (let ms = 0; Atomics.load(last.claim, 2) !== BY_WORKER; ms += 10) {
      assert.ok(ms < 60_000, 'the worker never started its jobs (did it fail to boot?)');
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const [step, d] of [...ahead, last].entries()) {
      assert.deepEqual(await d.take(), batchNoise(seeds, step, M), `step ${step}`);
      assert.deepEqual([...d.claim], [BY_WORKER, BY_WORKER, BY_WORKER], `step ${step} drawn by the worker`);
    }
  } finally {
    pool.close();
  }
});

test('a draw taken while the worker is on it: each sample drawn once by one side, the values are batchNoise', async () => {
  const pool = new NoisePool();
  try {
    // Keep the worker busy, then take a draw as soon as the worker has claimed its first sample.
    const big = 200_003;
    const busy = pool.draw(seeds, 7, big);
    const d = pool.draw([...seeds, ...seeds], 8, big);
    for (let ms = 0; Atomics.load(d.claim, 0) === 0; ms += 1) {
      assert.ok(ms < 60_000, 'the worker never started');
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.deepEqual(await d.take(), batchNoise([...seeds, ...seeds], 8, big));
    assert.deepEqual(await busy.take(), batchNoise(seeds, 7, big));
    assert.ok(d.claim.includes(BY_WORKER), 'the worker drew some');
  } finally {
    pool.close();
  }
});

test('without a worker, draws are batchNoise on the main thread', async () => {
  const pool = new NoisePool(false);
  const d = pool.draw(seeds, 5, M);
  assert.deepEqual(await d.take(), batchNoise(seeds, 5, M));
  pool.close();
});
