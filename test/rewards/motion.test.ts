import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InputError } from '../../src/errors.js';
import { expSO3 } from '../../src/geometry/so3.js';
import { cameraSmoothness, MOTION_DEFAULTS, motion } from '../../src/rewards/motion.js';
import { makeTrajectory, TRAJECTORY_FAMILIES } from '../../src/world/index.js';
import { groundTruth, transformSample } from './helpers.js';

/** Extrinsics [F,3,4] of cameras with rotations exp(ω_f) (camera-from-world) and centres c_f. */
function cams(rots: number[][], centres: number[][]): Float64Array {
  const e = new Float64Array(12 * rots.length);
  rots.forEach((w, f) => {
    const R = expSO3(w);
    for (let r = 0; r < 3; r++) {
      let t = 0;
      for (let c = 0; c < 3; c++) {
        e[12 * f + 4 * r + c] = R[3 * r + c]!;
        t -= R[3 * r + c]! * centres[f]![c]!;
      }
      e[12 * f + 4 * r + 3] = t;
    }
  });
  return e;
}

const abs = { ...MOTION_DEFAULTS, epsUnit: 'absolute' as const, eps: 0, epsRot: 0 };

test('hand-computed: centres 0, 1, 3 on a line, rotations 0.1 and 0.3 rad steps about z', () => {
  // v = 1, 2 → ‖a‖ = 1 → S_trans = 1/3. ω = 0.1, 0.2 about z → ‖Δω‖ = 0.1 over 0.3 → S_rot = 1/3.
  const e = cams(
    [
      [0, 0, 0],
      [0, 0, 0.1],
      [0, 0, 0.3],
    ],
    [
      [0, 0, 0],
      [1, 0, 0],
      [3, 0, 0],
    ],
  );
  const s = cameraSmoothness(e, 3, abs);
  assert.ok(Math.abs(s.sTrans - 1 / 3) < 1e-12);
  assert.ok(Math.abs(s.sRot - 1 / 3) < 1e-12);
  assert.ok(Math.abs(s.reward - 0.75) < 1e-12);
  // A reversal: v = 1 then −1 → ‖a‖ = 2 = ‖v_i‖ + ‖v_{i−1}‖: S_trans = 1 (the maximum).
  const back = cams(
    [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ],
    [
      [0, 0, 0],
      [1, 0, 0],
      [0, 0, 0],
    ],
  );
  assert.ok(Math.abs(cameraSmoothness(back, 3, abs).sTrans - 1) < 1e-12);
});

test('constant-speed straight motion with constant-rate turning about a fixed axis scores 1', () => {
  const rots = Array.from({ length: 6 }, (_, f) => [0, 0.07 * f, 0]);
  const centres = Array.from({ length: 6 }, (_, f) => [0.3 * f, 0.1 * f, -0.2 * f]);
  for (const rotationFrame of ['camera', 'world'] as const) {
    const s = cameraSmoothness(cams(rots, centres), 6, { ...abs, rotationFrame });
    assert.ok(s.sTrans < 1e-9 && s.sRot < 1e-9, `${rotationFrame}: ${s.sTrans} ${s.sRot}`);
  }
});

test('fewer than three frames: no acceleration, reward 1', () => {
  assert.equal(
    cameraSmoothness(
      cams(
        [
          [0, 0, 0],
          [0, 1, 0],
        ],
        [
          [0, 0, 0],
          [1, 2, 3],
        ],
      ),
      2,
    ).reward,
    1,
  );
});

test('every family: the smooth path scores higher than the same path with jitter', (t) => {
  const scores: string[] = [];
  for (const family of TRAJECTORY_FAMILIES) {
    const smooth = groundTruth(family, { size: 8 });
    const r0 = motion.compute(smooth);
    for (const seed of [1, 2, 3]) {
      for (const [jp, jr] of [
        [0.01, 0],
        [0, 0.005],
        [0.02, 0.01],
      ]) {
        const shaky = groundTruth(family, { size: 8, seed, jitterPos: jp, jitterRot: jr });
        const r1 = motion.compute({ ...shaky, depth: smooth.depth });
        // Small jitter lowers it; clearly visible jitter lowers it clearly.
        const margin = (jp ?? 0) >= 0.02 ? 0.02 : 0;
        assert.ok(r1 < r0 - margin, `${family} seed ${seed} jitter ${jp}/${jr}: ${r1} vs smooth ${r0}`);
        if (seed === 1) scores.push(`${family} ${jp}/${jr}: ${r1.toFixed(4)}`);
      }
    }
    scores.push(`${family} smooth: ${r0.toFixed(4)}`);
  }
  t.diagnostic(scores.join('; '));
  // Smooth paths sit near the top of [½, 1].
  for (const family of TRAJECTORY_FAMILIES)
    assert.ok(motion.compute(groundTruth(family, { size: 8 })) > 0.95, family);
});

test('more jitter, lower reward (on average over seeds)', () => {
  for (const family of TRAJECTORY_FAMILIES) {
    const mean = (jp: number) => {
      let s = 0;
      for (let seed = 0; seed < 6; seed++) {
        const t = makeTrajectory(family, { frames: 12, jitterPos: jp, jitterRot: jp / 2, seed });
        s += cameraSmoothness(t.extrinsics, 12, MOTION_DEFAULTS, 3).reward;
      }
      return s / 6;
    };
    const [a, b, c] = [mean(0.002), mean(0.01), mean(0.05)];
    assert.ok(a > b && b > c, `${family}: ${a} ${b} ${c}`);
  }
});

test('invariant to scaling and rigidly moving the whole scene with its cameras', () => {
  const shaky = { jitterPos: 0.01, jitterRot: 0.01, seed: 4 };
  // Float64 cameras: float32 rotations are orthonormal only to ~1e-7, which a far translation
  // amplifies into the centres — a property of the input, not of the reward.
  const base = {
    ...groundTruth('arc', { size: 8, ...shaky }),
    extrinsics: makeTrajectory('arc', { frames: 8, ...shaky }).extrinsics,
  };
  const r0 = motion.compute(base);
  fc.assert(
    fc.property(
      fc.double({ min: 0.01, max: 100, noNaN: true }),
      fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.double({ min: -50, max: 50, noNaN: true }), { minLength: 3, maxLength: 3 }),
      (s, w, T) => {
        for (const rotationFrame of ['camera', 'world'] as const) {
          const moved = transformSample(base, s, w, T);
          const a = motion.compute(base, { rotationFrame });
          const b = motion.compute(moved, { rotationFrame });
          assert.ok(Math.abs(a - b) < 1e-7, `${rotationFrame}: ${a} vs ${b}`);
        }
      },
    ),
    { numRuns: 30 },
  );
  assert.ok(r0 < 0.95, 'the jittered path is not trivially smooth');
});

test('reward lies in [½, 1] for arbitrary cameras', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 6, maxLength: 6 }), {
        minLength: 3,
        maxLength: 10,
      }),
      (poses) => {
        const e = cams(
          poses.map((p) => p.slice(0, 3)),
          poses.map((p) => p.slice(3)),
        );
        const r = cameraSmoothness(e, poses.length).reward;
        assert.ok(r >= 0.5 - 1e-12 && r <= 1 + 1e-12, `${r}`);
      },
    ),
  );
});

test('options: defaults, overrides and errors that name the key', () => {
  assert.deepEqual(motion.parseOptions({}), MOTION_DEFAULTS);
  assert.equal(motion.parseOptions({ eps: 0.01 }).eps, 0.01);
  assert.throws(
    () => motion.parseOptions({ epss: 1 }),
    (e: unknown) => e instanceof InputError && /epss/.test(e.message),
  );
  assert.throws(() => motion.parseOptions({ rotationFrame: 'body' }), InputError);
  assert.throws(() => motion.parseOptions({ eps: -1 }), InputError);
});

test('non-finite cameras give NaN; a wrong extrinsics size is an input error', () => {
  const g = groundTruth('orbit', { size: 8 });
  const ext = Float32Array.from(g.extrinsics);
  ext[5] = Number.NaN;
  assert.ok(Number.isNaN(motion.compute({ ...g, extrinsics: ext })));
  assert.throws(() => motion.compute({ ...g, frames: 9 }), InputError);
});

test('noise floor: a dolly whose still rotation carries 0.1° pose noise scores like the exact dolly only with poseNoise', () => {
  const F = 8;
  const rnd = (() => {
    let s = 7;
    return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  })();
  const sigma = (0.1 * Math.PI) / 180;
  // Uniform noise of half-width √3σ has std σ per component.
  const noisy = () => [0, 1, 2].map(() => Math.sqrt(3) * sigma * rnd());
  const centres = Array.from({ length: F }, (_, f) => [0, 0, 0.3 * f]);
  const exact = cams(
    centres.map(() => [0, 0, 0]),
    centres,
  );
  const withNoise = cams(
    centres.map(() => noisy()),
    centres,
  );
  const o = { ...MOTION_DEFAULTS, epsUnit: 'absolute' as const };
  const floor = { ...o, poseNoise: { translation: 0.001, rotation: sigma } };
  const rExact = cameraSmoothness(exact, F, o).reward;
  const rNoisy = cameraSmoothness(withNoise, F, o).reward;
  const rFloor = cameraSmoothness(withNoise, F, floor).reward;
  assert.ok(rExact > 0.999, `exact dolly ${rExact}`);
  assert.ok(rExact - rNoisy > 0.1, `noise/noise on the still axis: ${rNoisy} vs exact ${rExact}`);
  assert.ok(Math.abs(rFloor - rExact) < 1e-9, `floored ${rFloor} vs exact ${rExact}`);
  // Rotation jitter far above the floor is still scored as the paper's form scores it.
  const jittered = cams(
    centres.map(() => [0, 1, 2].map(() => 0.03 * rnd())),
    centres,
  );
  const a = cameraSmoothness(jittered, F, o);
  const b = cameraSmoothness(jittered, F, floor);
  assert.ok(a.sRot > 0.3, `jitter is rough: S_rot ${a.sRot}`);
  assert.equal(b.reward, a.reward);
  // And it is a motion option, validated like the others.
  assert.throws(() => motion.parseOptions({ poseNoise: { rotation: 1 } }), /poseNoise/);
  assert.equal(motion.compute({ ...groundTruth('dolly'), extrinsics: withNoise }, floor), rFloor);
});
