/**
 * Micro-batches smaller than a group (sampler.micro_batch): `sample` runs a group of 3 as
 * batches of 2 and 1 ([uncond × n; cond × n] with guidance), records it, and `grpo-step`
 * reproduces the recorded log-probs exactly (r = 1, not just within assertRatioOne's tolerance).
 * The denoiser here is the toy's plus half the batch mean of its velocity, so its output depends
 * on the batch composition (on CPU the toy's own does not, bit for bit): a grpo-step that ran
 * another layout would see r ≠ 1. Sampler settings come from the trajectory: a --config that
 * contradicts them is exit 2 naming the key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { attr } from '../../src/onnx/builder.js';
import { loadModel, makeTensor, saveModel } from '../../src/onnx/model.js';
import { assertRatioOne } from '../../src/rl/grpo.js';
import { loadPolicy } from '../../src/rl/policy.js';
import { microBatchGradient } from '../../src/rl/policy-gradient.js';
import { trajectoryView, unitMicroBatch } from '../../src/rl/rollout.js';
import type { ModelSession } from '../../src/runtime/session.js';
import type { Shard } from '../../src/shards/shard.js';
import { readShard } from '../../src/shards/shard.js';
import { findTrajectory, gradientSession, microBatches } from '../../src/stages/grpo-step.js';
import { BIN, oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const advantages = (rw: Shard) => rw.tensors.get('advantages')!.data as Float32Array;

const dir = tempDir('vggrpo-mb-');
const prompts = join(dir, 'prompts.txt');
writeFileSync(prompts, 'orbit around the red box\ndolly toward the blue sphere\npan across the room\n');

/** The toy denoiser with v ← v + ½·mean over the batch of v: a batch-coupled model. */
function batchCoupledDenoiser(path: string): string {
  const m = loadModel(join(ROOT, 'onnx/fixtures/denoiser.onnx'));
  const g = m.graph!;
  const producer = g.node!.find((n) => n.output?.includes('velocity'))!;
  producer.output = producer.output!.map((o) => (o === 'velocity' ? 'velocity:own' : o));
  g.initializer = [
    ...(g.initializer ?? []),
    makeTensor('coupling:axes', [1], BigInt64Array.of(0n)),
    makeTensor('coupling:half', [], Float32Array.of(0.5)),
  ];
  g.node!.push(
    {
      opType: 'ReduceMean',
      input: ['velocity:own', 'coupling:axes'],
      output: ['velocity:mean'],
      attribute: [attr('keepdims', 1)],
      name: 'coupling:mean',
    },
    {
      opType: 'Mul',
      input: ['velocity:mean', 'coupling:half'],
      output: ['velocity:shared'],
      name: 'coupling:mul',
    },
    { opType: 'Add', input: ['velocity:own', 'velocity:shared'], output: ['velocity'], name: 'coupling:add' },
  );
  saveModel(m, path);
  return path;
}
const coupled = batchCoupledDenoiser(join(dir, 'coupled-denoiser.onnx'));

/** The toy config at a small size with the batch-coupled denoiser, with `sampler` overrides. */
function configFile(name: string, sampler: Record<string, unknown>): string {
  const doc = parse(readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8'));
  for (const k of Object.keys(doc.models))
    if (typeof doc.models[k] === 'string') doc.models[k] = join(ROOT, 'examples/toy', doc.models[k]);
  doc.models.denoiser = coupled;
  Object.assign(doc.sampler, { group_size: 3, steps: 4, per_shard: 2, ...sampler });
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(doc));
  return path;
}

/** sample → decode-geometry → score into `run`; the reward shards. */
function rollouts(cfg: string, run: string): string[] {
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} sample --config ${cfg} --threads 1 --prompts ${prompts} --out ${run}/trajectory | node ${BIN} decode-geometry | node ${BIN} score > /dev/null`,
  ]);
  return readdirSync(join(run, 'rewards')).map((f) => join(run, 'rewards', f));
}

for (const guidance of [1, 3]) {
  test(`micro_batch 2 of a group of 3, guidance ${guidance}: recorded, and the ratio is exactly 1`, async () => {
    const cfg = configFile(`mb-g${guidance}`, { micro_batch: 2, guidance });
    const run = join(dir, `run-g${guidance}`);
    const rewards = rollouts(cfg, run);
    const traj = findTrajectory(readShard(rewards[0]!, 'rewards'));
    assert.equal(
      (traj.config.sampler as Record<string, unknown>).micro_batch,
      2,
      'recorded in the trajectory',
    );

    const step = await runCli(['grpo-step', ...rewards, '--out', join(run, 'policy'), '--json']);
    assert.equal(step.code, 0, step.stderr);
    const m = JSON.parse(step.stdout).metrics;
    assert.equal(m.ratio_min, 1);
    assert.equal(m.ratio_max, 1);
    assert.ok(m.grad_norm > 0);

    // Each micro-batch recomputed as grpo-step does: the log-probs equal the recorded ones bit for bit.
    const config = resolveConfig([traj.config]);
    const policy = await loadPolicy(config);
    const sessions = new Map<string, ModelSession>();
    try {
      const sizes: number[] = [];
      const r = { rewards: readShard(rewards[0]!, 'rewards'), trajectory: traj };
      const gradOptions = {
        clipRange: 1e-3,
        klBeta: 0,
        klForm: 'true' as const,
        noiseLevel: config.sampler.noise_level,
        guidance,
        weight: 1,
      };
      for (const mb of microBatches(r, [0, 1], [])) {
        sizes.push(mb.batch);
        assert.equal(mb.context.shape[0], guidance === 1 ? mb.batch : 2 * mb.batch);
        const nb = guidance === 1 ? mb.batch : 2 * mb.batch;
        const res = await microBatchGradient(
          policy,
          await gradientSession(policy, config, nb, sessions),
          mb,
          gradOptions,
        );
        assertRatioOne(res.logpNew, mb.logpOld, 0);
      }
      // Two groups in the first shard, each as 2 + 1, at each of the two recorded steps.
      assert.deepEqual(sizes, [2, 2, 1, 1, 2, 2, 1, 1]);
      // The control: group 0 recomputed as one batch of 3 misses the recorded log-probs.
      const view = trajectoryView(traj, config.sampler);
      const whole = unitMicroBatch({ view, groupId: 0, members: [0, 1, 2] }, advantages(r.rewards), 1);
      const nb = guidance === 1 ? 3 : 6;
      const res = await microBatchGradient(
        policy,
        await gradientSession(policy, config, nb, sessions),
        whole,
        gradOptions,
      );
      assert.throws(() => assertRatioOne(res.logpNew, whole.logpOld), /GRPO ratio ≠ 1/);
    } finally {
      for (const s of sessions.values()) await s.release();
      await policy.session.release();
    }
  });
}

test('a --config that contradicts the trajectory’s sampler settings is exit 2 naming the key', async () => {
  const rewards = readdirSync(join(dir, 'run-g1', 'rewards')).map((f) => join(dir, 'run-g1', 'rewards', f));
  for (const [key, value, pattern] of [
    ['guidance', 2, /sampler\.guidance: 2 contradicts 1 recorded in .*trajectory\/shard-0000\.safetensors/],
    ['micro_batch', 1, /sampler\.micro_batch: 1 contradicts 2 recorded in /],
    ['noise_level', 0.5, /sampler\.noise_level: 0\.5 contradicts 0\.7 recorded in /],
  ] as const) {
    const cfg = configFile(`bad-${key}`, { micro_batch: 2, [key]: value });
    const r = await runCli(['grpo-step', ...rewards, '--config', cfg, '--out', join(dir, `p-${key}`)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    oneLine(r.stderr);
  }
  // Keys the shard's own tensors fix (steps: its sigmas) are taken from it, with a warning.
  const steps = configFile('steps', { micro_batch: 2, steps: 6 });
  const ok = await runCli(['grpo-step', ...rewards, '--config', steps, '--out', join(dir, 'p-steps')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /warning: sampler\.steps 6 ignored: .* was sampled with 4/);
});
