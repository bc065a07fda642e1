/**
 * Completeness of a run: every shard records its place in the run it came from, metadata
 * `vggrpo.shard` = {"run", "index", "count"} (docs/PIPES.md). `sample` and `world` know the
 * count up front; later stages copy the place from their input. A stage that has seen all its
 * inputs asks which indices of each run it did not get, so a pipe whose upstream died fails
 * at its end instead of training on part of the data.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../config/load.js';
import { parseJson } from '../config/validate.js';
import { InputError } from '../errors.js';

export const SHARD_KEY = 'vggrpo.shard';
/** A gradient shard made from several reward shards lists each one's place here. */
export const COVERS_KEY = 'vggrpo.covers';

export const ShardPlace = z
  .object({
    run: z.string().min(1),
    index: z.number().int().nonnegative(),
    count: z.number().int().positive(),
  })
  .strict()
  .refine((p) => p.index < p.count, 'index must be below count');
export type ShardPlace = z.infer<typeof ShardPlace>;

/**
 * A run id that depends only on what defines the run (config, input hashes), so the same
 * command gives byte-identical shards, and parts of one run started separately agree on it.
 */
export function runId(definition: unknown): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('hex').slice(0, 16);
}

/** Metadata entries recording a shard's place. */
export function placeMetadata(place: ShardPlace | undefined, covers?: ShardPlace[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (place) out[SHARD_KEY] = JSON.stringify(place);
  if (covers && covers.length > 1) out[COVERS_KEY] = JSON.stringify(covers);
  return out;
}

/** The places a shard covers (none for a shard written by a tool that records none). */
export function shardPlaces(metadata: Record<string, string>, file: string): ShardPlace[] {
  const parse = (key: string, text: string, list: boolean): ShardPlace[] => {
    const v = parseJson<ShardPlace | ShardPlace[]>(
      text,
      list ? z.array(ShardPlace).min(1) : ShardPlace,
      file,
      `metadata ${key}`,
    );
    return Array.isArray(v) ? v : [v];
  };
  const covers = metadata[COVERS_KEY];
  if (covers !== undefined) return parse(COVERS_KEY, covers, true);
  const one = metadata[SHARD_KEY];
  return one === undefined ? [] : parse(SHARD_KEY, one, false);
}

/** The one place of a shard that a stage copies to the shard it writes from it. */
export function shardPlace(metadata: Record<string, string>, file: string): ShardPlace | undefined {
  const one = metadata[SHARD_KEY];
  if (one === undefined) return undefined;
  return shardPlaces({ [SHARD_KEY]: one }, file)[0];
}

interface RunSeen {
  count: number;
  first: string;
  seen: Set<number>;
}

/** Which shards of each run a stage has seen. */
export class RunCompleteness {
  private readonly runs = new Map<string, RunSeen>();

  see(file: string, places: ShardPlace[]): void {
    for (const p of places) {
      const r = this.runs.get(p.run);
      if (!r) {
        this.runs.set(p.run, { count: p.count, first: file, seen: new Set([p.index]) });
        continue;
      }
      if (r.count !== p.count)
        throw new InputError(file, `run ${p.run} has ${p.count} shards here but ${r.count} in ${r.first}`);
      r.seen.add(p.index);
    }
  }

  /** Runs with missing shards: the run, its count and the missing indices. */
  gaps(): { run: string; count: number; missing: number[] }[] {
    const out = [];
    for (const [run, r] of this.runs) {
      const missing = [];
      for (let i = 0; i < r.count; i++) if (!r.seen.has(i)) missing.push(i);
      if (missing.length) out.push({ run, count: r.count, missing });
    }
    return out;
  }

  /** Shards missing over all runs. */
  missingCount(): number {
    return this.gaps().reduce((a, g) => a + g.missing.length, 0);
  }
}

/** "3, 5–7" for [3, 5, 6, 7]. */
export function formatIndices(ix: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ix.length; ) {
    let j = i;
    while (j + 1 < ix.length && ix[j + 1] === (ix[j] ?? 0) + 1) j++;
    parts.push(j > i ? `${ix[i]}–${ix[j]}` : `${ix[i]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

export function describeGap(g: { run: string; count: number; missing: number[] }): string {
  return `run ${g.run}: missing shard${g.missing.length > 1 ? 's' : ''} ${formatIndices(g.missing)} of ${g.count}`;
}
