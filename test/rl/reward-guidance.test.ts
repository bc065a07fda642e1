import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import { loadPolicy, velocity } from '../../src/rl/policy.js';
import { guidedSteps, RewardGuidance, rewardGuidanceFlags } from '../../src/rl/reward-guidance.js';
import { shiftedSigmas } from '../../src/rl/schedule.js';
import { cfgBatch, cfgCombineHalves } from '../../src/rl/sde.js';
import { f32 } from '../../src/shards/tensor.js';
import { encodeScene } from '../../src/toy/encoder.js';
import { LATENT_SHAPE, LATENT_SIZE } from '../../src/toy/latent.js';
import { makeScene, makeTrajectory } from '../../src/world/index.js';

const sigmas = Float32Array.from(shiftedSigmas(8, 3));

test('guided steps: an open START skips σ = 1, every K-th from START, END exclusive', () => {
  const g = (steps: string, every = 1, cap: number | null = null) =>
    guidedSteps({ steps, every, factor_cap: cap }, sigmas);
  assert.deepEqual(g(':'), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(g(':', 3), [1, 4, 7]);
  assert.deepEqual(g('2:5'), [2, 3, 4]);
  assert.deepEqual(g(':3', 1, 4), [0, 1, 2], 'with a cap the first step is guided too');
  assert.deepEqual(g('6:'), [6, 7]);
  for (const bad of ['0:3', '3:9', '5:5', '7:2']) {
    assert.throws(
      () => g(bad),
      (e: unknown) => e instanceof InputError && e.where.startsWith('--reward-guidance-steps'),
      bad,
    );
  }
});

test('flag values are checked one by one, each fault naming its flag', () => {
  assert.deepEqual(rewardGuidanceFlags({ scale: '2.5', every: '3', steps: '1:4', reward: 'both' }), {
    scale: 2.5,
    every: 3,
    steps: '1:4',
    reward: 'both',
  });
  const where = (f: Parameters<typeof rewardGuidanceFlags>[0]) => {
    try {
      rewardGuidanceFlags(f);
    } catch (e) {
      return (e as InputError).where;
    }
    return 'accepted';
  };
  assert.equal(where({ scale: '0' }), '--reward-guidance');
  assert.equal(where({ scale: ' ' }), '--reward-guidance');
  assert.equal(where({ every: '0' }), '--reward-guidance-every');
  assert.equal(where({ factorCap: '-1' }), '--reward-guidance-factor-cap');
  assert.equal(where({ reward: 'judge' }), '--reward-guidance-reward');
});

/** Two toy videos with jittered cameras (so r_motion < 1), as the clean latents x̂0. */
function latents(): Float32Array {
  const x = new Float32Array(2 * LATENT_SIZE);
  [3, 8].forEach((seed, b) => {
    const traj = makeTrajectory('orbit', { frames: 8, jitterPos: 0.05, jitterRot: 0.03, seed });
    x.set(encodeScene(makeScene(seed), traj).latents, b * LATENT_SIZE);
  });
  return x;
}

async function open(
  reward: 'motion' | 'reprojection' | 'both',
  cap: number | null = null,
): Promise<RewardGuidance> {
  const config = resolveConfig([
    { sampler: { reward_guidance: { scale: 2, reward, factor_cap: cap } }, runtime: { threads: 1 } },
  ]);
  return RewardGuidance.open(config, LATENT_SHAPE, 2, sigmas);
}

const total = (r: Float64Array) => r[0]! + r[1]!;

test('∇_{x̂0} r_motion through the LGM = finite differences of r_motion(LGM(x̂0)) along it', async () => {
  const guide = await open('motion');
  try {
    const x0 = latents();
    const { grad, reward } = await guide.rewardGradient(x0);
    assert.ok(
      reward.every((r) => r > 0.5 && r < 0.999),
      `jittered cameras are not smooth: ${reward}`,
    );
    const norm = Math.hypot(...grad);
    assert.ok(norm > 0);
    // Along the unit gradient the directional derivative is ‖∇r‖; float32 LGM, so a step of 1e-2.
    for (const h of [1e-2, 3e-3]) {
      const plus = x0.map((v, j) => v + (h * grad[j]!) / norm);
      const minus = x0.map((v, j) => v - (h * grad[j]!) / norm);
      const fd =
        (total((await guide.rewardGradient(plus)).reward) -
          total((await guide.rewardGradient(minus)).reward)) /
        (2 * h);
      assert.ok(Math.abs(fd - norm) < 0.02 * norm, `h ${h}: finite differences ${fd}, ‖∇‖ ${norm}`);
    }
    // And along a random direction (mostly orthogonal to ∇): the projection agrees too.
    const d = x0.map((_, j) => Math.sin(12.9898 * j) * 0.5);
    const dn = Math.hypot(...d);
    const dot = grad.reduce((s, g, j) => s + (g * d[j]!) / dn, 0);
    const h = 1e-2;
    const fd =
      (total((await guide.rewardGradient(x0.map((v, j) => v + (h * d[j]!) / dn))).reward) -
        total((await guide.rewardGradient(x0.map((v, j) => v - (h * d[j]!) / dn))).reward)) /
      (2 * h);
    assert.ok(Math.abs(fd - dot) < 0.05 * norm, `random direction: fd ${fd}, ⟨∇, d⟩ ${dot}`);
  } finally {
    await guide.release();
  }
});

test('a small step of x̂0 along ∇ r_geo raises the reprojection reward (visibility held fixed in the gradient)', async () => {
  const guide = await open('reprojection');
  try {
    const x0 = latents();
    const { grad, reward } = await guide.rewardGradient(x0);
    const n2 = grad.reduce((s, g) => s + g * g, 0);
    assert.ok(n2 > 0);
    const eta = 1e-2 / Math.sqrt(n2);
    const up = total((await guide.rewardGradient(x0.map((v, j) => v + eta * grad[j]!))).reward);
    const down = total((await guide.rewardGradient(x0.map((v, j) => v - eta * grad[j]!))).reward);
    assert.ok(
      up > total(reward) && down < total(reward),
      `r(x̂0 − η∇) ${down} < r ${total(reward)} < r(x̂0 + η∇) ${up}`,
    );
  } finally {
    await guide.release();
  }
});

test('the corrected velocity is v − s·σ/(1−σ)·∇r(x − σv); the cap bounds the factor and allows σ = 1', async () => {
  const guide = await open('both', 4);
  try {
    const x = latents();
    const v = x.map((_, j) => 0.1 * Math.cos(j));
    const sigma = sigmas[2]!;
    const x0 = x.map((xv, j) => xv - Math.fround(sigma * v[j]!));
    const { grad } = await guide.rewardGradient(x0);
    const { velocity } = await guide.correct(x, v, sigma);
    const k = 2 * Math.min(4, sigma / (1 - sigma));
    let worst = 0;
    for (let j = 0; j < v.length; j++)
      worst = Math.max(worst, Math.abs(velocity[j]! - (v[j]! - k * grad[j]!)));
    assert.ok(worst < 1e-6, `max deviation ${worst}`);
    assert.ok(
      velocity.some((u, j) => u !== v[j]),
      'the correction is not zero',
    );
    assert.equal(guide.factor(1), 4);
    assert.equal(guide.factor(0.5), 1);
    assert.deepEqual(guide.plan.guided, [0, 1, 2, 3, 4, 5, 6, 7]);
  } finally {
    await guide.release();
  }
});

test('through the denoiser: ∇_x r(LGM(x − σ·v(x))) = finite differences, with and without classifier-free guidance', async () => {
  const config = resolveConfig([
    { sampler: { reward_guidance: { scale: 1, through: 'denoiser' } }, runtime: { threads: 1 } },
  ]);
  const policy = await loadPolicy(config);
  const guide = await RewardGuidance.open(config, LATENT_SHAPE, 2, sigmas);
  try {
    const { L, D } = policy.shape;
    const x = latents().map((v, j) => v + 0.3 * Math.sin(j)); // a noisy latent at σ
    const sigma = sigmas[3]!;
    for (const g of [1, 3]) {
      const nb = g === 1 ? 2 : 4;
      const context = f32(
        [nb, L, D],
        Float32Array.from({ length: nb * L * D }, (_, j) => Math.cos(0.37 * j)),
      );
      const vOf = async (z: Float32Array) =>
        g === 1
          ? velocity(policy, z, 2, sigma, context)
          : cfgCombineHalves(await velocity(policy, cfgBatch(z), 4, sigma, context), g);
      const f = async (z: Float32Array) => {
        const v = await vOf(z);
        return total((await guide.rewardGradient(z.map((zv, j) => zv - Math.fround(sigma * v[j]!)))).reward);
      };
      const v = await vOf(x);
      const u = (await guide.rewardGradient(x.map((xv, j) => xv - Math.fround(sigma * v[j]!)))).grad;
      const back = await guide.denoiserVjp({ policy, context, guidance: g }, x, sigma, u);
      const full = u.map((a, j) => a + back[j]!);
      const norm = Math.hypot(...full);
      const h = 1e-2;
      const fd =
        ((await f(x.map((a, j) => a + (h * full[j]!) / norm))) -
          (await f(x.map((a, j) => a - (h * full[j]!) / norm)))) /
        (2 * h);
      assert.ok(Math.abs(fd - norm) < 0.03 * norm, `g ${g}: finite differences ${fd}, ‖∇‖ ${norm}`);
      const backNorm = Math.hypot(...back);
      assert.ok(backNorm > 0.1 * Math.hypot(...u), `the denoiser term is not negligible (${backNorm})`);
    }
  } finally {
    await guide.release();
    await policy.session.release();
  }
});
