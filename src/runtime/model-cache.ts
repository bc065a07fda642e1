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
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { externalRef } from '../onnx/external-data.js';
import { bf16ToFloat, widenBf16 } from '../onnx/half.js';
import {
  allTensors,
  encodeModel,
  loadModel,
  type ModelProto,
  saveModel,
  tensorToArray,
} from '../onnx/model.js';
import { DataType, type TensorProto } from '../onnx/proto.js';
import { atomicWrite, settleTemp, tempBeside } from '../shards/atomic.js';
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
  const { links, key } = cacheKey(model);
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

/**
 * The names of the model's source data files in the cache, by identity (path, inode, size,
 * mtime: hashing gigabytes on every run would cost more than the build it saves), and the key
 * naming the model there (its proto, small with external data, and those identities).
 */
function cacheKey(model: ModelProto, salt = ''): { links: Map<string, string>; key: string } {
  const links = new Map<string, string>();
  for (const t of allTensors(model)) {
    const ref = externalRef(t);
    if (!ref || links.has(ref.file)) continue;
    const st = statSync(ref.file);
    const id = JSON.stringify([ref.file, st.dev, st.ino, st.size, Math.trunc(st.mtimeMs)]);
    links.set(ref.file, `w-${sha256(id).slice(0, 32)}.data`);
  }
  const key = createHash('sha256')
    .update(salt)
    .update(encodeModel(model))
    .update(JSON.stringify([...links]))
    .digest('hex')
    .slice(0, 32);
  return { links, key };
}

/**
 * A bfloat16 model with external data, widened to float32 (src/onnx/half.ts) in the cache: its
 * external bfloat16 tensors are widened one at a time into `<key>.f32.data` (only one tensor's
 * values in memory, where widening the whole model in memory would hold every float32 weight and
 * exceed protobuf's 2 GB), the rest by `widenBf16`; then it is loaded from there. Written once:
 * a later run finds it.
 *
 * @example
 *   const model = cachedWidening(loadModel('wan-bf16.onnx')); // float32, external data in the cache
 */
export function cachedWidening(model: ModelProto): ModelProto {
  const dir = join(cacheDir(), 'models');
  mkdirSync(dir, { recursive: true });
  const { links, key } = cacheKey(model, 'bf16→f32');
  const path = join(dir, `${key}.onnx`);
  if (existsSync(path) && isComplete(path)) return loadModel(path);
  const dataName = `${key}.f32.data`;
  const tmp = tempBeside(join(dir, dataName));
  const fd = openSync(tmp, 'w');
  let offset = 0;
  const moved = (t: TensorProto): TensorProto => {
    const ref = externalRef(t);
    if (!ref) return t;
    if (t.dataType !== DataType.BFLOAT16) {
      ensureLink(ref.file, join(dir, links.get(ref.file)!));
      return withLocation(t, links.get(ref.file)!, ref.offset, ref.length);
    }
    const wide = new Uint8Array(Float32Array.from(tensorToArray(t) as Uint16Array, bf16ToFloat).buffer);
    offset += (4096 - (offset % 4096)) % 4096;
    for (let at = 0; at < wide.length; ) at += writeSync(fd, wide, at, wide.length - at, offset + at);
    const out = { ...withLocation(t, dataName, offset, wide.length), dataType: DataType.FLOAT };
    offset += wide.length;
    return out;
  };
  const g = model.graph ?? {};
  try {
    let initializer: TensorProto[];
    try {
      initializer = (g.initializer ?? []).map(moved);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(dir, dataName));
    settleTemp(tmp);
    atomicWrite(path, [encodeModel(widenBf16({ ...model, graph: { ...g, initializer } }))]);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return loadModel(path);
}

function withLocation(t: TensorProto, location: string, offset: number, length: number): TensorProto {
  return {
    ...t,
    rawData: undefined,
    dataLocation: 1,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
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
