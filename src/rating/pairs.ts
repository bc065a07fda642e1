/**
 * The pairs to rate: videos of the same prompt and seed in two eval sets of a run (by default
 * `eval/base-*` against `eval/final-*`, matched by the part after the dash), written once as
 * mp4 files named by a hash of their frames, so a file name tells nothing about its set.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { VaeDecoder } from '../media/vae.js';
import { writeMp4 } from '../media/video.js';
import { followInput, type LineageRoots } from '../shards/lineage.js';
import { readShard, type Shard } from '../shards/shard.js';
import type { Tensor } from '../shards/tensor.js';
import { discover, framesOf } from '../stages/eval.js';
import type { NewPair } from './store.js';

/** One video of a set: where it lives and what identifies it across sets. */
interface VideoRef {
  key: string;
  prompt: string;
  path: string;
  b: number;
}

/** The eval sets of a run that belong to `prefix`: `prefix` itself (group '') or `prefix-GROUP`. */
function setsOf(run: string, prefix: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of evalSetsOf(run)) {
    if (s.name === prefix) out.set('', s.geometry);
    else if (s.name.startsWith(`${prefix}-`)) out.set(s.name.slice(prefix.length + 1), s.geometry);
  }
  return out;
}

/** The eval sets of a run (eval/NAME/geometry, found as `eval` finds them); none without eval/. */
export function evalSetsOf(run: string): { name: string; geometry: string[] }[] {
  if (!existsSync(join(run, 'eval'))) return [];
  try {
    return discover([run]).filter((s) => s.iteration === undefined);
  } catch (err) {
    // An eval/ folder without shards: nothing to pair, said by preparePairs with what it expected.
    if (err instanceof InputError && err.where === '') return [];
    throw err;
  }
}

/** The trajectory behind a geometry shard (its seeds and final latents), when it is still there. */
function trajectoryOf(shard: Shard, roots: LineageRoots): Shard | undefined {
  const input = shard.inputs[0];
  if (!input || !existsSync(input.path)) return undefined;
  return followInput(shard, 0, ['trajectory', 'geometry'], roots);
}

function promptsOf(shard: Shard): string[] {
  try {
    const p: unknown = JSON.parse(shard.metadata['vggrpo.prompts'] ?? '[]');
    return Array.isArray(p) ? p.map(String) : [];
  } catch {
    throw new InputError(shard.path, "metadata 'vggrpo.prompts' is not JSON");
  }
}

/**
 * Every video of a set, keyed by group, prompt and seed. Without a recorded seed (shards from
 * `world`), the n-th video of a prompt is matched with the n-th of the other set.
 */
function videosOf(group: string, shards: string[], roots: LineageRoots): VideoRef[] {
  const refs: VideoRef[] = [];
  const ordinal = new Map<string, number>();
  for (const path of shards) {
    const shard = readShard(path, 'geometry');
    const prompts = promptsOf(shard);
    const index = shard.tensors.get('prompt_index')?.data as BigInt64Array | undefined;
    const seeds = shard.tensors.has('rgb') ? undefined : trajectoryOf(shard, roots)?.tensors.get('seed');
    const B = shard.tensors.get('depth')!.shape[0]!;
    for (let b = 0; b < B; b++) {
      const pi = index ? Number(index[b]) : 0;
      const prompt = prompts[pi] ?? `prompt ${pi}`;
      let id: string;
      if (seeds) id = `seed ${(seeds.data as BigInt64Array)[b]}`;
      else {
        const n = ordinal.get(prompt) ?? 0;
        ordinal.set(prompt, n + 1);
        id = `#${n}`;
      }
      refs.push({ key: `${group}|${prompt}|${id}`, prompt, path, b });
    }
  }
  return refs;
}

/** Frames of one video as an mp4 under `dir`, named by the hash of its frames. */
class VideoWriter {
  private shard?: Shard;
  private latents?: Tensor;

  constructor(
    private readonly dir: string,
    private readonly roots: LineageRoots,
    private readonly decoder: VaeDecoder | undefined,
  ) {}

  async write(ref: VideoRef): Promise<{ file: string; hash: string } | undefined> {
    if (this.shard?.path !== ref.path) {
      this.shard = readShard(ref.path, 'geometry');
      this.latents =
        this.shard.tensors.has('rgb') || !this.decoder
          ? undefined
          : trajectoryOf(this.shard, this.roots)?.tensors.get('final_latents');
    }
    const fr = await framesOf(this.shard, ref.b, this.decoder, this.latents);
    if (!fr) return undefined;
    const hash = createHash('sha256')
      .update(fr.rgb)
      .update(`${fr.frames}x${fr.height}x${fr.width}`)
      .digest('hex');
    const file = `${hash.slice(0, 24)}.mp4`;
    if (!existsSync(join(this.dir, file))) await writeMp4(join(this.dir, file), fr.rgb, fr);
    return { file, hash };
  }
}

/**
 * Match the videos of sets `a` and `b` of a run and write those of matched pairs into
 * `videoDir`. Throws InputError when nothing matches (naming what was looked for).
 */
export async function preparePairs(
  run: string,
  sets: { a: string; b: string },
  config: Config,
  roots: LineageRoots,
  videoDir: string,
  note: (m: string) => void,
): Promise<NewPair[]> {
  const aSets = setsOf(run, sets.a);
  const bSets = setsOf(run, sets.b);
  const groups = [...aSets.keys()].filter((g) => bSets.has(g)).sort();
  if (!groups.length)
    throw new InputError(
      run,
      `no eval sets to compare: expected eval/${sets.a}[-NAME]/geometry and eval/${sets.b}[-NAME]/geometry with the same NAME (found: ${
        evalSetsOf(run)
          .map((s) => s.name)
          .join(', ') || 'none'
      })`,
    );
  mkdirSync(videoDir, { recursive: true });
  note(
    `rate: preparing the videos of ${groups.map((g) => (g ? `${sets.a}-${g} and ${sets.b}-${g}` : `${sets.a} and ${sets.b}`)).join(', ')}`,
  );
  const decoder = await VaeDecoder.open(config);
  const pairs: NewPair[] = [];
  try {
    // One writer per set, so each keeps its current shard while the two sets alternate.
    const aWriter = new VideoWriter(videoDir, roots, decoder);
    const bWriter = new VideoWriter(videoDir, roots, decoder);
    for (const g of groups) {
      const bRefs = new Map(videosOf(g, bSets.get(g)!, roots).map((r) => [r.key, r]));
      let unmatched = 0;
      for (const ar of videosOf(g, aSets.get(g)!, roots)) {
        const br = bRefs.get(ar.key);
        // Unmatched, or a second video of the same prompt and seed: neither can be paired.
        bRefs.delete(ar.key);
        if (!br) {
          unmatched++;
          continue;
        }
        const av = await aWriter.write(ar);
        const bv = await bWriter.write(br);
        if (!av || !bv) continue; // no frames: neither rgb nor final latents with a decoder
        pairs.push({
          key: ar.key,
          grp: g,
          prompt: ar.prompt,
          a_video: av.file,
          b_video: bv.file,
          a_hash: av.hash,
          b_hash: bv.hash,
        });
      }
      if (unmatched)
        note(
          `warning: rate: ${unmatched} videos of ${sets.a}${g ? `-${g}` : ''} have no video of the same prompt and seed in ${sets.b}${g ? `-${g}` : ''}`,
        );
    }
  } finally {
    await decoder?.release();
  }
  if (!pairs.length)
    throw new InputError(
      run,
      `no pairs of videos: the eval sets hold no rgb and no VAE decoder is configured (models.vae_decoder)`,
    );
  return pairs;
}
