/** The learning-rate schedules (src/rl/lr-schedule.ts) against values worked out by hand. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { learningRate, warmupCosine } from '../../src/rl/lr-schedule.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-15, `${a} vs ${b}`);

test('constant and linear warm-up', () => {
  assert.equal(learningRate(0.004, undefined, 7), 0.004);
  assert.equal(learningRate(0.004, { kind: 'constant', warmup_steps: 0, min_lr: 0 }, 1), 0.004);
  const w = { kind: 'warmup', warmup_steps: 4, min_lr: 0 } as const;
  // t/W of lr for t = 1..4, then lr
  assert.deepEqual(
    [1, 2, 3, 4, 5, 100].map((t) => learningRate(0.004, w, t)),
    [0.001, 0.002, 0.003, 0.004, 0.004, 0.004],
  );
});

test('cosine: warm-up, then a half cosine from lr to min_lr at total_steps', () => {
  const c = { kind: 'cosine', warmup_steps: 2, total_steps: 6, min_lr: 0.001 } as const;
  // t = 1, 2: warm-up 0.5·lr, lr. t = 3..6: p = 1/4, 2/4, 3/4, 1;
  // lr_t = 0.001 + 0.003·½(1 + cos πp): cos π/4 = √½, cos π/2 = 0, cos 3π/4 = −√½, cos π = −1.
  const want = [
    0.002,
    0.004,
    0.001 + 0.0015 * (1 + Math.SQRT1_2),
    0.0025,
    0.001 + 0.0015 * (1 - Math.SQRT1_2),
    0.001,
    0.001,
  ];
  for (const [k, v] of want.entries()) close(learningRate(0.004, c, k + 1), v);
  // Without warm-up the first step is already on the cosine: p = 1/4 of 4 steps.
  close(
    learningRate(1, { kind: 'cosine', warmup_steps: 0, total_steps: 4, min_lr: 0 }, 1),
    0.5 * (1 + Math.SQRT1_2),
  );
});

test('config: the schedule keys are checked and named', () => {
  assert.throws(
    () => resolveConfig([{ grpo: { lr_schedule: { kind: 'cosine', warmup_steps: 3, total_steps: 3 } } }]),
    /grpo\.lr_schedule\.total_steps: kind cosine needs total_steps > warmup_steps/,
  );
  assert.throws(
    () => resolveConfig([{ grpo: { lr_schedule: { kind: 'warmup' } } }]),
    /grpo\.lr_schedule\.warmup_steps/,
  );
  assert.throws(
    () => resolveConfig([{ grpo: { lr_schedule: { kind: 'linear' } } }]),
    /grpo\.lr_schedule\.kind/,
  );
  assert.throws(
    () => resolveConfig([{ grpo: { lr_schedule: { kind: 'constant', warmup: 2 } } }]),
    /unknown config key grpo\.lr_schedule\.warmup/,
  );
});

test("the toy trainers' warmupCosine: (s+1)/w warm-up, lr right after it, floor·lr at the last step", () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-15, `${a} vs ${b}`);
  close(warmupCosine(1, 0, 11, 4, 0.1), 0.25);
  close(warmupCosine(1, 3, 11, 4, 0.1), 1);
  close(warmupCosine(1, 4, 11, 4, 0.1), 1); // p = 0
  close(warmupCosine(1, 7.5, 11, 4, 0.1), 0.55); // p = ½: halfway between 1 and 0.1
  close(warmupCosine(2, 11, 11, 4, 0.1), 0.2); // p = 1
});
