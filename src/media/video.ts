/**
 * MP4 (H.264) writing by spawning the ffmpeg binary of `@ffmpeg-installer/ffmpeg` directly:
 * raw rgb24 frames on stdin, libx264, yuv420p (what browsers play), faststart (the index first,
 * so a page can start playing before the whole file arrives). yuv420p needs even sizes, so odd
 * frames are padded by one pixel; toy frames are enlarged by an integer factor first.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { check, RuntimeFailure } from '../errors.js';
import { settleTemp, tempBeside } from '../shards/atomic.js';
import { applyColormap, type ColormapOptions } from './colormap.js';

/** Path of the bundled ffmpeg binary. */
export function ffmpegPath(): string {
  const require = createRequire(import.meta.url);
  return (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
}

export interface VideoOptions {
  /** Frames per second. Default 8. */
  fps?: number;
  /** x264 constant rate factor (lower is better). Default 18. */
  crf?: number;
  /** Enlarge (nearest neighbour) by the smallest integer factor that makes the shorter side ≥ this. Default 256. */
  minSide?: number;
}

export interface VideoResult {
  path: string;
  width: number;
  height: number;
  frames: number;
  bytes: number;
}

/**
 * Encode RGB frames [F, H, W, 3] as an H.264 MP4 at `path` (temp file + rename: no half-written
 * video is ever left).
 *
 * @example
 *   await writeMp4('runs/x/eval/sample0.mp4', rgb, { frames: 16, height: 64, width: 64 }, { fps: 8 });
 */
export async function writeMp4(
  path: string,
  rgb: Uint8Array,
  dims: { frames: number; height: number; width: number },
  opts: VideoOptions = {},
): Promise<VideoResult> {
  const { frames, height, width } = dims;
  check(frames >= 1 && height >= 1 && width >= 1, 'writeMp4', 'empty video');
  check(
    rgb.length === frames * height * width * 3,
    'writeMp4',
    `expected RGB [${frames}, ${height}, ${width}, 3] = ${frames * height * width * 3} bytes, got ${rgb.length}`,
  );
  const fps = opts.fps ?? 8;
  const factor = Math.max(1, Math.ceil((opts.minSide ?? 256) / Math.min(width, height)));
  const outW = 2 * Math.ceil((width * factor) / 2);
  const outH = 2 * Math.ceil((height * factor) / 2);
  const filters = [
    ...(factor > 1 ? [`scale=${width * factor}:${height * factor}:flags=neighbor`] : []),
    `pad=${outW}:${outH}:0:0:black`,
  ];
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempBeside(path, '.tmp.mp4');
  const args = [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-y'],
    ...['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0'],
    ...['-vf', filters.join(','), '-c:v', 'libx264', '-preset', 'veryfast', '-crf', String(opts.crf ?? 18)],
    ...['-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-threads', '1', '-f', 'mp4', tmp],
  ];
  try {
    await runFfmpeg(args, rgb);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    settleTemp(tmp);
  }
  return { path, width: outW, height: outH, frames, bytes: statSync(path).size };
}

function runFfmpeg(args: string[], input: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath(), args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', (err) => reject(new RuntimeFailure(`ffmpeg could not start: ${err.message}`)));
    // EPIPE when ffmpeg exits early: the exit code and stderr below say why.
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new RuntimeFailure(
            `ffmpeg exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
          ),
        );
    });
    child.stdin.end(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  });
}

/**
 * A colour-mapped depth video: every frame of depth [F, H, W] through one shared colour range
 * (near = warm, depth ≤ 0 black), encoded like `writeMp4`.
 *
 * @example
 *   await writeDepthMp4('runs/x/eval/depth0.mp4', depth, { frames: 8, height: 32, width: 32 });
 */
export async function writeDepthMp4(
  path: string,
  depth: ArrayLike<number>,
  dims: { frames: number; height: number; width: number },
  opts: VideoOptions & ColormapOptions = {},
): Promise<VideoResult & { min: number; max: number }> {
  check(
    depth.length === dims.frames * dims.height * dims.width,
    'writeDepthMp4',
    `expected depth [${dims.frames}, ${dims.height}, ${dims.width}], got ${depth.length} values`,
  );
  const { rgb, min, max } = applyColormap(depth, { reverse: true, valid: (d) => d > 0, ...opts });
  return { ...(await writeMp4(path, rgb, dims, opts)), min, max };
}
