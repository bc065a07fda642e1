/**
 * How much signal the policy gradient of one batch carries, step by step: the GRPO gradient of
 * each recorded denoising step is computed on several independent batches of the same policy,
 * and the mean pairwise cosine between batches is printed. A step whose gradients agree between
 * batches carries signal; one whose cosine is ≈ 0 carries only the injected noise (and, with
 * Adam, still claims its share of every update). This is what chose the demo's `sde_window`.
 *
 *   for s in 100 101 102 103; do
 *     node bin/run.js sample --config C --prompts P --seed $s --out /tmp/a$s/trajectory \
 *       | node bin/run.js decode-geometry | node bin/run.js score > /dev/null
 *   done
 *   node --import tsx examples/toy/gradient-agreement.ts C /tmp/a100 /tmp/a101 /tmp/a102 /tmp/a103
 *
 * Each run folder holds rewards/ beside trajectory/; every batch is scored by the base policy
 * (or pass --policy DIR before the config for a checkpoint).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/config/load.js';
import { loadPolicy } from '../../src/rl/policy.js';
import { microBatchGradient } from '../../src/rl/policy-gradient.js';
import type { ModelSession } from '../../src/runtime/session.js';
import { readShard } from '../../src/shards/shard.js';
import { toNumbers } from '../../src/shards/tensor.js';
import { findTrajectory, gradientSession, microBatches } from '../../src/stages/grpo-step.js';

const args = process.argv.slice(2);
const policyDir = args[0] === '--policy' ? args[1] : undefined;
const [configPath, ...runs] = policyDir ? args.slice(2) : args;
if (!configPath || runs.length < 2) {
  console.error('usage: gradient-agreement.ts [--policy DIR] CONFIG RUN RUN [RUN…]');
  process.exit(2);
}
const config = resolveConfig([readConfigFile(configPath)]);

/** Per recorded step, the batch's whole LoRA gradient as one vector. */
async function stepGradients(run: string): Promise<Float64Array[]> {
  const dir = join(run, 'rewards');
  const rollouts = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => {
      const rewards = readShard(join(dir, f), 'rewards');
      return { rewards, trajectory: findTrajectory(rewards) };
    });
  const policy = await loadPolicy(config, policyDir);
  const sessions = new Map<string, ModelSession>();
  const stepIndex = toNumbers(rollouts[0]!.trajectory.tensors.get('step_index')!);
  const T = stepIndex.length;
  const out: Float64Array[] = [];
  try {
    for (const r of rollouts) {
      for (const mb of microBatches(r, [...Array(T).keys()], [])) {
        const session = await gradientSession(policy, config, mb.batch, sessions);
        const res = await microBatchGradient(policy, session, mb, {
          clipRange: config.grpo.clip_range,
          klBeta: 0,
          klForm: config.grpo.kl_form,
          noiseLevel: config.sampler.noise_level,
          guidance: config.sampler.guidance,
          weight: 1,
        });
        const t = stepIndex.indexOf(mb.stepIndex);
        const n = [...res.grads.values()].reduce((a, g) => a + g.length, 0);
        out[t] ??= new Float64Array(n);
        let o = 0;
        for (const g of res.grads.values()) for (const v of g) out[t]![o++]! += v;
      }
    }
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
  return out;
}

function cosine(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return d / Math.sqrt(na * nb);
}

function meanPairwise(vs: Float64Array[]): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < vs.length; i++)
    for (let j = i + 1; j < vs.length; j++) {
      s += cosine(vs[i]!, vs[j]!);
      n++;
    }
  return s / n;
}

const sumOf = (vs: Float64Array[]) => {
  const o = new Float64Array(vs[0]!.length);
  for (const v of vs) for (let i = 0; i < o.length; i++) o[i]! += v[i]!;
  return o;
};

const batches: Float64Array[][] = [];
for (const run of runs) batches.push(await stepGradients(run));
console.log('step  mean pairwise cosine  |gradient| (first batch)');
for (let t = 0; t < batches[0]!.length; t++) {
  const norm = Math.sqrt(batches[0]![t]!.reduce((a, v) => a + v * v, 0));
  console.log(
    `${String(t).padStart(4)}  ${meanPairwise(batches.map((b) => b[t]!))
      .toFixed(3)
      .padStart(20)}  ${norm.toExponential(2)}`,
  );
}
console.log(`all steps summed: ${meanPairwise(batches.map(sumOf)).toFixed(3)}`);
