/**
 * The one way the toolkit writes a file: readers see either the old file or the complete new
 * one (temp file in the same folder, fsync, rename, fsync of the folder). Parts are streamed one
 * after the other — bytes in memory or ranges of other files — so a file may be far larger than
 * memory. Temp files and folders in flight are remembered, so a SIGTERM removes them.
 * `atomicWriteAsync` does the same for bytes in memory on libuv's threads, so a stage can write
 * one file while it computes the next.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Test hook: throw between write and rename to prove no file appears at the target. */
export const atomicHooks: { beforeRename?: (tmp: string) => void } = {};

/** Bytes `[offset, offset + length)` of a file, copied in chunks (never held whole in memory). */
export interface FileRange {
  file: string;
  offset: number;
  length: number;
}

/** What a writer streams, in order: bytes in memory, or ranges of other files. */
export type WritePart = Uint8Array | FileRange;

const CHUNK = 8 << 20;
/** Granularity of the holes a copy keeps. */
const BLOCK = 64 << 10;

const inFlight = new Set<string>();
/** Distinguishes temp files of one process made within the same millisecond. */
let tmpSeq = 0;

/** A temp name beside `path`, remembered until `settleTemp` (removed on SIGTERM). */
export function tempBeside(path: string, suffix = '.tmp'): string {
  const tag = `${process.pid}.${Date.now().toString(36)}.${tmpSeq++}`;
  const tmp = join(dirname(path), `.${basename(path)}.${tag}${suffix}`);
  inFlight.add(tmp);
  return tmp;
}

/** The temp file or folder was renamed into place or removed. */
export function settleTemp(tmp: string): void {
  inFlight.delete(tmp);
}

/** Remove every temp file or folder still in flight (the process is being stopped). */
export function removeTempsInFlight(): void {
  for (const t of inFlight) rmSync(t, { recursive: true, force: true });
  inFlight.clear();
}

/**
 * Write parts to `path` atomically. On any failure the temp file is removed.
 *
 * @example
 *   atomicWrite('out/report.json', [Buffer.from('{}')]);
 *   atomicWrite('out/w.data', [{ file: 'in/w.data', offset: 2 ** 32, length: 4096 }]);
 */
export function atomicWrite(path: string, parts: WritePart[] | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = tempBeside(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      let pos = 0;
      if (typeof parts === 'string') pos = writeAt(fd, Buffer.from(parts, 'utf8'), pos);
      else for (const p of parts) pos = p instanceof Uint8Array ? writeAt(fd, p, pos) : copyRange(fd, p, pos);
      ftruncateSync(fd, pos); // a copy that ended in a hole
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    atomicHooks.beforeRename?.(tmp);
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    settleTemp(tmp);
  }
}

/**
 * atomicWrite for bytes in memory, the writing and fsync off the main thread. The parts must
 * not change until it settles.
 *
 * @example
 *   const done = atomicWriteAsync('out/shard-0000.safetensors', parts); // …compute… await done;
 */
export async function atomicWriteAsync(path: string, parts: Uint8Array[]): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = tempBeside(path);
  try {
    const fh = await open(tmp, 'w');
    try {
      let pos = 0;
      for (const p of parts) {
        for (let off = 0; off < p.length; )
          off += (await fh.write(p, off, p.length - off, pos + off)).bytesWritten;
        pos += p.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    atomicHooks.beforeRename?.(tmp);
    await rename(tmp, path);
    fsyncDir(dir);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    settleTemp(tmp);
  }
}

/** Append text (a log such as metrics.jsonl): the file is rewritten whole, atomically. */
export function atomicAppend(path: string, text: string): void {
  const old = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  atomicWrite(path, [old, Buffer.from(text, 'utf8')]);
}

/** fsync a folder, so a rename in it survives a crash. */
export function fsyncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAt(fd: number, bytes: Uint8Array, pos: number): number {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, pos + off);
  return pos + bytes.length;
}

/** Copy a range chunk by chunk; all-zero blocks are skipped, so holes in a sparse source stay holes. */
function copyRange(fd: number, r: FileRange, pos: number): number {
  const src = openSync(r.file, 'r');
  try {
    const buf = new Uint8Array(Math.min(CHUNK, r.length));
    for (let done = 0; done < r.length; ) {
      const n = readSync(src, buf, 0, Math.min(buf.length, r.length - done), r.offset + done);
      if (n === 0) throw new Error(`${r.file}: ended at byte ${r.offset + done} while copying`);
      // Write runs of non-zero blocks; all-zero blocks are left as holes.
      for (let b = 0; b < n; ) {
        let e = b;
        while (e < n && !allZero(buf.subarray(e, Math.min(e + BLOCK, n)))) e = Math.min(e + BLOCK, n);
        if (e > b) writeAt(fd, buf.subarray(b, e), pos + done + b);
        b = e < n ? Math.min(e + BLOCK, n) : n;
      }
      done += n;
    }
  } finally {
    closeSync(src);
  }
  return pos + r.length;
}

/** True when every byte is 0 (real weights fail on the first word, so this costs nothing there). */
function allZero(b: Uint8Array): boolean {
  const words = new BigUint64Array(b.buffer, b.byteOffset, b.length >> 3);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  for (let i = words.length << 3; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
