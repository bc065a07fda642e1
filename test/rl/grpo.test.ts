import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RuntimeFailure } from '../../src/errors.js';
import { assertRatioOne, grpoLoss, klPenalty, velocityCotangent } from '../../src/rl/grpo.js';
import { gaussian } from '../../src/rl/prng.js';
import { shiftedSigmas } from '../../src/rl/schedule.js';
import { sdeCoefficients } from '../../src/rl/sde.js';

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

/** The loss written out independently of grpoLoss. */
function refLoss(lnew: number[], lold: number[], adv: number[], eps: number): number {
  let s = 0;
  for (let b = 0; b < lnew.length; b++) {
    const r = Math.exp(lnew[b]! - lold[b]!);
    // biome-ignore lint/complexity/useMathMinMax: the clip written as its definition, unlike grpo.ts
    const rc = r < 1 - eps ? 1 - eps : r > 1 + eps ? 1 + eps : r;
    s += Math.max(-adv[b]! * r, -adv[b]! * rc);
  }
  return s / lnew.length;
}

test('clipped loss and gradient on hand-computed cases', () => {
  // r = 1.5, 0.5 with A = +1, −1, ε = 0.2: max(−1.5, −1.2) = −1.2; max(0.5, 0.8) = 0.8 → −0.2,
  // and both samples sit on their clipped branch → zero gradient.
  const a = grpoLoss({
    logpNew: [Math.log(1.5), Math.log(0.5)],
    logpOld: [0, 0],
    advantages: [1, -1],
    clipRange: 0.2,
  });
  close(a.loss, -0.2, 1e-12, 'loss');
  assert.deepEqual(Array.from(a.gradLogpNew), [0, 0]);
  assert.equal(a.clipFraction, 1);
  // r = 0.5, 1.5 with A = +1, −1: the unclipped terms win (−0.5 and 1.5) → loss 0.5,
  // gradient (1/B)(−A·r) = −0.25 and 0.75.
  const b = grpoLoss({
    logpNew: [Math.log(0.5), Math.log(1.5)],
    logpOld: [0, 0],
    advantages: [1, -1],
    clipRange: 0.2,
  });
  close(b.loss, 0.5, 1e-12, 'loss');
  close(b.gradLogpNew[0]!, -0.25, 1e-12, 'grad 0');
  close(b.gradLogpNew[1]!, 0.75, 1e-12, 'grad 1');
  close(b.ratio.min, 0.5, 1e-12, 'min');
  close(b.ratio.max, 1.5, 1e-12, 'max');
  close(b.ratio.mean, 1, 1e-12, 'mean');
  close(b.approxKl, (0.5 * (Math.log(0.5) ** 2 + Math.log(1.5) ** 2)) / 2, 1e-12, 'approx kl');
});

test('gradient w.r.t. logp_new matches finite differences on every branch', () => {
  const eps = 0.1;
  const n = 64;
  const z = gaussian(31n, 2 * n);
  const lold = Array.from({ length: n }, (_, b) => -1 + 0.1 * z[b]!);
  // Log-ratios spread over inside and both outsides of [log .9, log 1.1], away from the kinks.
  const lnew = lold.map((l, b) => {
    let d = 0.35 * z[n + b]!;
    for (const k of [Math.log(1 - eps), Math.log(1 + eps)]) if (Math.abs(d - k) < 1e-3) d += 5e-3;
    return l + d;
  });
  const adv = Array.from({ length: n }, (_, b) => (b % 5 === 0 ? 0 : ((b * 7919) % 13) / 3 - 2));
  const res = grpoLoss({ logpNew: lnew, logpOld: lold, advantages: adv, clipRange: eps });
  close(res.loss, refLoss(lnew, lold, adv, eps), 1e-12, 'loss');
  const branches = new Set<string>();
  const h = 1e-6;
  for (let b = 0; b < n; b++) {
    const p = [...lnew];
    const m = [...lnew];
    p[b] = p[b]! + h;
    m[b] = m[b]! - h;
    const fd = (refLoss(p, lold, adv, eps) - refLoss(m, lold, adv, eps)) / (2 * h);
    assert.ok(Math.abs(res.gradLogpNew[b]! - fd) < 1e-7, `sample ${b}: ${res.gradLogpNew[b]} vs fd ${fd}`);
    const r = res.ratios[b]!;
    branches.add(`${Math.sign(adv[b]!)}:${r < 1 - eps ? 'lo' : r > 1 + eps ? 'hi' : 'in'}`);
  }
  // The test only means something if all six (sign, region) cases occurred.
  for (const s of ['1:lo', '1:in', '1:hi', '-1:lo', '-1:in', '-1:hi'])
    assert.ok(branches.has(s), `branch ${s} not exercised`);
});

test('just inside and just outside the clip range', () => {
  const eps = 1e-3;
  const inside = Math.log((1 + eps) * (1 - 1e-9));
  const outside = Math.log((1 + eps) * (1 + 1e-9));
  const g = (d: number, a: number) =>
    grpoLoss({ logpNew: [d], logpOld: [0], advantages: [a], clipRange: eps }).gradLogpNew[0]!;
  close(g(inside, 2), -2 * Math.exp(inside), 1e-12, 'A>0 inside');
  assert.equal(g(outside, 2), 0); // A > 0, r > 1+ε: clipped, no push further
  close(g(outside, -2), 2 * Math.exp(outside), 1e-12, 'A<0 outside'); // pessimistic branch stays live
  assert.equal(Math.abs(g(0.01, 0)), 0); // A = 0: no gradient
});

test('ratio 1 gives the plain policy gradient −mean(A·∇logp)', () => {
  // Toy policy: logp_b(θ) = θ·φ_b − θ²/2; at θ0 the old log-probs equal the new ones.
  const B = 6;
  const phi = [0.3, -1.2, 0.8, 2.0, -0.4, 1.1];
  const adv = [1.5, -0.5, 0.2, -1.0, 0.7, -0.9];
  const theta0 = 0.37;
  const logp = (t: number) => phi.map((f) => t * f - (t * t) / 2);
  const old = logp(theta0);
  const res = grpoLoss({ logpNew: old, logpOld: old, advantages: adv, clipRange: 1e-3 });
  assert.equal(res.ratio.min, 1);
  assert.equal(res.ratio.max, 1);
  assert.equal(res.clipFraction, 0);
  let chained = 0;
  let pg = 0;
  for (let b = 0; b < B; b++) {
    close(res.gradLogpNew[b]!, -adv[b]! / B, 1e-15, 'per-sample');
    chained += res.gradLogpNew[b]! * (phi[b]! - theta0);
    pg -= (adv[b]! * (phi[b]! - theta0)) / B;
  }
  close(chained, pg, 1e-14, 'chain rule');
  const h = 1e-6;
  const L = (t: number) =>
    grpoLoss({ logpNew: logp(t), logpOld: old, advantages: adv, clipRange: 1e-3 }).loss;
  close((L(theta0 + h) - L(theta0 - h)) / (2 * h), pg, 1e-6, 'finite difference in θ');
});

test('KL penalty: true form vs sd3 form differ by |dt|, gradient matches finite differences', () => {
  const sig = shiftedSigmas(10, 3);
  const c = sdeCoefficients(sig, 4);
  const B = 3;
  const M = 7;
  const mt = gaussian(41n, B * M);
  const mr = gaussian(42n, B * M).map((z, j) => mt[j]! + 0.1 * z);
  const kt = klPenalty({ meanTheta: mt, meanRef: mr, batch: B, std: c.std, stdT: c.stdT, form: 'true' });
  const ks = klPenalty({ meanTheta: mt, meanRef: mr, batch: B, std: c.std, stdT: c.stdT, form: 'sd3' });
  // Independent: KL of N(μθ, s²I) ‖ N(μref, s²I) per element is (μθ−μref)²/(2s²).
  let ref = 0;
  for (let j = 0; j < B * M; j++) ref += (mt[j]! - mr[j]!) ** 2 / (2 * c.std ** 2);
  close(kt.kl, ref / (B * M), 1e-6, 'true KL');
  close(ks.kl / kt.kl, -c.dt, 1e-5, 'sd3 / true = |dt|');
  const h = 1e-2;
  for (const j of [0, 5, 13, 20]) {
    const p = Float32Array.from(mt);
    const m = Float32Array.from(mt);
    p[j] = p[j]! + h;
    m[j] = m[j]! - h;
    const kp = klPenalty({ meanTheta: p, meanRef: mr, batch: B, std: c.std, stdT: c.stdT, form: 'true' }).kl;
    const km = klPenalty({ meanTheta: m, meanRef: mr, batch: B, std: c.std, stdT: c.stdT, form: 'true' }).kl;
    close(kt.gradMeanTheta[j]!, (kp - km) / (p[j]! - m[j]!), 1e-4, `∂KL/∂μθ[${j}]`);
  }
  const zero = klPenalty({ meanTheta: mt, meanRef: mt, batch: B, std: c.std, stdT: c.stdT, form: 'true' });
  assert.equal(zero.kl, 0);
});

test('ratio ≠ 1 on the first inner step is a runtime failure', () => {
  assertRatioOne([-1.5, 0.25], [-1.5, 0.25]);
  assert.throws(
    () => assertRatioOne([-1.5, 0.25], [-1.5, 0.2]),
    (e: unknown) => e instanceof RuntimeFailure && /sample 1/.test(e.message),
  );
  assert.throws(() => assertRatioOne([Number.NaN], [0]), RuntimeFailure);
});

test('velocity cotangent = finite differences of the float64 objective in v (loss + β·KL)', () => {
  const sig = shiftedSigmas(6, 3);
  const i = 2;
  const B = 3;
  const M = 4;
  const a = 0.7;
  const x = gaussian(51n, B * M);
  const vOld = gaussian(52n, B * M);
  const eps = gaussian(53n, B * M);
  const vRef = gaussian(54n, B * M).map((z, j) => vOld[j]! + 0.2 * z);
  const adv = [1.2, -0.7, 0.4];
  const beta = 0.05;
  const clipRange = 0.05;
  // The whole objective in float64, straight from docs/METHOD.md.
  const sigma = sig[i]!;
  const dt = sig[i + 1]! - sigma;
  const stdT = a * Math.sqrt(sigma / (1 - sigma));
  const std = stdT * Math.sqrt(-dt);
  const meanOf = (v: ArrayLike<number>) =>
    Array.from(
      { length: B * M },
      (_, j) =>
        x[j]! * (1 + (stdT ** 2 / (2 * sigma)) * dt) +
        v[j]! * (1 + (stdT ** 2 * (1 - sigma)) / (2 * sigma)) * dt,
    );
  const next = meanOf(vOld).map((m, j) => m + std * eps[j]!);
  const logps = (v: ArrayLike<number>) => {
    const mu = meanOf(v);
    return Array.from({ length: B }, (_, b) => {
      let s = 0;
      for (let j = b * M; j < (b + 1) * M; j++)
        s += -((next[j]! - mu[j]!) ** 2) / (2 * std ** 2) - Math.log(std) - 0.5 * Math.log(2 * Math.PI);
      return s / M;
    });
  };
  const muRef = meanOf(vRef);
  const old = logps(vOld);
  const objective = (v: number[]) => {
    const mu = meanOf(v);
    let kl = 0;
    for (let j = 0; j < B * M; j++) kl += (mu[j]! - muRef[j]!) ** 2 / (2 * std ** 2);
    return refLoss(logps(v), old, adv, clipRange) + (beta * kl) / (B * M);
  };
  // Evaluate at a policy that moved a little, so ratios ≠ 1 and some samples are clipped.
  const v0 = Array.from(vOld, (t, j) => t + Math.sin(j));
  const c = sdeCoefficients(sig, i, a);
  const mean32 = Float32Array.from(meanOf(v0));
  const next32 = Float32Array.from(next);
  const g = grpoLoss({ logpNew: logps(v0), logpOld: old, advantages: adv, clipRange });
  assert.ok(g.clipFraction > 0 && g.clipFraction < 1, `clip fraction ${g.clipFraction}, ratios ${g.ratios}`);
  const live = Array.from(g.gradLogpNew).filter((d) => d !== 0).length;
  assert.ok(live > 0 && live < B, `${live} of ${B} samples with a live policy gradient`);
  const gV = velocityCotangent({
    next: next32,
    mean: mean32,
    coeffs: c,
    batch: B,
    gradLogpNew: g.gradLogpNew,
    kl: { meanRef: Float32Array.from(muRef), beta, form: 'true' },
  });
  const h = 1e-6;
  for (let j = 0; j < B * M; j++) {
    const p = [...v0];
    const m = [...v0];
    p[j] = p[j]! + h;
    m[j] = m[j]! - h;
    const fd = (objective(p) - objective(m)) / (2 * h);
    assert.ok(
      Math.abs(gV[j]! - fd) < 1e-4 * Math.max(1e-2, Math.abs(fd)) + 1e-7,
      `∂L/∂v[${j}] ${gV[j]} vs fd ${fd}`,
    );
  }
});
