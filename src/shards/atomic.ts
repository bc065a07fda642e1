/**
 * The one way the toolkit writes a file: readers see either the old file or the complete new
 * one (temp file in the same folder, fsync, rename, fsync of the folder). Temp files and folders
 * in flight are remembered, so a SIGTERM removes them before the process ends.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Test hook: throw between write and rename to prove no file appears at the target. */
export const atomicHooks: { beforeRename?: (tmp: string) => void } = {};

const inFlight = new Set<string>();

/** A temp name beside `path`, remembered until `settleTemp` (removed on SIGTERM). */
export function tempBeside(path: string, suffix = '.tmp'): string {
  const tag = `${process.pid}.${Date.now().toString(36)}.${Math.floor(Math.random() * 1e9).toString(36)}`;
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
 * Write bytes to `path` atomically. On any failure the temp file is removed.
 *
 * @example
 *   atomicWrite('out/report.json', [Buffer.from('{}')]);
 */
export function atomicWrite(path: string, parts: Uint8Array[] | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = tempBeside(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      if (typeof parts === 'string') writeAll(fd, Buffer.from(parts, 'utf8'));
      else for (const p of parts) writeAll(fd, p);
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

/** Append a line (a log such as metrics.jsonl): the file is rewritten whole, atomically. */
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

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}
