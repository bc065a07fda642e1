import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import {
  barSpec,
  cameraPathSpec,
  cameraView,
  lineSpec,
  PAIR_COLOURS,
  renderSvg,
} from '../../src/media/plots.js';

/** Items vega drew, by their ARIA role description (one per line, point, bar …). */
function count(svg: string, role: string): number {
  return svg.split(`aria-roledescription="${role}"`).length - 1;
}

/** A parse by an independent SVG renderer (librsvg via sharp) proves the markup is valid. */
async function assertValidSvg(svg: string): Promise<void> {
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>'));
  const meta = await sharp(Buffer.from(svg)).metadata();
  assert.equal(meta.format, 'svg');
  assert.ok(meta.width! > 100 && meta.height! > 100);
}

describe('plots', () => {
  it('line plot: one line per curve, one point per present value, gaps for missing ones', async () => {
    const svg = await renderSvg(
      lineSpec({
        title: 'Mean reward',
        yTitle: 'reward',
        series: [
          { name: 'motion', y: [0.5, 0.55, null, 0.7] },
          { name: 'reprojection', y: [0.2, 0.3, 0.35, 0.4] },
          { name: 'total', y: [0.1, 0.2, 0.3, Number.NaN], x: [10, 20, 30, 40] },
        ],
      }),
    );
    await assertValidSvg(svg);
    assert.ok(count(svg, 'line mark') >= 3);
    assert.equal(count(svg, 'point'), 3 + 4 + 3);
    assert.ok(svg.includes('Mean reward') && svg.includes('reprojection'));
  });

  it('camera paths: one line per path, points per camera plus a start marker each', async () => {
    const ring = (r: number) =>
      Float64Array.from({ length: 3 * 12 }, (_, k) => {
        const i = Math.floor(k / 3);
        return [r * Math.cos(i / 3), 0.1 * i, r * Math.sin(i / 3)][k % 3]!;
      });
    const svg = await renderSvg(
      cameraPathSpec({
        title: 'Camera paths (top-down)',
        paths: [
          { name: 'reference', centres: ring(1) },
          { name: 'estimated', centres: ring(1.2) },
        ],
      }),
    );
    await assertValidSvg(svg);
    assert.equal(count(svg, 'line mark'), 2);
    assert.equal(count(svg, 'point'), 2 * 12 + 2);
  });

  it('camera path panel: a known centre lands on the hand-computed pixel, in the panel colour', async () => {
    // View centred on (x, z) = (0, 2), half-side 2, 320 px square: x ∈ [−2, 2] → [0, 320] px left to
    // right, z ∈ [0, 4] → [320, 0] px bottom to top. Camera (1, ·, 3) → (320·3/4, 320 − 320·3/4) = (240, 80).
    const svg = await renderSvg(
      cameraPathSpec({
        title: 'base',
        colour: PAIR_COLOURS.base,
        view: { x: 0, z: 2, half: 2 },
        size: 320,
        paths: [
          { name: 's0', centres: [1, 0, 3, 0, 0, 2] },
          { name: 's1', centres: [-1, 0, 1, -2, 0, 0] },
        ],
      }),
    );
    await assertValidSvg(svg);
    assert.equal(count(svg, 'line mark'), 2);
    assert.match(
      svg,
      /aria-label="x \(right\): 1; z \(forward\): 3; path: s0"[^>]*transform="translate\(240,80\)"/,
    );
    assert.match(
      svg,
      /aria-label="x \(right\): −1; z \(forward\): 1; path: s1"[^>]*transform="translate\(80,240\)"/,
    );
    assert.doesNotMatch(svg, /legend/, 'one colour: no legend');
    // Rasterised by librsvg (an independent renderer): the plot frame starts at the root group's offset.
    const [ox, oy] = /<g[^>]*transform="translate\((\d+),(\d+)\)"/.exec(svg)!.slice(1).map(Number) as [
      number,
      number,
    ];
    const { data, info } = await sharp(Buffer.from(svg)).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) =>
      Array.from(
        data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3),
      );
    assert.deepEqual(at(ox + 240, oy + 80), [0x4c, 0x78, 0xa8]);
    assert.deepEqual(at(ox + 0, oy + 320), [0x4c, 0x78, 0xa8], 'camera (−2, ·, 0) at the bottom-left corner');
    assert.deepEqual(at(ox + 300, oy + 300), [255, 255, 255], 'no camera there');
  });

  it('cameraView: the square around every path with a 10% margin', () => {
    const v = cameraView([
      { name: 'a', centres: [0, 5, 0, 2, 5, 1] },
      { name: 'b', centres: [1, 0, -1, Number.NaN, 0, 9] },
    ]);
    // x ∈ [0, 2], z ∈ [−1, 1]: centre (1, 0), half = 0.55 · max(2, 2); the NaN centre is left out.
    assert.deepEqual(v, { x: 1, z: 0, half: 1.1 });
  });

  it('bars: one per finite value, grouped bars side by side', async () => {
    const svg = await renderSvg(
      barSpec({
        title: 'Epipolar error',
        bars: [
          { label: 'base', value: 0.133 },
          { label: 'vggrpo', value: 0.102 },
          { label: 'broken', value: null },
        ],
      }),
    );
    await assertValidSvg(svg);
    assert.equal(count(svg, 'bar'), 2);
    const grouped = await renderSvg(
      barSpec({
        bars: ['a', 'b', 'c'].flatMap((label, i) => [
          { label, value: i + 1, group: 'base' },
          { label, value: i + 0.5, group: 'tuned' },
        ]),
      }),
    );
    await assertValidSvg(grouped);
    assert.equal(count(grouped, 'bar'), 6);
  });
});
