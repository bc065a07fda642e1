/**
 * The reward-cost benchmark's stand-ins (bench/reward-cost-models.ts) at a tiny size meet the
 * contracts they stand in for, through the stages' own code: the Wan-shaped decoder turns F
 * latent frames into 1 + 4(F − 1) frames at 8× the size in B3FHW within [−1, 1]
 * (`vae.temporal_compression: 4`), the VGGT-shaped Φ reads them at the latent frames' positions
 * (one geometry entry per latent frame), and the stitched LGM gives the same output shapes from
 * the latents, with its connector at the paper's stride 1×2×2 landing on Φ's patch grid.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { geometryModel, latentGeometryModel, videoDecoder } from '../../bench/reward-cost-models.js';
import { resolveConfig } from '../../src/config/load.js';
import { saveModel } from '../../src/onnx/model.js';
import { f32 } from '../../src/shards/tensor.js';
import { decodeLatents, openLgm } from '../../src/stages/decode-geometry.js';
import { decodeViaRgb, openRgbPath } from '../../src/stages/rgb-path.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-rc-models-');

test('Wan-shaped decoder → VGGT-shaped Φ and the stitched LGM agree on every output shape', async () => {
  const [B, C, F, H, W] = [2, 16, 3, 4, 6];
  const vggt = { frames: F, gridH: H / 2, gridW: W / 2, dim: 32, heads: 2, blocks: 4 };
  const save = (g: { toModel(): Parameters<typeof saveModel>[0] }, name: string) => {
    saveModel(g.toModel(), join(dir, name));
    return join(dir, name);
  };
  const decoder = save(
    videoDecoder({
      latentChannels: C,
      frames: F,
      height: H,
      width: W,
      width0: 8,
      stages: [
        { width: 8, up: '3d' },
        { width: 8, up: '3d' },
        { width: 4, up: '2d' },
        { width: 4, up: 'none' },
      ],
      output: 'wan',
    }),
    'vae.onnx',
  );
  const phi = save(geometryModel({ ...vggt, height: 8 * H, width: 8 * W, patch: 14 }), 'phi.onnx');
  const lgm = save(
    latentGeometryModel({ ...vggt, latentChannels: C, latentHeight: H, latentWidth: W, stitchAt: 2 }),
    'lgm.onnx',
  );
  const config = resolveConfig([
    {
      models: { lgm, vae_decoder: decoder, geometry: phi },
      vae: { output_range: [-1, 1], layout: 'B3FHW', temporal_compression: 4 },
      runtime: { threads: 1 },
    },
  ]);
  const x = f32(
    [B, C, F, H, W],
    Float32Array.from({ length: B * C * F * H * W }, (_, i) => Math.sin(i)),
  );
  const rgb = await openRgbPath(config);
  const frames = await rgb.vae.decodeFrames(x);
  assert.deepEqual(frames.shape, [B, 1 + 4 * (F - 1), 3, 8 * H, 8 * W]);
  const g = await decodeViaRgb(rgb, config, x);
  await rgb.release();
  const s = await openLgm(config);
  const l = await decodeLatents(s, config, x);
  await s.release();
  for (const k of ['depth', 'points', 'confidence', 'extrinsics', 'intrinsics', 'scene_flow'] as const) {
    assert.deepEqual(g[k]!.shape, l[k]!.shape, k);
    assert.ok((g[k]!.data as Float32Array).every(Number.isFinite), `${k} finite`);
  }
  assert.deepEqual(g.depth.shape, [B, F, H / 2, W / 2]);
  assert.equal(g.warnings.length + l.warnings.length, 0);
});
