/**
 * The stitched toy LGM (onnx/fixtures/lgm_stitched.onnx = Φ after tokenizer.output ∘ the paper's
 * connector, made by `vggrpo stitch`): fidelity on held-out groups against ground truth, next to
 * Φ's on the RGB frames of the same videos (src/metrics/fidelity.ts; onnx/measure-lgm.ts prints
 * the whole table). The issue's targets for the LGM are Spearman ≥ 0.75,
 * within-group ≥ 0.94, smooth above ≥ 99%: the committed LGM meets the within-group one (asserted
 * at the target); the others are asserted at what it reaches (Spearman 0.741 — Φ itself gives
 * 0.750 — and 98%, one group short), guarding against regressions without claiming the targets
 * (onnx/fixtures/README.md).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES_DIR } from '../../onnx/build-fixtures.js';
import { lgmPredictor } from '../../onnx/measure-lgm.js';
import { measureFidelity, sessionPredictor } from '../../src/metrics/fidelity.js';
import { ModelSession } from '../../src/runtime/session.js';
import { heldOutGroups } from '../../src/toy/videos.js';

test('stitched LGM on held-out groups (48 of 4): fidelity against ground truth, beside Φ on the RGB frames', async () => {
  const groups = heldOutGroups(48, 4);
  const lgm = await lgmPredictor(join(FIXTURES_DIR, 'lgm_stitched.onnx'), 1);
  const phi = await ModelSession.open(join(FIXTURES_DIR, 'geometry_rgb.onnx'), { threads: 1 });
  try {
    const l = (await measureFidelity(lgm.predict, groups)).overall;
    const p = (await measureFidelity(sessionPredictor(phi), groups)).overall;
    const fmt = (o: object) => JSON.stringify(o, (_, x) => (typeof x === 'number' ? +x.toFixed(4) : x));
    console.log(`LGM: ${fmt(l)}\nΦ:   ${fmt(p)}`);
    // The LGM reads geometry from latents: depth and cameras close to ground truth…
    assert.ok(l.depthRelErr < LGM_BOUNDS.depthRelErr, `depth ${l.depthRelErr}`);
    assert.ok(l.rotErrDeg < LGM_BOUNDS.rotErrDeg, `rotation ${l.rotErrDeg}°`);
    // …and its reward ranks jitter (far above chance: 0 within-group, 50% smooth above).
    assert.ok(l.motionSpearman > LGM_BOUNDS.motionSpearman, `Spearman ${l.motionSpearman}`);
    assert.ok(
      l.withinGroupSpearman > LGM_BOUNDS.withinGroupSpearman,
      `within-group ${l.withinGroupSpearman}`,
    );
    assert.ok(l.smoothAbove >= LGM_BOUNDS.smoothAbove, `smooth above ${l.smoothAbove}`);
    // Stitching loses some of Φ's fidelity, not all of it: the LGM is not better than its source.
    assert.ok(l.rotErrDeg >= p.rotErrDeg, `LGM ${l.rotErrDeg}° vs Φ ${p.rotErrDeg}°`);
  } finally {
    await lgm.release();
    await phi.release();
  }
});

/**
 * What the committed LGM reaches (onnx/measure-lgm.ts: depth 0.048, 1.57°, Spearman 0.741,
 * within-group 0.950, smooth above 98% of 48 groups), with a margin for float noise; within-group
 * at the target.
 */
const LGM_BOUNDS = {
  depthRelErr: 0.06,
  rotErrDeg: 1.8,
  motionSpearman: 0.72,
  withinGroupSpearman: 0.94,
  smoothAbove: 0.95,
};
