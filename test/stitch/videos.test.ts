import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { writeRgbPng } from '../../src/media/png.js';
import { writeMp4 } from '../../src/media/video.js';
import { ModelSession } from '../../src/runtime/session.js';
import { runStitch } from '../../src/stages/stitch.js';
import { readVideos } from '../../src/stitch/videos.js';
import { tempDir } from '../helpers.js';
import { tinyEncoder, tinyPhi } from './tiny.js';

const dir = tempDir('vggrpo-stitch-videos-');

/** A smooth RGB video [F, H, W, 3]. */
function video(F: number, H: number, W: number, seed: number): Uint8Array {
  const rgb = new Uint8Array(F * H * W * 3);
  let i = 0;
  for (let f = 0; f < F; f++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < 3; c++)
          rgb[i++] = Math.round(127 + 100 * Math.sin(seed + 0.2 * x + 0.15 * y * (c + 1) + 0.3 * f));
  return rgb;
}

test('mp4 files and folders of PNG frames read as [F, 3, H, W] in [0, 1], in name order', async () => {
  const mp4s = join(dir, 'mp4');
  const rgbs = [video(3, 16, 16, 1), video(3, 16, 16, 2)];
  await writeMp4(join(mp4s, 'b.mp4'), rgbs[1]!, { frames: 3, height: 16, width: 16 }, { minSide: 1, crf: 0 });
  await writeMp4(join(mp4s, 'a.mp4'), rgbs[0]!, { frames: 3, height: 16, width: 16 }, { minSide: 1, crf: 0 });
  const v = await readVideos(mp4s, { frames: 3 });
  assert.deepEqual(v.names, [join(mp4s, 'a.mp4'), join(mp4s, 'b.mp4')]);
  assert.deepEqual(v.dims, { frames: 3, height: 16, width: 16 });
  // H.264 in yuv420p is lossy (chroma at half resolution): compare the mean error, one plane.
  let err = 0;
  for (let k = 0; k < 16 * 16; k++) err += Math.abs(v.frames[0]![k]! - rgbs[0]![3 * k]! / 255);
  assert.ok(err / 256 < 0.04, `mean |Δ| ${err / 256}`);

  const pngs = join(dir, 'png');
  const rgb = video(2, 8, 12, 3);
  for (let f = 0; f < 2; f++) {
    mkdirSync(join(pngs, 'clip'), { recursive: true });
    await writeRgbPng(
      join(pngs, 'clip', `${f}.png`),
      rgb.subarray(f * 8 * 12 * 3, (f + 1) * 8 * 12 * 3),
      12,
      8,
    );
  }
  const p = await readVideos(pngs, {});
  assert.deepEqual(p.dims, { frames: 2, height: 8, width: 12 });
  // exact: frame 1, channel 2, row 3, column 5
  assert.equal(
    p.frames[0]![((1 * 3 + 2) * 8 + 3) * 12 + 5],
    Math.fround(rgb[((1 * 8 + 3) * 12 + 5) * 3 + 2]! / 255),
  );
});

test('--toy-videos: a stitch on toy-world videos (train split, held-out split) at the toy sizes', async () => {
  const enc = join(dir, 'enc64.onnx');
  const phi = join(dir, 'phi64.onnx');
  tinyEncoder(enc, { frames: 8, size: 64 });
  tinyPhi(phi, { frames: 8, size: 64 });
  const config = resolveConfig(
    [{ runtime: { threads: 1 }, stitch: { phase1: { steps: 4 }, phase2: { steps: 4 } } }],
    'test',
  );
  const r = await runStitch(
    { geometryModel: phi, encoder: enc, toyVideos: 4, at: 'auto', out: join(dir, 'toy'), config },
    () => {},
    () => {},
  );
  assert.deepEqual(r.videos, { train: 4, heldout: 1 });
  const s = await ModelSession.open(r.lgm, { threads: 1 });
  assert.deepEqual(s.inputs[0]!.shape, ['B', 4, 8, 16, 16]);
  await s.release();
});
