import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchNoise, gaussian, sampleSeed } from '../../src/rl/prng.js';
import { shiftedSigmas } from '../../src/rl/schedule.js';
import {
  cfgCombine,
  cfgCombineHalves,
  logProb,
  logProbVjp,
  odeStep,
  sdeCoefficients,
  sdeSampleInPlace,
  sdeStep,
  stdDev,
} from '../../src/rl/sde.js';
import { encodeSafetensors, parseSafetensors } from '../../src/shards/safetensors.js';
import { f32 } from '../../src/shards/tensor.js';

const SIGMAS = shiftedSigmas(4, 3); // [1, 0.9, 0.75, 0.5, 0]

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

test('std_t = a·sqrt(σ/(1−σ)); at σ = 1 the denominator uses sigmas[1]', () => {
  close(stdDev(SIGMAS, 1, 0.7), 0.7 * 3, 1e-7, 'σ = 0.9'); // sqrt(.9/.1) = 3
  close(stdDev(SIGMAS, 2, 0.7), 0.7 * Math.sqrt(3), 1e-7, 'σ = 0.75');
  close(stdDev(SIGMAS, 0, 0.7), 0.7 * Math.sqrt(1 / (1 - 0.9)), 1e-7, 'σ = 1');
  // Another second sigma changes the σ = 1 value accordingly.
  const other = [1, 0.5, 0.25, 0];
  close(stdDev(other, 0, 0.5), 0.5 * Math.sqrt(1 / 0.5), 1e-7, 'σ = 1, sigmas[1] = .5');
  assert.ok(Number.isFinite(stdDev(SIGMAS, 0)));
});

test('SDE step on a tiny batch matches the float64 formulas (hand-checked coefficients)', () => {
  // σ = 0.9 → 0.75: dt = −0.15, std_t = 2.1, cx = 1 + 4.41/1.8·(−.15) = 0.6325,
  // cv = (1 + 4.41·0.1/1.8)·(−.15) = −0.18675.
  const c = sdeCoefficients(SIGMAS, 1, 0.7);
  close(c.dt, -0.15, 1e-7, 'dt');
  close(c.cx, 0.6325, 1e-6, 'cx');
  close(c.cv, -0.18675, 1e-6, 'cv');
  close(c.std, 2.1 * Math.sqrt(0.15), 1e-6, 'std');

  const B = 2;
  const x = new Float32Array([0.5, -1.25, 2, 0.125, -0.75, 1.5]);
  const v = new Float32Array([-1, 0.25, 0.5, 2, -0.5, 0.75]);
  const eps = new Float32Array([0.3, -1.1, 0.7, 0.05, -0.4, 1.9]);
  const r = sdeStep({ x, v, sigmas: SIGMAS, i: 1, noiseLevel: 0.7, batch: B, noise: eps });
  // Independent float64 evaluation, literally as docs/METHOD.md writes it.
  const sigma = 0.9;
  const dt = 0.75 - 0.9;
  const stdT = 0.7 * Math.sqrt(sigma / (1 - sigma));
  const std = stdT * Math.sqrt(-dt);
  const lp = [0, 0];
  for (let j = 0; j < x.length; j++) {
    const mean =
      x[j]! * (1 + (stdT ** 2 / (2 * sigma)) * dt) +
      v[j]! * (1 + (stdT ** 2 * (1 - sigma)) / (2 * sigma)) * dt;
    const next = mean + std * eps[j]!;
    close(r.mean[j]!, mean, 1e-6, `mean[${j}]`);
    close(r.next[j]!, next, 1e-6, `next[${j}]`);
    lp[Math.floor(j / 3)]! +=
      (-((next - mean) ** 2) / (2 * std ** 2) - Math.log(std) - Math.log(Math.sqrt(2 * Math.PI))) / 3;
  }
  close(r.logProb[0]!, lp[0]!, 1e-5, 'logp[0]');
  close(r.logProb[1]!, lp[1]!, 1e-5, 'logp[1]');
});

test('the first step (σ = 1) is finite and uses sigmas[1]', () => {
  const x = gaussian(1n, 8);
  const v = gaussian(2n, 8);
  const r = sdeStep({ x, v, sigmas: SIGMAS, i: 0, batch: 1, noise: gaussian(3n, 8) });
  close(r.stdT, 0.7 * Math.sqrt(10), 1e-6, 'std_t');
  for (const y of r.next) assert.ok(Number.isFinite(y));
});

test('log-prob of the sampled next equals the analytic Gaussian average', () => {
  const B = 3;
  const M = 500;
  const x = gaussian(11n, B * M);
  const v = gaussian(12n, B * M);
  const eps = gaussian(13n, B * M);
  for (const i of [0, 2, 3]) {
    const r = sdeStep({ x, v, sigmas: SIGMAS, i, batch: B, noise: eps });
    const sigma = SIGMAS[i]!;
    const dt = SIGMAS[i + 1]! - sigma;
    const stdT = 0.7 * Math.sqrt(sigma / (1 - (sigma === 1 ? SIGMAS[1]! : sigma)));
    const std = stdT * Math.sqrt(-dt);
    for (let b = 0; b < B; b++) {
      let sq = 0;
      for (let j = b * M; j < (b + 1) * M; j++) sq += eps[j]! ** 2;
      const analytic = -sq / M / 2 - Math.log(std) - 0.5 * Math.log(2 * Math.PI);
      close(r.logProb[b]!, analytic, 2e-5, `step ${i} item ${b}`);
    }
  }
});

test('log-prob recomputed from stored (next, mean) is bit-identical, F32 sigmas included', () => {
  const B = 4;
  const M = 96;
  const seeds = [0, 1, 2, 3].map((k) => sampleSeed(5, k));
  const x = batchNoise(seeds, null, M);
  const v = gaussian(99n, B * M);
  const sampled = sdeStep({ x, v, sigmas: SIGMAS, i: 2, batch: B, noise: batchNoise(seeds, 2, M) });
  // Round-trip through a shard as `sample` → `grpo-step` would, schedule stored as F32.
  const shard = parseSafetensors(
    concat(
      encodeSafetensors({
        latents: f32([B, M], x),
        next: f32([B, M], sampled.next),
        sigmas: f32([5], Float32Array.from(SIGMAS)),
        log_probs: f32([B], sampled.logProb),
      }),
    ),
  );
  const sig32 = shard.tensors.get('sigmas')!.data as Float32Array;
  const again = sdeStep({
    x: shard.tensors.get('latents')!.data as Float32Array,
    v: Float32Array.from(v),
    sigmas: sig32,
    i: 2,
    batch: B,
    next: shard.tensors.get('next')!.data as Float32Array,
  });
  assert.deepEqual(again.mean, sampled.mean);
  assert.deepEqual(again.logProb, shard.tensors.get('log_probs')!.data);
  assert.deepEqual(logProb(sampled.next, sampled.mean, sampled.std, B), sampled.logProb);
});

test("a sample's step is the same alone and inside a batch of 4", () => {
  const M = 40;
  const seeds = [7, 8, 9, 10].map((k) => sampleSeed(2, k));
  const x4 = batchNoise(seeds, null, M);
  const v4 = gaussian(4n, 4 * M);
  const r4 = sdeStep({ x: x4, v: v4, sigmas: SIGMAS, i: 1, batch: 4, noise: batchNoise(seeds, 1, M) });
  const k = 2;
  const sl = (a: Float32Array) => a.slice(k * M, (k + 1) * M);
  const r1 = sdeStep({
    x: sl(x4),
    v: sl(v4),
    sigmas: SIGMAS,
    i: 1,
    batch: 1,
    noise: batchNoise([seeds[k]!], 1, M),
  });
  assert.deepEqual(r1.next, sl(r4.next));
  assert.equal(r1.logProb[0], r4.logProb[k]);
});

test('ODE step is x + dt·v; CFG is v_u + g(v_c − v_u)', () => {
  const x = new Float32Array([1, -2, 0.5]);
  const v = new Float32Array([0.5, 1, -4]);
  const y = odeStep(x, v, SIGMAS, 3); // dt = −0.5
  assert.deepEqual(Array.from(y), [0.75, -2.5, 2.5]);
  const vu = new Float32Array([1, 2, 3]);
  const vc = new Float32Array([2, 0, 3]);
  assert.deepEqual(Array.from(cfgCombine(vu, vc, 4)), [5, -6, 3]);
  const halves = new Float32Array([...vu, ...vc]);
  assert.deepEqual(cfgCombineHalves(halves, 4), cfgCombine(vu, vc, 4));
  assert.deepEqual(
    cfgCombineHalves(new Float32Array([...vc, ...vu]), 4, 'cond-first'),
    cfgCombine(vu, vc, 4),
  );
  // With g = 1 the conditional velocity is used unchanged.
  assert.deepEqual(cfgCombine(vu, vc, 1), vc);
});

test('logProbVjp matches central differences of logProb (exact for a quadratic)', () => {
  const B = 2;
  const M = 5;
  const next = gaussian(21n, B * M);
  const mean0 = gaussian(22n, B * M).map((z) => z * 0.3);
  const std = 0.8;
  const g = [0.7, -1.3];
  const vjp = logProbVjp(next, mean0, std, B, g);
  const h = 0.05;
  for (let j = 0; j < B * M; j++) {
    const plus = Float32Array.from(mean0);
    const minus = Float32Array.from(mean0);
    plus[j] = plus[j]! + h;
    minus[j] = minus[j]! - h;
    const lp = logProb(next, plus, std, B);
    const lm = logProb(next, minus, std, B);
    let fd = 0;
    for (let b = 0; b < B; b++) fd += (g[b]! * (lp[b]! - lm[b]!)) / (plus[j]! - minus[j]!);
    close(vjp[j]!, fd, 2e-4, `∂/∂mean[${j}]`);
  }
  // Chained to v through cv: the mean is exactly linear in v.
  const c = sdeCoefficients(SIGMAS, 2);
  const x = gaussian(23n, B * M);
  const v = gaussian(24n, B * M);
  const m1 = sdeStep({ x, v, sigmas: SIGMAS, i: 2, batch: B, next }).mean;
  const v2 = v.map((t) => t + 0.5);
  const m2 = sdeStep({ x, v: v2, sigmas: SIGMAS, i: 2, batch: B, next }).mean;
  for (let j = 0; j < B * M; j++) close((m2[j]! - m1[j]!) / 0.5, c.cv, 1e-5, 'dmean/dv');
});

/** Values over many binades (and exact zeros), so every rounding in the step is exercised. */
function spread(seed: bigint, n: number): Float32Array {
  const g = gaussian(seed, n);
  const e = gaussian(seed + 1n, n);
  return g.map((z, j) => (j % 97 === 0 ? 0 : z * 2 ** Math.round(4 * e[j]!)));
}

test("the sampler's fused in-place SDE step gives sdeStep's next and log-probs bit for bit", () => {
  const sigmas = Float32Array.from(shiftedSigmas(10, 3));
  for (const [B, M] of [
    [1, 1],
    [3, 7],
    [4, 1001],
    [2, 28672],
  ] as const) {
    for (const i of [0, 1, 5, 8]) {
      const x = spread(BigInt(10 * B + i), B * M);
      const v = spread(BigInt(10 * B + i + 500), B * M);
      const noise = gaussian(BigInt(i + 77), B * M);
      for (const level of [0.7, 1.3]) {
        const ref = sdeStep({ x, v, sigmas, i, batch: B, noiseLevel: level, noise });
        const y = Float32Array.from(x);
        const lp = new Float32Array(B);
        sdeSampleInPlace(y, v, noise, sdeCoefficients(sigmas, i, level), B, lp);
        assert.deepEqual(y, ref.next, `B ${B}, M ${M}, step ${i}: next`);
        assert.deepEqual(lp, ref.logProb, `B ${B}, M ${M}, step ${i}: log-probs`);
      }
    }
  }
  const c = sdeCoefficients(SIGMAS, 1);
  assert.throws(
    () =>
      sdeSampleInPlace(
        new Float32Array(4),
        new Float32Array(4),
        new Float32Array(3),
        c,
        2,
        new Float32Array(2),
      ),
    /noise have 4, 4 and 3/,
  );
});

test('ODE step in place equals the allocating one', () => {
  const sigmas = Float32Array.from(shiftedSigmas(10, 3));
  const x = spread(3n, 5003);
  const v = spread(4n, 5003);
  for (const i of [0, 4, 9]) {
    const ref = odeStep(x, v, sigmas, i);
    const y = Float32Array.from(x);
    assert.equal(odeStep(y, v, sigmas, i, y), y);
    assert.deepEqual(y, ref, `step ${i}`);
  }
});
