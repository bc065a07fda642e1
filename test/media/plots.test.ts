import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { barSpec, cameraPathSpec, lineSpec, renderSvg } from '../../src/media/plots.js';

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
