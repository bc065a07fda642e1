/**
 * `decode-geometry --render DIR`: what the geometry model saw, per sample — the depth of every
 * frame as one colour-mapped PNG strip (near = warm) and the camera path (top-down, SVG + PNG).
 */
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { cameraCentres } from '../geometry/cameras.js';
import { cameraPathSpec, renderSvg } from '../media/plots.js';
import { depthToPng, frameRow } from '../media/png.js';
import { atomicWrite } from '../shards/atomic.js';
import { readShard, type Shard } from '../shards/shard.js';

/**
 * PNG of sample b's depth, frames `pick` (default all) side by side, enlarged to ~`height` px
 * (default 48) per frame.
 */
export async function depthStrip(
  shard: Shard,
  b: number,
  opts: { pick?: readonly number[]; height?: number } = {},
): Promise<Uint8Array> {
  const t = shard.tensors.get('depth')!;
  const [, F, h, w] = t.shape as [number, number, number, number];
  const clip = (t.data as Float32Array).subarray(b * F * h * w, (b + 1) * F * h * w);
  const pick = opts.pick ?? Array.from({ length: F }, (_, f) => f);
  const strip = frameRow(clip, { frames: F, height: h, width: w }, 1, pick);
  return (
    await depthToPng(strip, pick.length * w, h, { scale: Math.max(1, Math.round((opts.height ?? 48) / h)) })
  ).png;
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
