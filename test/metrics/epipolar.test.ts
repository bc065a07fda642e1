import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultStride, epipolarError, framePairs, pairSampsonError } from '../../src/metrics/epipolar.js';
import { loadOpenCv, matchFeatures, rgbToGrey } from '../../src/metrics/features.js';
import { seededRandom } from '../../src/metrics/fundamental.js';

/** A canvas of random coloured rectangles (corners for ORB), RGB [size, size, 3]. */
function texture(size: number, seed: number): Uint8Array {
  const u = seededRandom(seed);
  const img = new Uint8Array(size * size * 3).fill(128);
  for (let r = 0; r < 90; r++) {
    const x0 = Math.floor(u() * size);
    const y0 = Math.floor(u() * size);
    const w = 3 + Math.floor(u() * 14);
    const h = 3 + Math.floor(u() * 14);
    const c = [u() * 255, u() * 255, u() * 255];
    for (let y = y0; y < Math.min(size, y0 + h); y++) {
      for (let x = x0; x < Math.min(size, x0 + w); x++) img.set(c, 3 * (y * size + x));
    }
  }
  return img;
}

/** A W×H window of the canvas whose top-left corner is (x, y): content moves by (−x, −y). */
function crop(canvas: Uint8Array, size: number, x: number, y: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++)
    out.set(canvas.subarray(3 * ((y + r) * size + x), 3 * ((y + r) * size + x + w)), 3 * r * w);
  return out;
}

function clip(frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let o = 0;
  for (const f of frames) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describe('frame pairs', () => {
  it('keeps the paper stride of 15 for 81-frame clips and scales it down for short ones', () => {
    assert.equal(defaultStride(81), 15);
    assert.equal(defaultStride(200), 15);
    assert.equal(defaultStride(9), 2);
    assert.equal(defaultStride(2), 1);
    assert.deepEqual(framePairs(81, 15), [
      [0, 15],
      [15, 30],
      [30, 45],
      [45, 60],
      [60, 75],
    ]);
    assert.deepEqual(framePairs(1, 1), []);
  });
});

describe('pairSampsonError', () => {
  it('is null (never a number) below the match threshold', () => {
    const p = Float64Array.from({ length: 38 }, (_, i) => i * 3.7);
    const r = pairSampsonError(
      p,
      p.map((v) => v + 1),
    );
    assert.equal(r.error, null);
    assert.match(r.reason!, /19 matches < 20/);
  });
});

describe('epipolarError on rendered textured frames (opencv ORB)', () => {
  const size = 96;
  const canvas = texture(size, 11);
  const W = 64;
  const H = 64;

  it('matches a shifted toy frame and maps keypoints back to original pixels', async () => {
    const hooks = () => ['uncaughtException', 'unhandledRejection'].map((e) => process.listenerCount(e));
    const before = hooks();
    const { cv } = await loadOpenCv();
    assert.deepEqual(hooks(), before, 'opencv.js left process-wide error hooks behind');
    const a = rgbToGrey(crop(canvas, size, 10, 10, W, H), W, H);
    const b = rgbToGrey(crop(canvas, size, 14, 8, W, H), W, H);
    const m = matchFeatures(cv, a, b);
    assert.equal(m.upsample, 4);
    assert.ok(m.count >= 20, `only ${m.count} matches`);
    // The window moved by (+4, −2), so content moves by (−4, +2).
    const dx = median(Array.from({ length: m.count }, (_, i) => m.p2[2 * i]! - m.p1[2 * i]!));
    const dy = median(Array.from({ length: m.count }, (_, i) => m.p2[2 * i + 1]! - m.p1[2 * i + 1]!));
    assert.ok(Math.abs(dx + 4) < 0.3 && Math.abs(dy - 2) < 0.3, `median shift (${dx}, ${dy})`);
  });

  it('a rigidly moving clip scores well below 1 px; mixed motions score higher; blank frames are undefined', async () => {
    const rigid = clip([0, 1, 2].map((k) => crop(canvas, size, 8 + 3 * k, 8 + k, W, H)));
    const r = await epipolarError(rigid, { frames: 3, height: H, width: W }, { stride: 1 });
    assert.equal(r.detector, 'ORB');
    assert.equal(r.validPairs, 2);
    assert.ok(r.error !== null && r.error < 0.5, `rigid error ${r.error}`);

    // Two planes translating differently are still one rigid scene (F = [e]×H), so inconsistency needs
    // more: four quadrants moving in four directions admit no single epipolar geometry.
    const shifts = [
      [3, 0],
      [0, 3],
      [-3, 0],
      [0, -3],
    ];
    const mixed = (k: number) => {
      const out = new Uint8Array(W * H * 3);
      shifts.forEach(([sx, sy], q) => {
        const win = crop(canvas, size, 16 + k * sx!, 16 + k * sy!, W, H);
        const x0 = (q % 2) * (W / 2);
        const y0 = Math.floor(q / 2) * (H / 2);
        for (let y = y0; y < y0 + H / 2; y++)
          out.set(win.subarray(3 * (y * W + x0), 3 * (y * W + x0 + W / 2)), 3 * (y * W + x0));
      });
      return out;
    };
    const m = await epipolarError(clip([mixed(0), mixed(1)]), { frames: 2, height: H, width: W });
    assert.ok(
      m.error !== null && r.error !== null && m.error > 3 * r.error,
      `mixed ${m.error} vs rigid ${r.error}`,
    );

    const blank = new Uint8Array(2 * H * W * 3).fill(90);
    const z = await epipolarError(blank, { frames: 2, height: H, width: W });
    assert.equal(z.error, null);
    assert.equal(z.validPairs, 0);
    assert.match(z.pairs[0]!.reason!, /matches < 20/);
  });

  it('rejects a buffer that does not match its dimensions', async () => {
    await assert.rejects(
      epipolarError(new Uint8Array(10), { frames: 2, height: 4, width: 4 }),
      /expected RGB/,
    );
  });
});
