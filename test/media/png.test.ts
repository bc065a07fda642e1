import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { colormapTable } from '../../src/media/colormap.js';
import {
  depthFramesToPngs,
  depthToPng,
  frameRow,
  pngDataUri,
  rgbToPng,
  spreadFrames,
  writeDepthPng,
  writeRgbPng,
} from '../../src/media/png.js';

const dir = mkdtempSync(join(tmpdir(), 'vggrpo-png-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('rgbToPng', () => {
  it('round-trips the pixels losslessly and enlarges by whole pixels', async () => {
    const W = 5;
    const H = 3;
    const rgb = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37) % 256);
    const png = await rgbToPng(rgb, W, H);
    const back = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([back.info.width, back.info.height, back.info.channels], [W, H, 3]);
    assert.deepEqual([...back.data], [...rgb]);

    const big = await sharp(await rgbToPng(rgb, W, H, { scale: 4 }))
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual([big.info.width, big.info.height], [4 * W, 4 * H]);
    // Pixel (row 2, col 4) of the original fills the block at rows 8–11, cols 16–19.
    const src = [...rgb.subarray(3 * (2 * W + 4), 3 * (2 * W + 4) + 3)];
    for (const [r, c] of [
      [8, 16],
      [11, 19],
    ]) {
      const o = 3 * (r! * 4 * W + c!);
      assert.deepEqual([...big.data.subarray(o, o + 3)], src);
    }
  });

  it('rejects a buffer of the wrong size', async () => {
    await assert.rejects(rgbToPng(new Uint8Array(10), 2, 2), /expected 2×2×3 bytes/);
  });
});

describe('depth PNGs', () => {
  it('writes files whose sharp metadata has the expected size; near is warm, invalid is black', async () => {
    const W = 8;
    const H = 6;
    const depth = Float32Array.from({ length: W * H }, (_, i) => 1 + (i % W));
    depth[0] = 0;
    const path = await writeDepthPng(join(dir, 'depth.png'), depth, W, H, { scale: 3 });
    const meta = await sharp(path).metadata();
    assert.deepEqual([meta.width, meta.height, meta.format], [3 * W, 3 * H, 'png']);
    const { data } = await sharp(readFileSync(path)).raw().toBuffer({ resolveWithObject: true });
    const at = (r: number, c: number) => [...data.subarray(3 * (r * 3 * W + c), 3 * (r * 3 * W + c) + 3)];
    assert.deepEqual(at(0, 0), [0, 0, 0]);
    const lut = colormapTable('turbo');
    // Depth 1 (the nearest valid value, column 0 from row 1 on) gets the last turbo colour; the farthest the first.
    assert.deepEqual(at(3, 0), [...lut.subarray(765, 768)]);
    assert.deepEqual(at(3, 3 * W - 1), [...lut.subarray(0, 3)]);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  it('reports the range it used and makes a data URI', async () => {
    const { png, min, max } = await depthToPng([1, 2, 3, 4], 2, 2, { lowPercentile: 0, highPercentile: 100 });
    assert.deepEqual([min, max], [1, 4]);
    assert.ok(pngDataUri(png).startsWith('data:image/png;base64,iVBORw0KGgo'));
    const rgbPath = await writeRgbPng(join(dir, 'f.png'), new Uint8Array(12).fill(200), 2, 2);
    assert.equal((await sharp(rgbPath).metadata()).width, 2);
  });
});

describe('depthFramesToPngs', () => {
  it('uses one colour range for all frames, so equal depths get equal colours across frames', async () => {
    const H = 2;
    const W = 2;
    // Frame 0 spans depths 1–4, frame 1 only 3–4: alone, frame 1 would stretch 3 → first colour.
    const depth = [1, 2, 3, 4, 3, 3, 4, 4];
    const { pngs, min, max, frames } = await depthFramesToPngs(
      depth,
      { frames: 2, height: H, width: W },
      { lowPercentile: 0, highPercentile: 100 },
    );
    assert.deepEqual([min, max, frames], [1, 4, [0, 1]]);
    const px = async (png: Buffer) => [...(await sharp(png).raw().toBuffer())];
    const [a, b] = [await px(pngs[0]!), await px(pngs[1]!)];
    assert.deepEqual(b.slice(0, 3), a.slice(6, 9)); // depth 3 in both frames
    assert.deepEqual(b.slice(9, 12), a.slice(9, 12)); // depth 4 in both frames
    await assert.rejects(
      depthFramesToPngs(depth, { frames: 2, height: H, width: W }, { pick: [2] }),
      /no frame 2/,
    );
  });

  it('frameRow: chosen frames side by side, rows kept (hand case)', () => {
    // 3 frames of 2×2, one channel, value = 100·frame + 10·row + column.
    const clip = Float32Array.from(
      { length: 12 },
      (_, q) => 100 * Math.floor(q / 4) + 10 * Math.floor((q % 4) / 2) + (q % 2),
    );
    const row = frameRow(clip, { frames: 3, height: 2, width: 2 }, 1, [2, 0]);
    assert.ok(row instanceof Float32Array);
    assert.deepEqual([...row], [200, 201, 0, 1, 210, 211, 10, 11]);
    // RGB keeps its channels together and its type.
    const rgb = Uint8Array.from({ length: 2 * 1 * 1 * 3 }, (_, q) => q);
    assert.deepEqual([...frameRow(rgb, { frames: 2, height: 1, width: 1 }, 3)], [0, 1, 2, 3, 4, 5]);
    assert.throws(() => frameRow(clip, { frames: 3, height: 2, width: 2 }, 1, [3]), /no frame 3/);
    assert.throws(() => frameRow(clip, { frames: 2, height: 2, width: 2 }, 1), /expected \[2, 2, 2, 1\]/);
  });

  it('spreadFrames: first to last, evenly; every frame when there are few', () => {
    // round(i·15/7) for i = 0…7.
    assert.deepEqual(spreadFrames(16, 8), [0, 2, 4, 6, 9, 11, 13, 15]);
    assert.deepEqual(spreadFrames(5, 8), [0, 1, 2, 3, 4]);
    assert.deepEqual(spreadFrames(81, 2), [0, 80]);
    assert.deepEqual(spreadFrames(81, 1), [0]);
  });
});
