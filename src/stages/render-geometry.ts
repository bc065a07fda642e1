/**
 * `decode-geometry --render DIR`: what the geometry model saw, per sample — the depth of every
 * frame as one colour-mapped PNG strip (near = warm) and the camera path (top-down, SVG + PNG).
 */
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { cameraCentres } from '../geometry/cameras.js';
import { cameraPathSpec, renderSvg } from '../media/plots.js';
import { depthToPng } from '../media/png.js';
import { atomicWrite } from '../shards/atomic.js';
import { readShard, type Shard } from '../shards/shard.js';

/** PNG of sample b's depth, frames side by side, enlarged to ~48 px per frame height. */
export async function depthStrip(shard: Shard, b: number): Promise<Uint8Array> {
  const t = shard.tensors.get('depth')!;
  const [, F, h, w] = t.shape as [number, number, number, number];
  const d = t.data as Float32Array;
  const strip = new Float32Array(F * h * w);
  for (let f = 0; f < F; f++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) strip[i * F * w + f * w + j] = d[((b * F + f) * h + i) * w + j]!;
  return (await depthToPng(strip, F * w, h, { scale: Math.max(1, Math.round(48 / h)) })).png;
}

/**
 * Render every sample of a geometry shard into `dir`; returns the files written.
 *
 * @example
 *   await renderGeometry('runs/x/geometry/shard-0000.safetensors', 'runs/x/render');
 */
export async function renderGeometry(shardPath: string, dir: string): Promise<string[]> {
  const shard = readShard(shardPath, 'geometry');
  const ext = shard.tensors.get('extrinsics')!;
  const [B, F] = ext.shape as [number, number];
  const stem = basename(shardPath, '.safetensors');
  const written: string[] = [];
  for (let b = 0; b < B; b++) {
    const depthPath = join(dir, `${stem}-${String(b).padStart(3, '0')}-depth.png`);
    atomicWrite(depthPath, [await depthStrip(shard, b)]);
    const centres = cameraCentres((ext.data as Float32Array).subarray(b * F * 12, (b + 1) * F * 12));
    const svg = await renderSvg(
      cameraPathSpec({ title: `${stem} #${b}`, paths: [{ name: `sample ${b}`, centres }] }),
    );
    const svgPath = join(dir, `${stem}-${String(b).padStart(3, '0')}-cameras.svg`);
    atomicWrite(svgPath, svg);
    const pngPath = svgPath.replace(/\.svg$/, '.png');
    atomicWrite(pngPath, [await sharp(Buffer.from(svg)).png().toBuffer()]);
    written.push(depthPath, svgPath, pngPath);
  }
  return written;
}
