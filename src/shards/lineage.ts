/**
 * Lineage is data, not a pointer to follow anywhere. A shard records the files it was made
 * from (`vggrpo.inputs`, `vggrpo.policy`) relative to its own folder; a stage that follows one
 * resolves it against that folder and opens it only if it is a regular file (or, for a
 * policy, a folder) under an allowed root: the current directory, the folders of the inputs
 * named on the command line or stdin, and any `--allow-root DIR` (docs/PIPES.md). A device,
 * FIFO or a file outside the roots is exit 2 naming the shard and the field.
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { InputError } from '../errors.js';
import type { ShardKind } from './schema.js';
import { fileHash, readShard, type Shard } from './shard.js';

/** The folders the stages write by default, one per output kind (src/shards/shard.ts defaultOutDir). */
const KIND_FOLDERS = new Set(['trajectory', 'geometry', 'rewards', 'gradients', 'policy', 'world']);

export class LineageRoots {
  private readonly roots = new Set<string>();

  constructor(extra: string[] = [], cwd = process.cwd()) {
    this.addDir(cwd);
    for (const d of extra) {
      try {
        if (!statSync(d).isDirectory()) throw new Error();
      } catch {
        throw new InputError('--allow-root', `${d} is not a folder`);
      }
      this.addDir(d);
    }
  }

  /**
   * The folder of an input named on the command line or stdin; when that folder is one of the
   * default layout's kind folders (`runs/x/rewards/`), the run folder above it too, where its
   * siblings (`runs/x/geometry/`, `runs/x/trajectory/`) live.
   */
  addInput(file: string): void {
    const dir = dirname(realOrSelf(file));
    this.addDir(dir);
    if (KIND_FOLDERS.has(basename(dir))) this.addDir(dirname(dir));
  }

  addDir(dir: string): void {
    this.roots.add(realOrSelf(dir));
  }

  allows(real: string): boolean {
    for (const r of this.roots) {
      const rel = relative(r, real);
      if (rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))) return true;
    }
    return false;
  }

  list(): string[] {
    return [...this.roots];
  }
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/**
 * Resolve a recorded path of `shard` (field names the metadata entry) against the shard's
 * folder and check it may be opened: it exists, is a regular file (or a folder when `folder`),
 * and lies under an allowed root once symlinks are followed.
 *
 * @example
 *   const geom = lineagePath(rewards.path, 'vggrpo.inputs[0]', rec.path, roots);
 */
export function lineagePath(
  shard: string,
  field: string,
  recorded: string,
  roots: LineageRoots,
  kind: 'file' | 'folder' = 'file',
): string {
  const abs = resolve(dirname(shard), recorded);
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    throw new InputError(
      shard,
      `${field}: ${recorded} not found (resolved against the shard's folder: ${abs})`,
    );
  }
  if (!roots.allows(real)) {
    throw new InputError(
      shard,
      `${field}: ${recorded} resolves to ${real}, outside the allowed folders (the current directory, the inputs' folders; add --allow-root DIR to allow another)`,
    );
  }
  const st = statSync(real);
  if (kind === 'file' && !st.isFile())
    throw new InputError(shard, `${field}: ${recorded} is not a regular file`);
  if (kind === 'folder' && !st.isDirectory())
    throw new InputError(shard, `${field}: ${recorded} is not a folder`);
  return real;
}

/**
 * Read input `k` of a shard's lineage: resolved and checked as above, its content hash compared
 * with the recorded one, then read as a shard of the expected kind.
 *
 * @example
 *   const geom = followInput(rewards, 0, 'geometry', roots);
 */
export function followInput(
  from: Shard,
  k: number,
  kind: ShardKind | ShardKind[],
  roots: LineageRoots,
): Shard {
  return readShard(checkedInput(from, k, roots), kind);
}

/** Input `k` of a shard's lineage, resolved, checked and hash-compared; its real path. */
export function checkedInput(from: Shard, k: number, roots: LineageRoots): string {
  const rec = from.recordedInputs[k];
  const field = `vggrpo.inputs[${k}]`;
  if (!rec) throw new InputError(from.path, `${field}: no input recorded`);
  const real = lineagePath(from.path, field, rec.path, roots);
  if (fileHash(real) !== rec.sha256)
    throw new InputError(
      from.path,
      `${field}: ${rec.path} changed since this shard was written (sha256 mismatch)`,
    );
  return real;
}
