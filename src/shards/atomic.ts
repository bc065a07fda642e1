import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
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

/**
 * Write parts to `path` so that readers see either the old file or the complete new one:
 * temp file in the same folder, fsync, rename. On any failure the temp file is removed.
 * Parts are written one after the other, so the file may be far larger than memory.
 *
 * @example
 *   atomicWrite('out/report.json', [Buffer.from('{}')]);
 *   atomicWrite('out/w.data', [{ file: 'in/w.data', offset: 2 ** 32, length: 4096 }]);
 */
export function atomicWrite(path: string, parts: WritePart[] | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.${tmpSeq++}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    try {
      if (typeof parts === 'string') writeAll(fd, Buffer.from(parts, 'utf8'));
      else for (const p of parts) p instanceof Uint8Array ? writeAll(fd, p) : copyRange(fd, p);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    atomicHooks.beforeRename?.(tmp);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Distinguishes temp files of one process written within the same millisecond. */
let tmpSeq = 0;

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

function copyRange(fd: number, r: FileRange): void {
  const src = openSync(r.file, 'r');
  try {
    const buf = new Uint8Array(Math.min(CHUNK, r.length));
    for (let done = 0; done < r.length; ) {
      const n = readSync(src, buf, 0, Math.min(buf.length, r.length - done), r.offset + done);
      if (n === 0) throw new Error(`${r.file}: ended at byte ${r.offset + done} while copying`);
      writeAll(fd, buf.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(src);
  }
}
