/**
 * Models vggrpo derives at run time (the LoRA-injected denoiser, its gradient graphs) opened by
 * onnxruntime from files, never from one protobuf buffer, which cannot exceed 2 GB.
 *
 * A derived model of a model with external data is written once to the cache folder
 * (`$VGGRPO_CACHE`, else `~/.cache/vggrpo`), under `models/<content hash>.onnx`. Its weights are
 * not copied: each source data file is hard-linked into the same folder (onnxruntime only reads
 * data files inside the model's folder; a copy is made where a link is impossible), and the
 * tensors keep their offsets. Every file is written to a temp name and renamed, and the content
 * hash names the result, so processes building the same model at once write identical files and
 * cannot corrupt each other. Small self-contained models (the toy's) are opened from bytes: they
 * need no cache.
 *
 * @example
 *   const session = await openModel(injectLora(loadModel(path), lora).model, { device: 'cpu' }, path);
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { externalRef } from '../onnx/external-data.js';
import { allTensors, encodeModel, loadModel, type ModelProto, saveModel } from '../onnx/model.js';
import { ModelSession, type RuntimeOptions } from './session.js';

/** Self-contained models up to this size are handed to onnxruntime as bytes. */
const INLINE_LIMIT = 1 << 30;
/** New tensors of at least this size go to the cached model's own data file. */
const DATA_THRESHOLD = 1 << 20;

/** The cache folder: `$VGGRPO_CACHE`, else `~/.cache/vggrpo`. */
export function cacheDir(): string {
  return process.env.VGGRPO_CACHE || join(homedir(), '.cache', 'vggrpo');
}

/**
 * Open a model held in memory (its external tensors as loadModel left them).
 *
 * @example
 *   const s = await openModel(gradModel, runtimeOptions(config), 'den.onnx (gradient graph)');
 */
export async function openModel(
  model: ModelProto,
  opts: Partial<RuntimeOptions>,
  label: string,
): Promise<ModelSession> {
  let inline = 0;
  let external = false;
  for (const t of allTensors(model)) {
    if (externalRef(t)) external = true;
    else inline += t.rawData?.length ?? 0;
  }
  if (!external && inline < INLINE_LIMIT) return ModelSession.open(encodeModel(model), opts, label);
  return ModelSession.open(cachedModelFile(model), opts, label);
}

/**
 * The path of `model` in the cache, written there unless an earlier run (or a concurrent
 * process) already did.
 *
 * @example
 *   const path = cachedModelFile(model); // ~/.cache/vggrpo/models/3f…e1.onnx
 */
export function cachedModelFile(model: ModelProto): string {
  const dir = join(cacheDir(), 'models');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new InputError(
      dir,
      `cannot create the model cache (${(err as NodeJS.ErrnoException).code}); set VGGRPO_CACHE`,
    );
  }
  // Source data files by identity (path, inode, size, mtime): hashing gigabytes on every run
  // would cost more than the build it saves.
  const links = new Map<string, string>();
  for (const t of allTensors(model)) {
    const ref = externalRef(t);
    if (!ref || links.has(ref.file)) continue;
    const st = statSync(ref.file);
    const id = JSON.stringify([ref.file, st.dev, st.ino, st.size, Math.trunc(st.mtimeMs)]);
    links.set(ref.file, `w-${sha256(id).slice(0, 32)}.data`);
  }
  const key = createHash('sha256')
    .update(encodeModel(model))
    .update(JSON.stringify([...links]))
    .digest('hex')
    .slice(0, 32);
  const path = join(dir, `${key}.onnx`);
  if (existsSync(path) && isComplete(path)) return path;
  for (const [file, name] of links) ensureLink(file, join(dir, name));
  saveModel(model, path, {
    externalDataThreshold: DATA_THRESHOLD,
    externalDataFile: `${key}.onnx.data`,
    keepExternal: (file) => links.get(file)!,
  });
  return path;
}

/** A cached model whose data files are all there and of the right size (a user may prune the cache). */
function isComplete(path: string): boolean {
  try {
    loadModel(path);
    return true;
  } catch {
    return false;
  }
}

/** `dst` holds the same bytes as `src`: a hard link, else a copy with the source's mtime. */
function ensureLink(src: string, dst: string): void {
  const s = statSync(src);
  if (existsSync(dst)) {
    const d = statSync(dst);
    const same =
      (d.dev === s.dev && d.ino === s.ino) ||
      (d.size === s.size && Math.trunc(d.mtimeMs) === Math.trunc(s.mtimeMs));
    if (same) return;
  }
  const tmp = `${dst}.${process.pid}.${Date.now().toString(36)}.tmp`;
  try {
    try {
      linkSync(src, tmp);
    } catch {
      // Another file system, or links not allowed: copy (cloned where the file system can).
      copyFileSync(src, tmp, constants.COPYFILE_FICLONE);
      utimesSync(tmp, s.atime, s.mtime);
      const fd = openSync(tmp, 'r+');
      fsyncSync(fd);
      closeSync(fd);
    }
    renameSync(tmp, dst);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new InputError(
      dst,
      `cannot place the model's data file in the cache (${(err as NodeJS.ErrnoException).code ?? err})`,
    );
  }
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
