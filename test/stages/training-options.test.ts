/**
 * grpo-step's training-loop options on the toy fixtures (README.md, Configuration): a warm-up's
 * first step is a constant-lr step at lr/W; the EMA in the checkpoint is d·θ₀ + (1 − d)·θ₁ and
 * `sampler.use_ema` samples with it; grpo.minibatches takes one optimiser step per part, equal
 * to those steps taken by hand; a resume or an --apply with other training settings is exit 2.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { adamwInit, adamwStep, clipGradNorm, type ParamMap } from '../../src/rl/adamw.js';
import { loadCheckpoint } from '../../src/rl/checkpoint.js';
import { loadPolicy } from '../../src/rl/policy.js';
import { microBatchGradient, onePassGradient } from '../../src/rl/policy-gradient.js';
import type { ModelSession } from '../../src/runtime/session.js';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { readShard } from '../../src/shards/shard.js';
import { findTrajectory, gradientSession, microBatches } from '../../src/stages/grpo-step.js';
import { BIN, oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-train-');
const prompts = join(dir, 'prompts.txt');
writeFileSync(prompts, 'orbit around the red box\ndolly toward the blue sphere\npan across the room\n');

/** The toy config at a small size, with overrides per section. */
function configFile(name: string, over: { sampler?: object; grpo?: object } = {}): string {
  const doc = parse(readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8'));
  for (const k of Object.keys(doc.models))
    if (typeof doc.models[k] === 'string') doc.models[k] = join(ROOT, 'examples/toy', doc.models[k]);
  Object.assign(doc.sampler, { group_size: 3, steps: 4, per_shard: 2, ...over.sampler });
  Object.assign(doc.grpo, over.grpo);
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(doc));
  return path;
}

const base = configFile('base');

function rollouts(run: string, extra = ''): string[] {
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} sample --config ${base} --threads 1 --prompts ${prompts} ${extra} --out ${run}/trajectory | node ${BIN} decode-geometry | node ${BIN} score > /dev/null`,
  ]);
  return readdirSync(join(run, 'rewards')).map((f) => join(run, 'rewards', f));
}

async function grpoStep(args: string[]): Promise<Record<string, number>> {
  const r = await runCli(['grpo-step', ...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).metrics;
}

const adapter = (p: string) => readSafetensors(join(p, 'adapter_model.safetensors')).tensors;
const rewards = rollouts(join(dir, 'run'));

test('warm-up: the first step is a constant-lr step at lr/W', async () => {
  const warm = configFile('warm', { grpo: { lr: 0.004, lr_schedule: { kind: 'warmup', warmup_steps: 4 } } });
  const flat = configFile('flat', { grpo: { lr: 0.001 } });
  const mw = await grpoStep([...rewards, '--config', warm, '--out', join(dir, 'p-warm')]);
  const mf = await grpoStep([...rewards, '--config', flat, '--out', join(dir, 'p-flat')]);
  assert.equal(mw.lr, 0.001);
  assert.equal(mf.lr, 0.001);
  assert.deepEqual(adapter(join(dir, 'p-warm')), adapter(join(dir, 'p-flat')));
});

test('EMA: d·θ₀ + (1 − d)·θ₁ in the checkpoint; sampler.use_ema samples with it', async () => {
  const ema = configFile('ema', { grpo: { ema: { decay: 0.25 } } });
  const out = join(dir, 'p-ema');
  await grpoStep([...rewards, '--config', ema, '--out', out]);
  const fresh = await loadPolicy(resolveConfig([{}, parse(readFileSync(ema, 'utf8'))]));
  await fresh.session.release();
  const ck = loadCheckpoint(out);
  assert.equal(ck.ema?.decay, 0.25);
  for (const [name, theta1] of ck.lora.params) {
    const theta0 = fresh.lora.params.get(name)!;
    const e: Float32Array = ck.ema!.params.get(name)!;
    for (let j = 0; j < e.length; j++)
      assert.equal(e[j], Math.fround(0.25 * theta0[j]! + 0.75 * theta1[j]!), `${name}[${j}]`);
  }
  // Sampling with use_ema = sampling with a policy whose adapter is the EMA.
  const asAdapter = join(dir, 'p-ema-as-adapter');
  cpSync(out, asAdapter, { recursive: true });
  copyFileSync(join(out, 'ema_model.safetensors'), join(asAdapter, 'adapter_model.safetensors'));
  const useEma = configFile('use-ema', { sampler: { use_ema: true } });
  const sampleWith = async (cfg: string, policy: string, o: string) => {
    const r = await runCli([
      'sample',
      '--config',
      cfg,
      '--prompts',
      prompts,
      '--policy',
      policy,
      '--ode',
      '--out',
      o,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return readShard(r.stdout.trim().split('\n')[0]!, 'trajectory').tensors.get('final_latents')!.data;
  };
  const viaEma = await sampleWith(useEma, out, join(dir, 's-ema'));
  assert.deepEqual(viaEma, await sampleWith(base, asAdapter, join(dir, 's-adapter')));
  assert.notDeepEqual(viaEma, await sampleWith(base, out, join(dir, 's-raw')));
  // Without an EMA in the checkpoint, use_ema is exit 2 naming the file.
  const none = await runCli([
    'sample',
    '--config',
    useEma,
    '--prompts',
    prompts,
    '--policy',
    join(dir, 'p-flat'),
  ]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /p-flat\/ema_model\.safetensors: missing: sampler\.use_ema needs/);
});

test('grpo.minibatches 2: two optimiser steps, each on its part, as taken by hand', async () => {
  const mb = configFile('mb', { grpo: { minibatches: 2 } });
  const out = join(dir, 'p-mb');
  await grpoStep([...rewards, '--config', mb, '--out', out]);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((l) => l.checkpoint === out);
  assert.deepEqual(
    lines.map((l) => l.minibatch),
    [0, 1],
  );
  assert.ok(lines[0].ratio_min === 1 && lines[0].ratio_max === 1, 'the first part is on-policy');
  assert.ok(lines[1].ratio_min !== 1 || lines[1].ratio_max !== 1, 'the second part sees the updated policy');
  assert.equal(loadCheckpoint(out).optimizer.step, 2);
  // A gradient shard is one optimiser step: map-reduce cannot split it.
  const go = await runCli([
    'grpo-step',
    rewards[0]!,
    '--grads-only',
    '--config',
    mb,
    '--out',
    join(dir, 'g-mb'),
  ]);
  assert.equal(go.code, 2);
  assert.match(go.stderr, /grpo\.minibatches: 2: a gradient shard is one optimiser step/);

  // By hand: the three groups (two in shard 0, one in shard 1) split as [g0], [g1, g2].
  const config = resolveConfig([{}, parse(readFileSync(mb, 'utf8'))]);
  const policy = await loadPolicy(config);
  const sessions = new Map<string, ModelSession>();
  const g = config.grpo;
  try {
    const all = rewards.flatMap((p) => {
      const rw = readShard(p, 'rewards');
      return [...microBatches({ rewards: rw, trajectory: findTrajectory(rw) }, [0, 1], [])];
    });
    assert.equal(all.length, 6, 'three groups × two recorded steps');
    const parts = [all.slice(0, 2), all.slice(2)];
    const adam = adamwInit(policy.lora.params);
    for (const [k, part] of parts.entries()) {
      const sum: ParamMap = new Map([...policy.lora.params].map(([n, v]) => [n, new Float32Array(v.length)]));
      for (const m of part) {
        const settings = {
          clipRange: g.clip_range,
          klBeta: 0,
          klForm: g.kl_form,
          noiseLevel: 0.7,
          guidance: 1,
          weight: 1,
        };
        const res =
          k === 0
            ? await onePassGradient(
                policy,
                await gradientSession(policy, config, m.batch, sessions, true),
                m,
                settings,
              )
            : await microBatchGradient(
                policy,
                await gradientSession(policy, config, m.batch, sessions),
                m,
                settings,
              );
        for (const [n, gr] of res.grads) {
          const a = sum.get(n)!;
          for (let j = 0; j < a.length; j++) a[j]! += gr[j]!;
        }
      }
      for (const a of sum.values()) for (let j = 0; j < a.length; j++) a[j]! /= part.length;
      clipGradNorm(sum, g.grad_clip);
      adamwStep(policy.lora.params, sum, adam, {
        lr: g.lr,
        betas: g.betas,
        eps: g.eps,
        weightDecay: g.weight_decay,
      });
    }
    const got = loadCheckpoint(out).lora.params;
    for (const [n, want] of policy.lora.params) assert.deepEqual(got.get(n), want, n);
  } finally {
    for (const s of sessions.values()) await s.release();
    await policy.session.release();
  }
});

test('resume: other training settings are exit 2 naming the key unless --force; --apply checks them too', async () => {
  const p0 = join(dir, 'p-flat'); // trained with base's settings and lr 0.001
  const flat = configFile('flat', { grpo: { lr: 0.001 } });
  // On-policy rollouts of p0, with another seed (seeds are not part of the training).
  const next = rollouts(join(dir, 'run-next'), `--policy ${p0} --seed 5`);
  const ok = await runCli(['grpo-step', ...next, '--config', flat, '--policy', p0, '--out', join(dir, 'p1')]);
  assert.equal(ok.code, 0, ok.stderr);
  const other = configFile('other-lr', { grpo: { lr: 0.002 } });
  const bad = await runCli([
    'grpo-step',
    ...next,
    '--config',
    other,
    '--policy',
    p0,
    '--out',
    join(dir, 'p1b'),
  ]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(
    bad.stderr,
    /p-flat\/state\.json: training_hash [0-9a-f]{16} differs .*\(grpo\.lr 0\.001 → 0\.002\); --force/,
  );
  oneLine(bad.stderr);
  const forced = await runCli([
    'grpo-step',
    ...next,
    '--config',
    other,
    '--policy',
    p0,
    '--force',
    '--out',
    join(dir, 'p1c'),
  ]);
  assert.equal(forced.code, 0, forced.stderr);

  // --apply: gradient shards computed with other training settings are not averaged.
  const g0 = await runCli([
    'grpo-step',
    next[0]!,
    '--grads-only',
    '--config',
    flat,
    '--policy',
    p0,
    '--out',
    join(dir, 'g'),
  ]);
  const g1 = await runCli([
    'grpo-step',
    next[1]!,
    '--grads-only',
    '--config',
    other,
    '--policy',
    p0,
    '--force',
    '--out',
    join(dir, 'g'),
  ]);
  assert.equal(g0.code, 0, g0.stderr);
  assert.equal(g1.code, 0, g1.stderr);
  const ap = await runCli([
    'grpo-step',
    '--apply',
    g0.stdout.trim(),
    g1.stdout.trim(),
    '--policy',
    p0,
    '--out',
    join(dir, 'p-ap'),
  ]);
  assert.equal(ap.code, 2, ap.stderr);
  assert.match(
    ap.stderr,
    /shard-0001\.grads\.safetensors: computed with other training settings than .*shard-0000\.grads\.safetensors: grpo\.lr/,
  );
});
