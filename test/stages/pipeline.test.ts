/**
 * The stages on the toy fixtures, as a user runs them: files and pipes give the same shards,
 * sampling is deterministic, recorded log-probs are reproduced by grpo-step (ratio 1), and bad
 * input exits 2.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { loadPolicy, velocity } from '../../src/rl/policy.js';
import { microBatchGradient, onePassGradient } from '../../src/rl/policy-gradient.js';
import { sdeStep } from '../../src/rl/sde.js';
import type { ModelSession } from '../../src/runtime/session.js';
import { readSafetensors, writeSafetensors } from '../../src/shards/safetensors.js';
import { readShard } from '../../src/shards/shard.js';
import { f32, toNumbers } from '../../src/shards/tensor.js';
import { findTrajectory, gradientSession, microBatches } from '../../src/stages/grpo-step.js';
import { BIN, oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const CONFIG = join(ROOT, 'examples/toy/analytic.yaml');
const dir = tempDir('vggrpo-pipe-');
const cfg = join(dir, 'small.yaml');
const prompts = join(dir, 'prompts.txt');
writeFileSync(
  cfg,
  readFileSync(CONFIG, 'utf8').replace(/\.\.\/\.\.\/onnx\//g, `${join(ROOT, 'onnx')}/`) + '\n',
);
writeFileSync(prompts, 'orbit around the red box\ndolly toward the blue sphere\npan across the room\n');
const small = ['--config', cfg, '--group-size', '3', '--steps', '4', '--per-shard', '2', '--threads', '1'];

function files(d: string): string[] {
  return readdirSync(d)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
}

test('sample → decode-geometry → score: files and a pipe give identical shards', async () => {
  const a = join(dir, 'a');
  const s = await runCli(['sample', ...small, '--prompts', prompts, '--out', join(a, 'trajectory')]);
  assert.equal(s.code, 0, s.stderr);
  const trajPaths = s.stdout.trim().split('\n');
  assert.equal(trajPaths.length, 2, 'three groups at two per shard → two shards');
  const g = await runCli(['decode-geometry', ...trajPaths]);
  assert.equal(g.code, 0, g.stderr);
  const geomPaths = g.stdout.trim().split('\n');
  assert.deepEqual(
    geomPaths,
    trajPaths.map((p) => p.replace('/trajectory/', '/geometry/')),
    'default --out: geometry/ beside trajectory/',
  );
  const r = await runCli(['score', ...geomPaths]);
  assert.equal(r.code, 0, r.stderr);

  const b = join(dir, 'b');
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} sample ${small.join(' ')} --prompts ${prompts} --out ${b}/trajectory | node ${BIN} decode-geometry | node ${BIN} score > ${b}-paths.txt`,
  ]);
  for (const kind of ['trajectory', 'geometry', 'rewards']) {
    assert.deepEqual(files(join(a, kind)), files(join(b, kind)));
    for (const f of files(join(a, kind))) {
      const x = readSafetensors(join(a, kind, f));
      const y = readSafetensors(join(b, kind, f));
      for (const [name, t] of x.tensors)
        assert.deepEqual(y.tensors.get(name)!.data, t.data, `${kind}/${f}: ${name}`);
    }
  }
  const rw = readShard(join(a, 'rewards', files(join(a, 'rewards'))[0]!), 'rewards');
  for (const name of ['reward/motion', 'reward/reprojection', 'advantages']) {
    const v = rw.tensors.get(name)!.data as Float32Array;
    assert.ok(v.every(Number.isFinite), name);
  }
  const motion = rw.tensors.get('reward/motion')!.data as Float32Array;
  assert.ok(
    motion.every((m) => m >= 0.5 && m <= 1),
    'r_motion ∈ [½, 1]',
  );
  // advantages are z-scores within each group: they sum to ~0 per group
  const adv = rw.tensors.get('advantages')!.data as Float32Array;
  const groups = toNumbers(rw.tensors.get('group_index')!);
  for (const gi of new Set(groups)) {
    const sum = groups.reduce((acc, gg, i) => (gg === gi ? acc + adv[i]! : acc), 0);
    assert.ok(Math.abs(sum) < 1e-3, `group ${gi} advantages sum ${sum}`);
  }
});

test('sampling is deterministic and the recorded log-prob is reproduced exactly', async () => {
  const out1 = join(dir, 'd1');
  const out2 = join(dir, 'd2');
  for (const o of [out1, out2]) {
    const r = await runCli(['sample', ...small, '--prompts', prompts, '--out', o]);
    assert.equal(r.code, 0, r.stderr);
  }
  for (const f of files(out1)) assert.deepEqual(readFileSync(join(out1, f)), readFileSync(join(out2, f)), f);

  const traj = readShard(join(out1, files(out1)[0]!), 'trajectory');
  const config = resolveConfig([traj.config]);
  const policy = await loadPolicy(config);
  try {
    const lat = traj.tensors.get('latents')!;
    const [B, T1] = lat.shape as [number, number];
    const M = lat.data.length / (B * T1);
    const G = config.sampler.group_size;
    const ctx = traj.tensors.get('context')!;
    const [, L, D] = ctx.shape as [number, number, number];
    const sigmas = traj.tensors.get('sigmas')!.data as Float32Array;
    const steps = toNumbers(traj.tensors.get('step_index')!);
    const logp = traj.tensors.get('log_probs')!.data as Float32Array;
    const t = 1;
    // group 0 as one batch, as sample ran it
    const x = new Float32Array(G * M);
    const next = new Float32Array(G * M);
    for (let b = 0; b < G; b++) {
      x.set((lat.data as Float32Array).subarray((b * T1 + t) * M, (b * T1 + t + 1) * M), b * M);
      next.set((lat.data as Float32Array).subarray((b * T1 + t + 1) * M, (b * T1 + t + 2) * M), b * M);
    }
    const v = await velocity(
      policy,
      x,
      G,
      sigmas[steps[t]!]!,
      f32([G, L, D], (ctx.data as Float32Array).slice(0, G * L * D)),
    );
    const r = sdeStep({ x, v, sigmas, i: steps[t]!, batch: G, noiseLevel: config.sampler.noise_level, next });
    for (let b = 0; b < G; b++)
      assert.ok(Math.abs(r.logProb[b]! - logp[b * (T1 - 1) + t]!) <= 1e-6, `sample ${b}`);
  } finally {
    await policy.session.release();
  }
});

test('initial noise: a group shares it with --initial-noise group, each sample draws its own otherwise', async () => {
  const starts = async (mode: string) => {
    const o = join(dir, `noise-${mode}`);
    const r = await runCli(['sample', ...small, '--prompts', prompts, '--initial-noise', mode, '--out', o]);
    assert.equal(r.code, 0, r.stderr);
    const traj = readShard(join(o, files(o)[0]!), 'trajectory');
    const lat = traj.tensors.get('latents')!;
    const [B, T1] = lat.shape as [number, number];
    const M = lat.data.length / (B * T1);
    const x0 = (b: number) => (lat.data as Float32Array).subarray(b * T1 * M, b * T1 * M + M);
    const same = (a: number, b: number) => x0(a).every((v, j) => v === x0(b)[j]);
    return { same, group: toNumbers(traj.tensors.get('group_index')!), logp: traj.tensors.get('log_probs')! };
  };
  const g = await starts('group');
  assert.deepEqual(g.group, [0, 0, 0, 1, 1, 1]);
  assert.ok(g.same(0, 1) && g.same(1, 2) && g.same(3, 5), 'members of a group start alike');
  assert.ok(!g.same(0, 3), 'groups start apart');
  const s = await starts('sample');
  assert.ok(!s.same(0, 1) && !s.same(3, 4), 'each sample its own start');
  // The recorded steps still draw each sample's own noise: the rollouts diverge.
  const lp = g.logp.data as Float32Array;
  const T = g.logp.shape[1]!;
  assert.notEqual(lp[0 * T + T - 1], lp[1 * T + T - 1]);
});

test('grpo-step: ratio 1 on the first inner step, a checkpoint the sampler accepts, grads-only + apply', async () => {
  const run = join(dir, 'run');
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} sample ${small.join(' ')} --prompts ${prompts} --out ${run}/trajectory | node ${BIN} decode-geometry | node ${BIN} score > /dev/null`,
  ]);
  const rewards = readdirSync(join(run, 'rewards')).map((f) => join(run, 'rewards', f));
  const step = await runCli(['grpo-step', ...rewards, '--out', join(run, 'policy'), '--json']);
  assert.equal(step.code, 0, step.stderr);
  const res = JSON.parse(step.stdout);
  assert.equal(res.checkpoint, join(run, 'policy'));
  assert.ok(Math.abs(res.metrics.ratio_min - 1) < 1e-5 && Math.abs(res.metrics.ratio_max - 1) < 1e-5);
  assert.ok(res.metrics.grad_norm > 0, 'a real gradient');
  for (const f of [
    'adapter_model.safetensors',
    'adapter_config.json',
    'optimizer.safetensors',
    'state.json',
  ]) {
    assert.ok(readdirSync(join(run, 'policy')).includes(f), f);
  }
  // The update climbs the GRPO objective: Σ_b A_b·logp_b over the recorded steps rises.
  const before = await advantageWeightedLogProb(rewards, undefined);
  const after = await advantageWeightedLogProb(rewards, join(run, 'policy'));
  assert.ok(after > before, `Σ A·logp should rise after one step: ${before} → ${after}`);
  const again = await runCli([
    'sample',
    ...small,
    '--prompts',
    prompts,
    '--policy',
    join(run, 'policy'),
    '--out',
    join(run, 'next'),
  ]);
  assert.equal(again.code, 0, again.stderr);

  // Map-reduce: gradients per shard, averaged and applied, equal the single update.
  const grads = await Promise.all(
    rewards.map((r) => runCli(['grpo-step', r, '--grads-only', '--out', join(run, 'grads')])),
  );
  for (const gr of grads) assert.equal(gr.code, 0, gr.stderr);
  const applied = await runCli([
    'grpo-step',
    '--apply',
    ...grads.map((g) => g.stdout.trim()),
    '--out',
    join(run, 'policy-mr'),
    '--config',
    cfg,
  ]);
  assert.equal(applied.code, 0, applied.stderr);
  const a = readSafetensors(join(run, 'policy', 'adapter_model.safetensors')).tensors;
  const b = readSafetensors(join(run, 'policy-mr', 'adapter_model.safetensors')).tensors;
  for (const [name, t] of a) {
    const x = t.data as Float32Array;
    const y = b.get(name)!.data as Float32Array;
    for (let i = 0; i < x.length; i++)
      assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-6 + 1e-4 * Math.abs(x[i]!), `${name}[${i}]`);
  }
});

test('the one-run gradient of the first inner step equals forward-then-VJP', async () => {
  // Rollouts of a trained (non-zero) LoRA policy, so both A and B have gradients.
  const run = join(dir, 'run');
  const next = readdirSync(join(run, 'next')).map((f) => join(run, 'next', f));
  const geo = await runCli(['decode-geometry', ...next, '--out', join(run, 'next-geometry')]);
  assert.equal(geo.code, 0, geo.stderr);
  const sc = await runCli(['score', ...geo.stdout.trim().split('\n'), '--out', join(run, 'next-rewards')]);
  assert.equal(sc.code, 0, sc.stderr);
  const rewards = readShard(sc.stdout.trim().split('\n')[0]!, 'rewards');
  const rollouts = { rewards, trajectory: findTrajectory(rewards) };
  const config = resolveConfig([rollouts.trajectory.config]);
  const policy = await loadPolicy(config, join(run, 'policy'));
  const sessions = new Map<string, ModelSession>();
  try {
    const T = rollouts.trajectory.tensors.get('log_probs')!.shape[1]!;
    const settings = {
      clipRange: 1e-3,
      klBeta: 0,
      klForm: 'true' as const,
      noiseLevel: config.sampler.noise_level,
      guidance: 1,
      weight: 0.5,
      measureKl: true,
    };
    let compared = 0;
    for (const mb of microBatches(rollouts, [...Array(T).keys()], [])) {
      const two = await microBatchGradient(
        policy,
        await gradientSession(policy, config, mb.batch, sessions),
        mb,
        settings,
      );
      const one = await onePassGradient(
        policy,
        await gradientSession(policy, config, mb.batch, sessions, true),
        mb,
        settings,
      );
      for (let b = 0; b < mb.batch; b++)
        assert.ok(Math.abs(one.logpNew[b]! - mb.logpOld[b]!) < 1e-6, 'r = 1');
      assert.ok(Math.abs(one.loss - two.loss) <= 1e-9 + 1e-6 * Math.abs(two.loss));
      assert.ok(Math.abs(one.kl - two.kl) <= 1e-6 * Math.abs(two.kl) + 1e-12, `kl ${one.kl} vs ${two.kl}`);
      for (const [name, g2] of two.grads) {
        const g1 = one.grads.get(name)!;
        let scale = 0;
        for (const v of g2) scale = Math.max(scale, Math.abs(v));
        assert.ok(scale > 0, `${name}: a real gradient`);
        for (let i = 0; i < g2.length; i++)
          assert.ok(Math.abs(g1[i]! - g2[i]!) <= 1e-4 * scale, `${name}[${i}]: ${g1[i]} vs ${g2[i]}`);
      }
      compared++;
    }
    assert.ok(compared >= 2);
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
});

/** Σ_b A_b·logp_b over every recorded step, recomputed with a policy (group = one batch). */
async function advantageWeightedLogProb(rewardShards: string[], policyDir?: string): Promise<number> {
  let total = 0;
  for (const p of rewardShards) {
    const rw = readShard(p, 'rewards');
    const traj = readShard(readShard(rw.inputs[0]!.path, 'geometry').inputs[0]!.path, 'trajectory');
    const config = resolveConfig([traj.config]);
    const policy = await loadPolicy(config, policyDir);
    try {
      const adv = rw.tensors.get('advantages')!.data as Float32Array;
      const lat = traj.tensors.get('latents')!;
      const data = lat.data as Float32Array;
      const [B, T1] = lat.shape as [number, number];
      const M = data.length / (B * T1);
      const ctx = traj.tensors.get('context')!;
      const [, L, D] = ctx.shape as [number, number, number];
      const sigmas = traj.tensors.get('sigmas')!.data as Float32Array;
      const steps = toNumbers(traj.tensors.get('step_index')!);
      const G = config.sampler.group_size;
      for (let g = 0; g < B / G; g++) {
        for (let t = 0; t < T1 - 1; t++) {
          const x = new Float32Array(G * M);
          const next = new Float32Array(G * M);
          for (let k = 0; k < G; k++) {
            const b = g * G + k;
            x.set(data.subarray((b * T1 + t) * M, (b * T1 + t + 1) * M), k * M);
            next.set(data.subarray((b * T1 + t + 1) * M, (b * T1 + t + 2) * M), k * M);
          }
          const c = f32([G, L, D], (ctx.data as Float32Array).slice(g * G * L * D, (g + 1) * G * L * D));
          const v = await velocity(policy, x, G, sigmas[steps[t]!]!, c);
          const r = sdeStep({
            x,
            v,
            sigmas,
            i: steps[t]!,
            batch: G,
            noiseLevel: config.sampler.noise_level,
            next,
          });
          for (let k = 0; k < G; k++) total += adv[g * G + k]! * r.logProb[k]!;
        }
      }
    } finally {
      await policy.session.release();
    }
  }
  return total;
}

test('bad input to the stages exits 2 with one line naming the file', async () => {
  const run = join(dir, 'a');
  const reward = join(run, 'rewards', files(join(run, 'rewards'))[0]!);
  const wrong = await runCli(['decode-geometry', reward]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /is a rewards shard; expected trajectory/);
  oneLine(wrong.stderr);

  // a trajectory whose tensor has the wrong shape
  const traj = join(run, 'trajectory', files(join(run, 'trajectory'))[0]!);
  const st = readSafetensors(traj);
  st.tensors.set('log_probs', f32([1, 1], [0]));
  const bad = join(dir, 'bad', 'trajectory', 'x.safetensors');
  writeSafetensors(bad, st.tensors, st.metadata);
  const shape = await runCli(['decode-geometry', bad]);
  assert.equal(shape.code, 2);
  assert.match(shape.stderr, /x\.safetensors: tensor 'log_probs'/);

  writeFileSync(
    join(dir, 'nomodel.yaml'),
    `models:\n  denoiser: /nonexistent/denoiser.onnx\n  text_encoder: ${join(ROOT, 'onnx/fixtures/text_encoder.onnx')}\n`,
  );
  const nm = await runCli([
    'sample',
    '--config',
    join(dir, 'nomodel.yaml'),
    '--prompts',
    prompts,
    '--out',
    join(dir, 'm'),
  ]);
  assert.equal(nm.code, 2, nm.stderr);
  assert.match(nm.stderr, /\/nonexistent\/denoiser\.onnx: /);
  oneLine(nm.stderr);
});
