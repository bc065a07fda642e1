import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyColormap, colormapTable } from '../../src/media/colormap.js';

const hex = (lut: Uint8Array, i: number) =>
  `#${Array.from(lut.subarray(3 * i, 3 * i + 3), (v) => v.toString(16).padStart(2, '0')).join('')}`;

describe('colormapTable', () => {
  it('viridis runs from #440154 to #fde725 (matplotlib’s published end colours)', () => {
    const lut = colormapTable('viridis');
    assert.equal(lut.length, 768);
    assert.equal(hex(lut, 0), '#440154');
    assert.equal(hex(lut, 255), '#fde725');
  });

  it('turbo starts dark, passes through bright green-yellow and ends red', () => {
    const lut = colormapTable('turbo');
    const lum = (i: number) => lut[3 * i]! + lut[3 * i + 1]! + lut[3 * i + 2]!;
    assert.ok(lum(0) < 150 && lum(255) < 200 && lum(128) > 450);
    assert.ok(lut[3 * 255]! > 4 * lut[3 * 255 + 2]!, 'last colour is red');
  });

  it('rejects an unknown name', () => {
    assert.throws(() => colormapTable('nope' as 'turbo'), /unknown colour map/);
  });
});

describe('applyColormap', () => {
  it('maps min/max to the ends, clamps outside, reverses, and paints invalid values', () => {
    const lut = colormapTable('viridis');
    const { rgb, min, max } = applyColormap([0, 10, -5, 20, Number.NaN], {
      name: 'viridis',
      min: 0,
      max: 10,
    });
    assert.equal(min, 0);
    assert.equal(max, 10);
    assert.deepEqual([...rgb.subarray(0, 3)], [...lut.subarray(0, 3)]);
    assert.deepEqual([...rgb.subarray(3, 6)], [...lut.subarray(765, 768)]);
    assert.deepEqual([...rgb.subarray(6, 9)], [...lut.subarray(0, 3)]);
    assert.deepEqual([...rgb.subarray(9, 12)], [...lut.subarray(765, 768)]);
    assert.deepEqual([...rgb.subarray(12, 15)], [0, 0, 0]);
    const rev = applyColormap([0, 10], {
      name: 'viridis',
      min: 0,
      max: 10,
      reverse: true,
      invalidColor: [1, 2, 3],
    }).rgb;
    assert.deepEqual([...rev.subarray(0, 3)], [...lut.subarray(765, 768)]);
  });

  it('chooses a percentile range so one far outlier does not flatten the rest', () => {
    const values = Array.from({ length: 200 }, (_, i) => 1 + i / 100);
    values.push(1e6, 0, -1);
    const { min, max, rgb } = applyColormap(values, { valid: (v) => v > 0 });
    assert.ok(min >= 1 && min < 1.1, `min ${min}`);
    assert.ok(max > 2.8 && max < 3, `max ${max}`);
    // The 0 and −1 entries are invalid under `valid`, so black.
    assert.deepEqual([...rgb.subarray(3 * 201, 3 * 203)], [0, 0, 0, 0, 0, 0]);
  });
});
