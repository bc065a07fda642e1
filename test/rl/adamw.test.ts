import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RuntimeFailure } from '../../src/errors.js';
import { adamwInit, adamwStep, clipGradNorm, nonFiniteGrads, type ParamMap } from '../../src/rl/adamw.js';

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('two AdamW steps by hand (lr .1, wd .01, betas .9/.999)', () => {
  const params: ParamMap = new Map([['w', new Float32Array([1])]]);
  const state = adamwInit(params);
  const opts = { lr: 0.1, weightDecay: 0.01 };
  adamwStep(params, new Map([['w', new Float32Array([0.5])]]), state, opts);
  // Step 1: p = 1·(1 − .001) = .999; m = .05, v = .00025; m/(1−.9) = .5, v/(1−.999) = .25;
  // p = .999 − .1·.5/(√.25 + 1e-8) = .999 − .1·.5/.50000001.
  close(state.expAvg.get('w')![0]!, 0.05, 1e-7, 'm1');
  close(state.expAvgSq.get('w')![0]!, 0.00025, 1e-7, 'v1');
  close(params.get('w')![0]!, 0.999 - (0.1 * 0.5) / 0.50000001, 1e-7, 'p1');
  assert.equal(state.step, 1);
  const p1 = params.get('w')![0]!;
  adamwStep(params, new Map([['w', new Float32Array([-0.25])]]), state, opts);
  // Step 2: m = .045 − .025 = .02; v = .00024975 + .0000625 = .00031225;
  // bias corrections 1 − .9² = .19 and 1 − .999² = .001999.
  const m2 = 0.02;
  const v2 = 0.00031225;
  close(state.expAvg.get('w')![0]!, m2, 1e-6, 'm2');
  close(state.expAvgSq.get('w')![0]!, v2, 1e-6, 'v2');
  const expected = p1 * 0.999 - ((0.1 / 0.19) * m2) / (Math.sqrt(v2) / Math.sqrt(0.001999) + 1e-8);
  close(params.get('w')![0]!, expected, 1e-6, 'p2');
  assert.equal(state.step, 2);
});

test('bias correction makes the first step lr·sign(g) whatever the gradient scale', () => {
  const gs = [1e-4, 0.3, -7, 250];
  const params: ParamMap = new Map([['p', new Float32Array(gs.length)]]);
  const state = adamwInit(params);
  adamwStep(params, new Map([['p', Float32Array.from(gs)]]), state, { lr: 0.01 });
  for (const [j, g] of gs.entries()) close(params.get('p')![j]!, -0.01 * Math.sign(g), 1e-4, `g = ${g}`);
});

test('a few steps on a tiny quadratic follow the textbook m̂/v̂ form and converge', () => {
  // f(p) = ½ Σ k_i (p_i − c_i)², two parameter tensors.
  const k = [1, 10, 0.1];
  const c = [0.5, -1, 2];
  const params: ParamMap = new Map([
    ['a', new Float32Array([0, 0])],
    ['b', new Float32Array([0])],
  ]);
  const flat = () => [...params.get('a')!, ...params.get('b')!];
  const state = adamwInit(params);
  const lr = 0.05;
  const wd = 0.1;
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  // Reference in float64, written as Kingma & Ba with Loshchilov & Hutter's decoupled decay.
  const ref = [0, 0, 0];
  const m = [0, 0, 0];
  const v = [0, 0, 0];
  const f = (p: number[]) => p.reduce((s, x, i) => s + 0.5 * k[i]! * (x - c[i]!) ** 2, 0);
  const f0 = f(flat());
  for (let t = 1; t <= 200; t++) {
    const p = flat();
    const g = p.map((x, i) => k[i]! * (x - c[i]!));
    adamwStep(
      params,
      new Map([
        ['a', Float32Array.from(g.slice(0, 2))],
        ['b', Float32Array.from(g.slice(2))],
      ]),
      state,
      { lr, weightDecay: wd },
    );
    for (let i = 0; i < 3; i++) {
      const gr = k[i]! * (ref[i]! - c[i]!);
      ref[i] = ref[i]! - lr * wd * ref[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * gr;
      v[i] = b2 * v[i]! + (1 - b2) * gr * gr;
      const mh = m[i]! / (1 - b1 ** t);
      const vh = v[i]! / (1 - b2 ** t);
      ref[i] = ref[i]! - (lr * mh) / (Math.sqrt(vh) + eps);
    }
    if (t <= 5) for (const [i, x] of flat().entries()) close(x, ref[i]!, 1e-5, `step ${t} p[${i}]`);
  }
  for (const [i, x] of flat().entries()) close(x, ref[i]!, 1e-3, `step 200 p[${i}]`);
  assert.ok(f(flat()) < 0.05 * f0, `loss ${f(flat())} from ${f0}`);
});

test('clipGradNorm scales to maxNorm like torch and reports the norm before clipping', () => {
  const grads: ParamMap = new Map([
    ['a', new Float32Array([3, 0])],
    ['b', new Float32Array([4])],
  ]);
  assert.equal(clipGradNorm(grads, 10), 5);
  assert.deepEqual(Array.from(grads.get('a')!), [3, 0]); // below the max: untouched
  close(clipGradNorm(grads, 1), 5, 1e-12, 'norm');
  close(grads.get('a')![0]!, 3 / (5 + 1e-6), 1e-6, 'a');
  close(grads.get('b')![0]!, 4 / (5 + 1e-6), 1e-6, 'b');
  let sq = 0;
  for (const g of grads.values()) for (const x of g) sq += x * x;
  close(Math.sqrt(sq), 1, 1e-6, 'norm after');
});

test('non-finite gradients are detected and fail the clip', () => {
  const grads: ParamMap = new Map([
    ['ok', new Float32Array([1, 2])],
    ['bad', new Float32Array([0, Number.NaN])],
    ['inf', new Float32Array([Number.POSITIVE_INFINITY])],
  ]);
  assert.deepEqual(nonFiniteGrads(grads), ['bad', 'inf']);
  assert.throws(
    () => clipGradNorm(grads, 1),
    (e: unknown) => e instanceof RuntimeFailure && /bad, inf/.test(e.message),
  );
  assert.ok(Number.isNaN(clipGradNorm(grads, 1, false)));
  assert.deepEqual(Array.from(grads.get('ok')!), [1, 2]);
});

test('a parameter without a gradient is an error, and nothing is updated', () => {
  const params: ParamMap = new Map([
    ['x', new Float32Array([1])],
    ['y', new Float32Array([2])],
  ]);
  const state = adamwInit(params);
  assert.throws(() => adamwStep(params, new Map([['x', new Float32Array([1])]]), state, { lr: 0.1 }), /'y'/);
  assert.equal(params.get('x')![0], 1);
  assert.equal(state.step, 0);
});
