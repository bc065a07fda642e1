import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeDepthMp4, writeMp4 } from '../../src/media/video.js';

const dir = mkdtempSync(join(tmpdir(), 'vggrpo-video-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Top-level ISO-BMFF boxes: [type, size] in file order. */
function boxes(buf: Buffer): [string, number][] {
  const out: [string, number][] = [];
  for (let o = 0; o + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(o);
    out.push([buf.toString('latin1', o + 4, o + 8), size]);
    if (size < 8) break;
    o += size;
  }
  return out;
}

describe('writeMp4', () => {
  it('writes an H.264 MP4: ftyp first, moov before mdat (faststart), boxes span the file', async () => {
    const F = 5;
    const H = 33; // odd: must be padded to even for yuv420p
    const W = 47;
    const rgb = new Uint8Array(F * H * W * 3);
    for (let f = 0; f < F; f++) {
      for (let i = 0; i < H * W; i++)
        rgb.set([(i + 10 * f) % 256, (3 * i) % 256, 40 * f], 3 * (f * H * W + i));
    }
    const path = join(dir, 'clip.mp4');
    const r = await writeMp4(path, rgb, { frames: F, height: H, width: W }, { fps: 4 });
    // Shorter side 33 → factor ⌈256/33⌉ = 8 → 376 × 264, already even.
    assert.deepEqual([r.width, r.height, r.frames], [376, 264, 5]);
    const buf = readFileSync(path);
    assert.equal(r.bytes, buf.length);
    assert.ok(buf.length > 1000);
    const top = boxes(buf);
    assert.equal(top[0]![0], 'ftyp');
    const names = top.map(([t]) => t);
    assert.ok(names.indexOf('moov') >= 0 && names.indexOf('moov') < names.indexOf('mdat'), names.join(','));
    assert.equal(
      top.reduce((s, [, n]) => s + n, 0),
      buf.length,
    );
    assert.ok(buf.includes(Buffer.from('avc1')), 'H.264 sample entry');
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
    );
  });

  it('pads odd sizes to even without enlarging when the frame is big enough', async () => {
    const r = await writeMp4(join(dir, 'odd.mp4'), new Uint8Array(2 * 259 * 261 * 3).fill(77), {
      frames: 2,
      height: 259,
      width: 261,
    });
    assert.deepEqual([r.width, r.height], [262, 260]);
  });

  it('rejects a buffer of the wrong size and leaves nothing behind', async () => {
    await assert.rejects(
      writeMp4(join(dir, 'bad.mp4'), new Uint8Array(7), { frames: 1, height: 2, width: 2 }),
      /expected RGB/,
    );
    assert.ok(!readdirSync(dir).includes('bad.mp4'));
  });

  it('writes a colour-mapped depth video over one shared range', async () => {
    const depth = Float32Array.from(
      { length: 3 * 16 * 16 },
      (_, i) => 1 + Math.floor(i / 256) + (i % 16) / 16,
    );
    const r = await writeDepthMp4(
      join(dir, 'depth.mp4'),
      depth,
      { frames: 3, height: 16, width: 16 },
      { lowPercentile: 0, highPercentile: 100 },
    );
    assert.deepEqual([r.width, r.height, r.min, r.max], [256, 256, 1, 3 + 15 / 16]);
    assert.equal(boxes(readFileSync(r.path))[0]![0], 'ftyp');
  });
});
