/**
 * PNG encoding of RGB frames and colour-mapped depth maps through sharp, written atomically.
 * Small toy outputs are enlarged by an integer factor with nearest-neighbour sampling, so each
 * model pixel stays a crisp square rather than a blur.
 */
import sharp from 'sharp';
import { check } from '../errors.js';
import { atomicWrite } from '../shards/atomic.js';
import { applyColormap, type ColormapOptions } from './colormap.js';

export interface PngOptions {
  /** Enlarge by this integer factor (nearest neighbour). Default 1. */
  scale?: number;
}

/**
 * Encode RGB bytes [H, W, 3] as a PNG.
 *
 * @example
 *   const png = await rgbToPng(frame, 64, 64, { scale: 4 }); // 256 × 256
 */
export async function rgbToPng(
  rgb: Uint8Array,
  width: number,
  height: number,
  opts: PngOptions = {},
): Promise<Buffer> {
  check(
    rgb.length === width * height * 3,
    'rgbToPng',
    `expected ${width}×${height}×3 bytes, got ${rgb.length}`,
  );
  const scale = opts.scale ?? 1;
  check(Number.isInteger(scale) && scale >= 1, 'rgbToPng', `scale must be a positive integer, got ${scale}`);
  let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), {
    raw: { width, height, channels: 3 },
  });
  if (scale > 1) img = img.resize(width * scale, height * scale, { kernel: 'nearest' });
  return img.png({ compressionLevel: 9 }).toBuffer();
}

export interface DepthPngOptions extends PngOptions, ColormapOptions {}

/**
 * Colour-map a depth map [H, W] (near = warm by default; depth ≤ 0 or non-finite is invalid and
 * drawn black) and encode it as a PNG. Returns the PNG and the depth range the colours span.
 *
 * @example
 *   const { png, min, max } = await depthToPng(depth, 32, 32, { scale: 4 });
 */
export async function depthToPng(
  depth: ArrayLike<number>,
  width: number,
  height: number,
  opts: DepthPngOptions = {},
): Promise<{ png: Buffer; min: number; max: number }> {
  check(
    depth.length === width * height,
    'depthToPng',
    `expected ${width}×${height} values, got ${depth.length}`,
  );
  const { rgb, min, max } = applyColormap(depth, { reverse: true, valid: (d) => d > 0, ...opts });
  return { png: await rgbToPng(rgb, width, height, opts), min, max };
}

/** Write RGB bytes as a PNG file (atomically). */
export async function writeRgbPng(
  path: string,
  rgb: Uint8Array,
  width: number,
  height: number,
  opts: PngOptions = {},
): Promise<string> {
  atomicWrite(path, [await rgbToPng(rgb, width, height, opts)]);
  return path;
}

/** Write a colour-mapped depth map as a PNG file (atomically). */
export async function writeDepthPng(
  path: string,
  depth: ArrayLike<number>,
  width: number,
  height: number,
  opts: DepthPngOptions = {},
): Promise<string> {
  atomicWrite(path, [(await depthToPng(depth, width, height, opts)).png]);
  return path;
}

/**
 * Frames `pick` (default all) of a clip [F, H, W, C] side by side, as one image [H, k·W, C]: the
 * strip a report shows beside its video.
 *
 * @example
 *   const row = frameRow(rgb, { frames: 16, height: 64, width: 64 }, 3, [0, 5, 10, 15]); // [64, 256, 3]
 */
export function frameRow<T extends Uint8Array | Float32Array>(
  clip: T,
  dims: { frames: number; height: number; width: number },
  channels: number,
  pick: readonly number[] = Array.from({ length: dims.frames }, (_, f) => f),
): T {
  const { frames, height: H, width: W } = dims;
  const row = W * channels;
  check(clip.length === frames * H * row, 'frameRow', `expected [${frames}, ${H}, ${W}, ${channels}] values`);
  for (const f of pick) check(Number.isInteger(f) && f >= 0 && f < frames, 'frameRow', `no frame ${f}`);
  const out = (
    clip instanceof Uint8Array
      ? new Uint8Array(pick.length * H * row)
      : new Float32Array(pick.length * H * row)
  ) as T;
  pick.forEach((f, k) => {
    for (let i = 0; i < H; i++)
      out.set(clip.subarray((f * H + i) * row, (f * H + i + 1) * row), (i * pick.length + k) * row);
  });
  return out;
}

/** Up to `k` frame indices of `frames`, evenly spread from the first to the last. */
export function spreadFrames(frames: number, k: number): number[] {
  if (frames <= k) return Array.from({ length: frames }, (_, f) => f);
  if (k <= 1) return [0];
  return Array.from({ length: k }, (_, i) => Math.round((i * (frames - 1)) / (k - 1)));
}

/** A `data:image/png;base64,…` URI, for inlining images into a self-contained HTML page. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

/**
 * Colour-map chosen frames of a depth clip [F, H, W] with one range shared by all frames (so a
 * colour means the same depth in every thumbnail) and encode each as a PNG.
 *
 * @example
 *   const { pngs } = await depthFramesToPngs(depth, { frames: 8, height: 32, width: 32 }, { pick: [0, 4, 7], scale: 4 });
 */
export async function depthFramesToPngs(
  depth: ArrayLike<number>,
  dims: { frames: number; height: number; width: number },
  opts: DepthPngOptions & { pick?: number[] } = {},
): Promise<{ pngs: Buffer[]; frames: number[]; min: number; max: number }> {
  const { frames, height, width } = dims;
  const n = height * width;
  check(
    depth.length === frames * n,
    'depthFramesToPngs',
    `expected [${frames}, ${height}, ${width}] values, got ${depth.length}`,
  );
  const pick = opts.pick ?? Array.from({ length: frames }, (_, f) => f);
  for (const f of pick)
    check(Number.isInteger(f) && f >= 0 && f < frames, 'depthFramesToPngs', `no frame ${f}`);
  const { rgb, min, max } = applyColormap(depth, { reverse: true, valid: (d) => d > 0, ...opts });
  const pngs = await Promise.all(
    pick.map((f) => rgbToPng(rgb.subarray(3 * f * n, 3 * (f + 1) * n), width, height, opts)),
  );
  return { pngs, frames: pick, min, max };
}
