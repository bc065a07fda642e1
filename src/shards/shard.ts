/**
 * Typed shards: safetensors files whose `__metadata__` carries the kind, schema version,
 * resolved config and the lineage (input paths relative to the shard's folder + content hashes).
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { canonicalJson } from '../config/load.js';
import { parseJson } from '../config/validate.js';
import { InputError } from '../errors.js';
import { placeMetadata, type ShardPlace, shardPlace } from './completeness.js';
import { assertShardFinite } from './finite.js';
import { readSafetensors, writeSafetensors, writeSafetensorsAsync } from './safetensors.js';
import { SCHEMA_VERSION, type ShardKind, validateShard } from './schema.js';
import type { Tensor } from './tensor.js';

export interface ShardInput {
  path: string;
  sha256: string;
}

export interface Shard {
  path: string;
  kind: ShardKind;
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  /** The resolved config recorded by the stage that wrote the shard. */
  config: Record<string, unknown>;
  /** Lineage with absolute paths (resolved against the shard's folder; not yet checked). */
  inputs: ShardInput[];
  /** Lineage as recorded: paths relative to the shard's folder. Follow with lineage.followInput. */
  recordedInputs: ShardInput[];
  dims: Record<string, number>;
  /** Its place in the run it came from (metadata vggrpo.shard), when recorded. */
  place?: ShardPlace;
}

/**
 * Fingerprint of a model file for provenance: sha256 of its bytes up to 256 MB, else size and
 * modification time (hashing a multi-GB denoiser on every stage would cost more than it tells).
 */
export function modelFingerprint(path: string): string {
  const st = statSync(path);
  return st.size <= 256 * 1024 * 1024
    ? `sha256:${fileHash(path)}`
    : `size:${st.size}:mtime:${Math.round(st.mtimeMs)}`;
}

/** Content hash of a file (hex sha256), for provenance; read in chunks, so any size works. */
export function fileHash(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    // Chunks of 8 MB, or the file's size: a small file must not cost an 8 MB buffer.
    const buf = new Uint8Array(Math.max(1, Math.min(8 << 20, fstatSync(fd).size)));
    for (let pos = 0, n: number; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n)
      hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * Read a shard and check its kind and schema.
 *
 * @example
 *   const traj = readShard('runs/x/trajectory/a.safetensors', 'trajectory');
 */
export function readShard(
  path: string,
  kind: ShardKind | ShardKind[],
  opts: { finite?: boolean } = {},
): Shard {
  const { tensors, metadata } = readSafetensors(path);
  const kinds = Array.isArray(kind) ? kind : [kind];
  const got = metadata['vggrpo.kind'];
  if (got === undefined)
    throw new InputError(
      path,
      `not a vggrpo shard (no vggrpo.kind in metadata); expected ${kinds.join(' or ')}`,
    );
  if (!kinds.includes(got as ShardKind))
    throw new InputError(path, `is a ${got} shard; expected ${kinds.join(' or ')}`);
  const schema = metadata['vggrpo.schema'];
  if (schema !== SCHEMA_VERSION)
    throw new InputError(path, `schema version ${schema}; this vggrpo reads ${SCHEMA_VERSION}`);
  const dims = validateShard(path, got as ShardKind, tensors);
  if (opts.finite !== false) assertShardFinite(path, tensors, dims.B);
  let config: Record<string, unknown> = {};
  try {
    config = metadata['vggrpo.config'] ? JSON.parse(metadata['vggrpo.config']) : {};
  } catch {
    throw new InputError(path, 'metadata vggrpo.config is not valid JSON');
  }
  const recordedInputs = parseInputs(metadata['vggrpo.inputs'], path);
  const inputs = recordedInputs.map((i) => ({ path: resolve(dirname(path), i.path), sha256: i.sha256 }));
  const place = shardPlace(metadata, path);
  return { path, kind: got as ShardKind, tensors, metadata, config, inputs, recordedInputs, dims, place };
}

/** What writeShard records beside the tensors. */
export interface ShardWriteOptions {
  config: unknown;
  inputs?: string[];
  extra?: Record<string, string>;
  /** The shard's place in its run; a stage copies its input's. */
  place?: ShardPlace;
  /** Every input place, when a shard is made from several (a gradient shard). */
  covers?: ShardPlace[];
}

/**
 * Write a shard atomically, recording kind, schema, config and lineage.
 *
 * @example
 *   writeShard(out, 'rewards', tensors, { config, inputs: [geomPath] });
 */
export function writeShard(
  path: string,
  kind: ShardKind,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: ShardWriteOptions,
): void {
  const { map, metadata } = shardContents(path, kind, tensors, opts);
  writeSafetensors(path, map, metadata);
}

/**
 * writeShard with the file written off the main thread (checks and lineage hashes first, here),
 * so a stage computes its next shard meanwhile; the tensors must not change until it settles.
 *
 * @example
 *   const written = writeShardAsync(out, 'trajectory', tensors, { config }); // …next shard… await written;
 */
export function writeShardAsync(
  path: string,
  kind: ShardKind,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: ShardWriteOptions,
): Promise<void> {
  const { map, metadata } = shardContents(path, kind, tensors, opts);
  return writeSafetensorsAsync(path, map, metadata);
}

/** The checked tensors and the metadata of a shard about to be written. */
function shardContents(
  path: string,
  kind: ShardKind,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: ShardWriteOptions,
): { map: Map<string, Tensor>; metadata: Record<string, string> } {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  validateShard(path, kind, map); // a stage must never write a shard it would refuse to read
  const inputs = (opts.inputs ?? []).map((p) => ({
    path: relative(dirname(resolve(path)), resolve(p)) || basename(p),
    sha256: fileHash(p),
  }));
  const metadata: Record<string, string> = {
    'vggrpo.kind': kind,
    'vggrpo.schema': SCHEMA_VERSION,
    'vggrpo.config': canonicalJson(opts.config),
    'vggrpo.inputs': JSON.stringify(inputs),
    ...placeMetadata(opts.place, opts.covers),
    ...opts.extra,
  };
  return { map, metadata };
}

/**
 * Default output folder: a folder named after the output kind beside the input shard's folder
 * (`runs/x/trajectory/a.safetensors` → `runs/x/geometry/`).
 */
export function defaultOutDir(inputShard: string, outKind: string): string {
  return join(dirname(dirname(resolve(inputShard))), outKind);
}

const RecordedInputs = z.array(
  z
    .object({ path: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a hex sha256') })
    .strict(),
);

/** `vggrpo.inputs`: a list of {path, sha256}; anything else names the shard and the field. */
function parseInputs(text: string | undefined, file: string): ShardInput[] {
  return text === undefined ? [] : parseJson(text, RecordedInputs, file, 'metadata vggrpo.inputs');
}
