/**
 * `sample`'s trajectories equal, bit for bit, those of a straightforward sampler written here:
 * one fresh array per step, noise drawn on the main thread, sdeStep/odeStep as they allocate,
 * classifier-free guidance by hand. The stage's fast path (in-place steps, the fused SDE kernel,
 * noise from the worker) must not change a single bit of what it records.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readConfigFile, resolveConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { loadPolicy, type Policy, velocity } from '../../src/rl/policy.js';
import { batchNoise, groupSeed, sampleSeed } from '../../src/rl/prng.js';
import { sdeWindow, shiftedSigmas } from '../../src/rl/schedule.js';
import { cfgCombine, odeStep, sdeStep } from '../../src/rl/sde.js';
import { readShard } from '../../src/shards/shard.js';
import { f32 } from '../../src/shards/tensor.js';
import { runSample } from '../../src/stages/sample.js';
import { ROOT, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-sample-ref-');
const prompts = join(dir, 'prompts.txt');
writeFileSync(prompts, 'orbit around the red box\ndolly toward the blue sphere\npan across the room\n');
const base = readConfigFile(join(ROOT, 'examples/toy/analytic.yaml'));

/** The denoiser's velocity for members [a, b) of a group, with CFG when guidance ≠ 1. */
async function refVelocity(
  policy: Policy,
  s: Config['sampler'],
  x: Float32Array,
  sigma: number,
  ctx: Float32Array,
  uncond: Float32Array | undefined,
): Promise<Float32Array> {
  const M = x.length / s.group_size;
  const v = new Float32Array(x.length);
  const m = s.micro_batch ?? s.group_size;
  for (let a = 0; a < s.group_size; a += m) {
    const n = Math.min(m, s.group_size - a);
    const xs = x.slice(a * M, (a + n) * M);
    if (s.guidance === 1) {
      const c = new Float32Array(n * ctx.length);
      for (let k = 0; k < n; k++) c.set(ctx, k * ctx.length);
      v.set(await velocity(policy, xs, n, sigma, f32([n, ...dims(policy)], c)), a * M);
      continue;
    }
    const both = new Float32Array(2 * xs.length);
    both.set(xs);
    both.set(xs, xs.length);
    const c = new Float32Array(2 * n * ctx.length);
    for (let k = 0; k < n; k++) {
      c.set(uncond!, k * ctx.length);
      c.set(ctx, (n + k) * ctx.length);
    }
    const raw = await velocity(policy, both, 2 * n, sigma, f32([2 * n, ...dims(policy)], c));
    v.set(cfgCombine(raw.slice(0, xs.length), raw.slice(xs.length), s.guidance), a * M);
  }
  return v;
}

function dims(policy: Policy): [number, number] {
  return [policy.shape.L, policy.shape.D];
}

/** Group p's recorded latents [G, T+1, M], log-probs [G, T] and final latents, the plain way. */
async function refGroup(config: Config, policy: Policy, p: number, ctx: Float32Array, uncond?: Float32Array) {
  const s = config.sampler;
  const G = s.group_size;
  const { C, F, H, W } = policy.shape;
  const M = C * F * H * W;
  const sigmas = Float32Array.from(shiftedSigmas(s.steps, s.shift));
  const window = sdeWindow(s.sde_window, s.steps);
  const seeds = Array.from({ length: G }, (_, b) => sampleSeed(s.seed, p * G + b));
  let x = batchNoise(s.initial_noise === 'group' ? Array(G).fill(groupSeed(s.seed, p)) : seeds, null, M);
  const recorded: Float32Array[] = [];
  const logps: Float32Array[] = [];
  for (let i = 0; i < s.steps; i++) {
    const v = await refVelocity(policy, s, x, sigmas[i]!, ctx, uncond);
    if (!window.includes(i)) {
      x = odeStep(x, v, sigmas, i);
      continue;
    }
    recorded.push(x);
    const r = sdeStep({
      x,
      v,
      sigmas,
      i,
      batch: G,
      noiseLevel: s.noise_level,
      noise: batchNoise(seeds, i, M),
    });
    logps.push(r.logProb);
    x = r.next;
    if (i === window.at(-1)) recorded.push(x);
  }
  return { recorded, logps, final: x, M };
}

for (const [name, sampler] of [
  ['every step stochastic but the last', { sde_window: ':' }],
  [
    'CFG in micro-batches, group noise, a window inside',
    { guidance: 3, micro_batch: 2, initial_noise: 'group', sde_window: '1:3' },
  ],
] as const) {
  test(`sample = the plain reference sampler, bit for bit: ${name}`, async () => {
    const config = resolveConfig([
      base,
      { sampler: { group_size: 3, steps: 4, per_shard: 2, seed: 9, ...sampler }, runtime: { threads: 1 } },
    ]);
    const out = join(dir, name.replace(/\W+/g, '-'));
    const { shards } = await runSample(
      { config, prompts, out },
      () => {},
      () => {},
    );
    const policy = await loadPolicy(config);
    try {
      const G = config.sampler.group_size;
      for (const path of shards) {
        const traj = readShard(path, 'trajectory');
        const lat = traj.tensors.get('latents')!.data as Float32Array;
        const logp = traj.tensors.get('log_probs')!.data as Float32Array;
        const fin = traj.tensors.get('final_latents')!.data as Float32Array;
        const ctx = traj.tensors.get('context')!.data as Float32Array;
        const uncond = traj.tensors.get('uncond_context')?.data as Float32Array | undefined;
        const groups = [
          ...new Set(Array.from(traj.tensors.get('group_index')!.data as BigInt64Array, Number)),
        ];
        for (const [k, p] of groups.entries()) {
          const L = ctx.length / (groups.length * G);
          const ref = await refGroup(config, policy, p, ctx.slice(k * G * L, (k * G + 1) * L), uncond);
          const T = ref.logps.length;
          const M = ref.M;
          for (let b = 0; b < G; b++) {
            const row = k * G + b;
            for (let t = 0; t <= T; t++)
              assert.deepEqual(
                lat.subarray((row * (T + 1) + t) * M, (row * (T + 1) + t + 1) * M),
                ref.recorded[t]!.subarray(b * M, (b + 1) * M),
                `${path}: prompt ${p} sample ${b} latents ${t}`,
              );
            for (let t = 0; t < T; t++)
              assert.equal(logp[row * T + t], ref.logps[t]![b], `prompt ${p} sample ${b} log-prob ${t}`);
            assert.deepEqual(fin.subarray(row * M, (row + 1) * M), ref.final.subarray(b * M, (b + 1) * M));
          }
        }
      }
      assert.equal(shards.length, 2);
    } finally {
      await policy.session.release();
    }
  });
}
