import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Test hook: throw between write and rename to prove no file appears at the target. */
export const atomicHooks: { beforeRename?: (tmp: string) => void } = {};

/**
 * Write bytes to `path` so that readers see either the old file or the complete new one:
 * temp file in the same folder, fsync, rename. On any failure the temp file is removed.
 *
 * @example
 *   atomicWrite('out/report.json', [Buffer.from('{}')]);
 */
export function atomicWrite(path: string, parts: Uint8Array[] | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    try {
      if (typeof parts === 'string') writeAll(fd, Buffer.from(parts, 'utf8'));
      else for (const p of parts) writeAll(fd, p);
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

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}
