/**
 * The RGB videos a stitch learns from (`--videos`): a folder of mp4 files (decoded by the bundled
 * ffmpeg binary, spawned directly), a folder of folders of PNG frames (one folder per video,
 * frames in name order), or safetensors shards with `rgb` [B, F, H, W, 3] (what `vggrpo world`
 * writes). Each becomes frames [F, 3, H, W] in [0, 1]; every video must have the size and frame
 * count the encoder takes (no resampling: a silent resize would change what Φ sees).
 *
 * @example
 *   const v = await readVideos('data/clips', { frames: 8, height: 64, width: 64 });
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { InputError } from '../errors.js';
import { ffmpegPath } from '../media/video.js';
import { readSafetensors } from '../shards/safetensors.js';
import { VIDEO } from '../toy/spaces.js';
import { type Split, sampleVideo } from '../toy/videos.js';
import { Rng } from '../world/index.js';

export interface VideoDims {
  frames?: number;
  height?: number;
  width?: number;
}

export interface Videos {
  /** Where each video came from (file, folder or `shard#index`). */
  names: string[];
  /** [F, 3, H, W] in [0, 1] per video. */
  frames: Float32Array[];
  dims: { frames: number; height: number; width: number };
  /** Latents paired with the frames (`final_latents` [B, C, F', H, W] of shards), when every video has them. */
  latents?: { shape: number[]; data: Float32Array[] };
}

/** RGB bytes [F, H, W, 3] → [F, 3, H, W] in [0, 1]. */
function planar(rgb: Uint8Array, F: number, H: number, W: number): Float32Array {
  const out = new Float32Array(F * 3 * H * W);
  const plane = H * W;
  for (let f = 0; f < F; f++) {
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) out[(f * 3 + c) * plane + p] = rgb[3 * (f * plane + p) + c]! / 255;
    }
  }
  return out;
}

/** Decode an mp4 to RGB frames at its own size; a file ffmpeg cannot decode is an InputError naming it. */
export function decodeMp4(
  path: string,
): Promise<{ rgb: Uint8Array; frames: number; height: number; width: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      ffmpegPath(),
      ['-hide_banner', '-nostdin', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const chunks: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => reject(new InputError(path, `cannot run ffmpeg (${e.message})`)));
    child.on('close', (code) => {
      const size = /Video: [^\n]*?, (\d+)x(\d+)\b/.exec(err);
      const rgb = new Uint8Array(Buffer.concat(chunks));
      const last = err.trim().split('\n').at(-1)?.trim() ?? '';
      if (code !== 0 || !size || rgb.length === 0) {
        reject(new InputError(path, `cannot decode the video (ffmpeg: ${last || `exit ${code}`})`));
        return;
      }
      const width = Number(size[1]);
      const height = Number(size[2]);
      const frames = rgb.length / (width * height * 3);
      if (!Number.isInteger(frames)) {
        reject(
          new InputError(
            path,
            `cannot decode the video (${rgb.length} bytes are not whole ${width}×${height} frames)`,
          ),
        );
        return;
      }
      resolve({ rgb, frames, height, width });
    });
  });
}

/** A folder of PNG frames (name order) as RGB bytes. */
async function readPngFolder(
  dir: string,
  files: string[],
): Promise<{ rgb: Uint8Array; frames: number; height: number; width: number }> {
  const parts: Uint8Array[] = [];
  let height = 0;
  let width = 0;
  for (const f of files) {
    let img: { data: Buffer; info: { width: number; height: number } };
    try {
      img = await sharp(join(dir, f))
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
    } catch (e) {
      throw new InputError(join(dir, f), `cannot read the PNG frame (${(e as Error).message})`);
    }
    if (parts.length && (img.info.width !== width || img.info.height !== height)) {
      throw new InputError(
        join(dir, f),
        `is ${img.info.width}×${img.info.height}, the folder's first frame ${width}×${height}`,
      );
    }
    width = img.info.width;
    height = img.info.height;
    parts.push(new Uint8Array(img.data));
  }
  const rgb = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    rgb.set(p, o);
    o += p.length;
  }
  return { rgb, frames: files.length, height, width };
}

/** Check one video against the dims so far (the encoder's, or the first video's). */
function fits(name: string, v: { frames: number; height: number; width: number }, want: VideoDims): void {
  if (
    (want.height !== undefined && v.height !== want.height) ||
    (want.width !== undefined && v.width !== want.width)
  ) {
    throw new InputError(
      name,
      `frames are ${v.width}×${v.height}; the encoder takes ${want.width}×${want.height}`,
    );
  }
  if (want.frames !== undefined && v.frames !== want.frames) {
    throw new InputError(name, `has ${v.frames} frames; the encoder takes ${want.frames}`);
  }
}

/**
 * Read the videos at `path` (a folder or one file), checked against `want`.
 *
 * @example
 *   const { frames, names } = await readVideos('runs/world/geometry', { frames: 8, height: 64, width: 64 });
 */
export async function readVideos(path: string, want: VideoDims): Promise<Videos> {
  if (!existsSync(path)) throw new InputError('--videos', `${path} does not exist`);
  const dims: VideoDims = { ...want };
  const out: Videos = { names: [], frames: [], dims: { frames: 0, height: 0, width: 0 } };
  const add = (name: string, v: { rgb: Uint8Array; frames: number; height: number; width: number }) => {
    fits(name, v, dims);
    dims.frames = v.frames;
    dims.height = v.height;
    dims.width = v.width;
    out.names.push(name);
    out.frames.push(planar(v.rgb, v.frames, v.height, v.width));
  };
  // Latents paired with the frames: kept only if every video has them, in one shape.
  const paired: Float32Array[] = [];
  let pairedShape: number[] | undefined;
  let unpaired = false;
  const addLatents = (file: string, count: number) => {
    const t = readSafetensors(file, { select: (n) => n === 'final_latents' }).tensors.get('final_latents');
    const shape = t?.shape.slice(1);
    if (
      !t ||
      !shape ||
      t.dtype !== 'F32' ||
      t.shape[0] !== count ||
      (pairedShape && shape.join() !== pairedShape.join())
    ) {
      unpaired = true;
      return;
    }
    pairedShape = shape;
    const per = shape.reduce((a, d) => a * d, 1);
    for (let b = 0; b < count; b++)
      paired.push(Float32Array.from((t.data as Float32Array).subarray(b * per, (b + 1) * per)));
  };
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .sort()
        .map((f) => join(path, f))
    : [path];
  for (const f of files) {
    if (f.endsWith('.mp4')) add(f, await decodeMp4(f));
    else if (f.endsWith('.safetensors')) {
      const rgb = readSafetensors(f, { select: (n) => n === 'rgb' }).tensors.get('rgb');
      if (!rgb) throw new InputError(f, "has no 'rgb' tensor [B, F, H, W, 3]");
      if (rgb.dtype !== 'U8' || rgb.shape.length !== 5 || rgb.shape[4] !== 3) {
        throw new InputError(f, `tensor 'rgb': expected U8 [B, F, H, W, 3], got ${rgb.dtype} [${rgb.shape}]`);
      }
      const [B, F, H, W] = rgb.shape as [number, number, number, number];
      const per = F * H * W * 3;
      const data = rgb.data as Uint8Array;
      for (let b = 0; b < B; b++)
        add(`${f}#${b}`, { rgb: data.subarray(b * per, (b + 1) * per), frames: F, height: H, width: W });
      addLatents(f, B);
    } else if (statSync(f).isDirectory()) {
      const pngs = readdirSync(f)
        .filter((p) => p.endsWith('.png'))
        .sort();
      if (pngs.length) add(f, await readPngFolder(f, pngs));
    }
  }
  if (!out.frames.length) {
    throw new InputError(
      '--videos',
      `${path}: no mp4 files, folders of PNG frames or shards with 'rgb' found`,
    );
  }
  out.dims = { frames: dims.frames!, height: dims.height!, width: dims.width! };
  if (!unpaired && pairedShape && paired.length === out.frames.length)
    out.latents = { shape: pairedShape, data: paired };
  return out;
}

/**
 * Toy-world videos from the shared sampler (src/toy/videos.ts): `n` of the training split and
 * `heldOut` of the held-out split (scenes no toy model trains on).
 *
 * @example
 *   const { train, heldout } = toyVideos(64, 16, 0);
 */
export function toyVideos(n: number, heldOut: number, seed: number): { train: Videos; heldout: Videos } {
  const make = (count: number, split: Split, s: number): Videos => {
    const rng = new Rng(s);
    const frames: Float32Array[] = [];
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      frames.push(sampleVideo(rng, split).frames);
      names.push(`toy:${split}#${i}`);
    }
    return { names, frames, dims: { frames: VIDEO.frames, height: VIDEO.height, width: VIDEO.width } };
  };
  return { train: make(n, 'train', seed * 2 + 11), heldout: make(heldOut, 'heldout', seed * 2 + 12) };
}
