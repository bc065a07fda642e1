/**
 * `grpo-step` gradient cost per micro-batch on the toy fixtures: the first inner step's one-run
 * gradient (the graph computes its own velocity cotangent) against forward-then-VJP, the form
 * every later inner step uses. Both give the same gradient (test/stages/pipeline.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readConfigFile, resolveConfig } from '../src/config/load.js';
import { loadPolicy } from '../src/rl/policy.js';
import { microBatchGradient, onePassGradient } from '../src/rl/policy-gradient.js';
import type { ModelSession } from '../src/runtime/session.js';
import { readShard } from '../src/shards/shard.js';
import { findTrajectory, gradientSession, microBatches } from '../src/stages/grpo-step.js';
import { tempDir } from '../test/helpers.js';

export async function benchGrpoStep(): Promise<Record<string, number | string>> {
  const root = resolve(import.meta.dirname, '..');
  const cfgPath = resolve(root, 'examples/toy/analytic.yaml');
  const run = tempDir('vggrpo-bench-grpo-');
  const bin = resolve(root, 'bin/run.js');
  execFileSync(
    'bash',
    [
      '-o',
      'pipefail',
      '-c',
      `node ${bin} sample --config ${cfgPath} --prompts ${resolve(root, 'examples/toy/prompts.txt')} --out ${run}/trajectory | node ${bin} decode-geometry | node ${bin} score > /dev/null`,
    ],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  const config = resolveConfig([readConfigFile(cfgPath)]);
  const policy = await loadPolicy(config);
  const sessions = new Map<string, ModelSession>();
  const dir = join(run, 'rewards');
  const settings = {
    clipRange: config.grpo.clip_range,
    klBeta: 0,
    klForm: config.grpo.kl_form,
    noiseLevel: config.sampler.noise_level,
    guidance: 1,
    weight: 1,
  };
  const times = { one: [] as number[], two: [] as number[] };
  let batches = 0;
  try {
    for (const f of readdirSync(dir)) {
      const rewards = readShard(join(dir, f), 'rewards');
      const rollouts = { rewards, trajectory: findTrajectory(rewards) };
      const T = rollouts.trajectory.tensors.get('log_probs')!.shape[1]!;
      for (const mb of microBatches(rollouts, [...Array(T).keys()], [])) {
        const s1 = await gradientSession(policy, config, mb.batch, sessions, true);
        const s2 = await gradientSession(policy, config, mb.batch, sessions);
        // Alternate, three times each, keeping the fastest (the least disturbed by the other core's load).
        let one = Number.POSITIVE_INFINITY;
        let two = Number.POSITIVE_INFINITY;
        for (let k = 0; k < 3; k++) {
          let t = performance.now();
          await onePassGradient(policy, s1, mb, settings);
          one = Math.min(one, performance.now() - t);
          t = performance.now();
          await microBatchGradient(policy, s2, mb, settings);
          two = Math.min(two, performance.now() - t);
        }
        times.one.push(one);
        times.two.push(two);
        batches++;
      }
    }
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  return {
    'grpo-step: micro-batches (group × recorded step)': batches,
    'grpo-step: forward-then-VJP ms per micro-batch': Number((sum(times.two) / batches).toFixed(1)),
    'grpo-step: one-run ms per micro-batch': Number((sum(times.one) / batches).toFixed(1)),
    'grpo-step: one-run ÷ forward-then-VJP (first inner step)': Number(
      (sum(times.one) / sum(times.two)).toFixed(3),
    ),
  };
}
