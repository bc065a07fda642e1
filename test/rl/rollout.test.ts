/**
 * The rollout layout (src/rl/rollout.ts): micro-batch slices, the CFG batch [uncond × n; cond × n],
 * and units cut per micro-batch with a non-finite member leaving out only its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import {
  batchContext,
  batchLatents,
  microBatchSlices,
  rolloutLayout,
  rolloutUnits,
  stepVelocity,
  type TrajectoryView,
} from '../../src/rl/rollout.js';

test('micro-batch slices: whole group by default, the last one smaller', () => {
  assert.deepEqual(microBatchSlices(8, 3), [
    [0, 3],
    [3, 6],
    [6, 8],
  ]);
  assert.deepEqual(microBatchSlices(4, 4), [[0, 4]]);
  assert.equal(rolloutLayout({ group_size: 6, guidance: 1 }).microBatch, 6);
  assert.equal(rolloutLayout({ group_size: 6, micro_batch: 2, guidance: 1 }).microBatch, 2);
  assert.throws(
    () => rolloutLayout({ group_size: 2, micro_batch: 3, guidance: 1 }),
    (e: unknown) => e instanceof InputError && e.where === 'sampler.micro_batch',
  );
});

test('with guidance a micro-batch of n runs as [uncond × n; cond × n], and v = v_u + g(v_c − v_u)', () => {
  const layout = rolloutLayout({ group_size: 4, micro_batch: 2, guidance: 3 });
  const L = 1;
  const D = 2;
  const ctx = batchContext(
    layout,
    [Float32Array.of(1, 2), Float32Array.of(3, 4)],
    Float32Array.of(9, 9),
    L,
    D,
  );
  assert.deepEqual(ctx.shape, [4, 1, 2]);
  assert.deepEqual([...(ctx.data as Float32Array)], [9, 9, 9, 9, 1, 2, 3, 4]);
  assert.deepEqual([...batchLatents(layout, Float32Array.of(5, 6))], [5, 6, 5, 6]);
  // v_u = [1, 1], v_c = [2, 4]: 1 + 3·1 = 4, 1 + 3·3 = 10.
  assert.deepEqual([...stepVelocity(layout, Float32Array.of(1, 1, 2, 4))], [4, 10]);
  const plain = rolloutLayout({ group_size: 4, guidance: 1 });
  assert.deepEqual(
    [...(batchContext(plain, [Float32Array.of(1, 2)], undefined, L, D).data as Float32Array)],
    [1, 2],
  );
});

test('units: one per micro-batch of each group; a non-finite sample drops only its micro-batch', () => {
  const B = 6;
  const T = 1;
  const M = 2;
  const latents = new Float32Array(B * (T + 1) * M);
  latents[4 * (T + 1) * M + 1] = Number.NaN; // sample 4: group 1, second micro-batch
  const view = {
    path: 'traj.safetensors',
    policy: '',
    sampler: { group_size: 3, micro_batch: 2, guidance: 1 },
    layout: rolloutLayout({ group_size: 3, micro_batch: 2, guidance: 1 }),
    B,
    T,
    M,
    L: 1,
    D: 1,
    latents,
    logProbs: new Float32Array(B * T),
    context: new Float32Array(B),
    stepIndex: [0],
    sigmas: Float32Array.of(1, 0.5, 0),
    group: [0, 0, 0, 1, 1, 1],
  } as unknown as TrajectoryView;
  const skipped: string[] = [];
  const units = rolloutUnits(view, skipped);
  assert.deepEqual(
    units.map((u) => u.members),
    [[0, 1], [2], [5]],
  );
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!, /group 1 samples 0–1 skipped \(sample 4/);
});
