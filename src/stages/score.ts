/**
 * `score`: every configured reward on every video of a geometry shard, then group-relative
 * advantages (z-normalised per reward within each group, weighted, clipped once).
 */
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { REWARDS } from '../rewards/index.js';
import { geometryArrays, sliceGeometry } from '../rewards/types.js';
import { groupAdvantages } from '../rl/advantages.js';
import { nonfiniteMask } from '../shards/finite.js';
import { defaultOutDir, readShard, type Shard, writeShard } from '../shards/shard.js';
import { f32, type Tensor, tensor, toNumbers } from '../shards/tensor.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface ScoreResult {
  shards: string[];
  samples: number;
  rewards: Record<string, { mean: number }>;
  warnings: string[];
}

export interface ScoredShard {
  rewards: Record<string, Float64Array>;
  total: Float64Array;
  advantages: Float64Array;
  stats: Record<string, { mean: number; std: number; zeroStdFraction: number }>;
  warnings: string[];
}

/**
 * Score one geometry shard in memory.
 *
 * @example
 *   const s = scoreGeometry(readShard(p, 'geometry'), config);
 */
export function scoreGeometry(geom: Shard, config: Config): ScoredShard {
  const t = geom.tensors;
  const depth = t.get('depth')!;
  const [B, F, h, w] = depth.shape as [number, number, number, number];
  const batch = geometryArrays((k) => t.get(k));
  const mask = nonfiniteMask(t, B);
  const entries = Object.entries(config.rewards);
  if (entries.length === 0) throw new InputError('config', 'rewards is empty: configure at least one reward');
  const rewards: Record<string, Float64Array> = {};
  const weights: Record<string, number> = {};
  for (const [name, entry] of entries) {
    const reward = REWARDS[name];
    if (!reward)
      throw new InputError(`rewards.${name}`, `unknown reward (known: ${Object.keys(REWARDS).join(', ')})`);
    const options = reward.parseOptions(entry.options, `rewards.${name}.options`);
    const values = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      const sample = sliceGeometry(batch, b, F, h, w);
      let v: number;
      try {
        v = reward.compute(sample, options);
      } catch (err) {
        if (err instanceof InputError)
          v = Number.NaN; // degenerate geometry of one sample
        else throw err;
      }
      values[b] = mask[b] ? Number.NaN : v; // a marked sample scores its group's minimum
    }
    rewards[name] = values;
    weights[name] = entry.weight;
  }
  const groupIndex = toNumbers(t.get('group_index')!);
  const warnings = replaceNonFinite(rewards, groupIndex);
  const adv = groupAdvantages(rewards, groupIndex, weights);
  return {
    rewards,
    total: adv.weighted,
    advantages: adv.advantages,
    stats: adv.stats,
    warnings: [...warnings, ...adv.warnings],
  };
}

/**
 * A sample whose geometry is non-finite gets its group's minimum finite reward, so it neither
 * poisons the group statistics nor wins anything; each replacement is a warning.
 */
export function replaceNonFinite(rewards: Record<string, Float64Array>, groupIndex: number[]): string[] {
  const warnings: string[] = [];
  for (const [name, values] of Object.entries(rewards)) {
    const min = new Map<number, number>();
    groupIndex.forEach((g, b) => {
      const v = values[b]!;
      if (Number.isFinite(v)) min.set(g, Math.min(min.get(g) ?? Number.POSITIVE_INFINITY, v));
    });
    groupIndex.forEach((g, b) => {
      if (Number.isFinite(values[b]!)) return;
      const m = min.get(g);
      if (m === undefined)
        throw new InputError(`rewards.${name}`, `group ${g}: no sample has finite geometry`);
      values[b] = m;
      warnings.push(
        `sample ${b} (group ${g}): non-finite ${name} reward replaced by the group minimum ${m.toFixed(4)}`,
      );
    });
  }
  return warnings;
}

export async function runScore(
  inputs: AsyncIterable<string>,
  opts: { out?: string },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<ScoreResult> {
  const shards: string[] = [];
  const warnings: string[] = [];
  const sums: Record<string, { sum: number; n: number }> = {};
  let samples = 0;
  for await (const input of inputs) {
    const geom = readShard(input, 'geometry');
    const config = resolveConfig(geom.config, input);
    const s = scoreGeometry(geom, config);
    for (const w of s.warnings) {
      warnings.push(`${input}: ${w}`);
      io.note(`warning: ${input}: ${w}`);
    }
    const B = s.total.length;
    const tensors: Record<string, Tensor> = {
      group_index: geom.tensors.get('group_index')!,
      prompt_index: geom.tensors.get('prompt_index')!,
      nonfinite: tensor('U8', [B], nonfiniteMask(geom.tensors, B)),
    };
    for (const [name, values] of Object.entries(s.rewards)) {
      tensors[`reward/${name}`] = f32([B], Float32Array.from(values));
      const acc = (sums[name] ??= { sum: 0, n: 0 });
      for (const v of values) {
        if (!Number.isFinite(v)) continue;
        acc.sum += v;
        acc.n++;
      }
    }
    tensors.reward = f32([B], Float32Array.from(s.total));
    tensors.advantages = f32([B], Float32Array.from(s.advantages));
    const out = join(resolve(opts.out ?? defaultOutDir(input, 'rewards')), basename(input));
    writeShard(out, 'rewards', tensors, {
      config,
      inputs: [input],
      place: geom.place,
      extra: { 'vggrpo.group_stats': JSON.stringify(s.stats) },
    });
    samples += B;
    shards.push(out);
    io.emit(out);
    const summary = Object.entries(s.rewards)
      .map(([n, v]) => `${n} ${mean(v).toFixed(4)}`)
      .join(', ');
    io.note(`score: ${basename(input)}: ${summary}`);
  }
  const rewards = Object.fromEntries(
    Object.entries(sums).map(([k, v]) => [k, { mean: v.n ? v.sum / v.n : Number.NaN }]),
  );
  return { shards, samples, rewards, warnings };
}

function mean(v: Float64Array): number {
  let s = 0;
  let n = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) continue;
    s += x;
    n++;
  }
  return n ? s / n : Number.NaN;
}
