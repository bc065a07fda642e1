/**
 * `eval`: world-consistency metrics of geometry shards (camera jitter, reprojection error,
 * rewards; trajectory and depth errors against ground truth when present; the Sampson epipolar
 * error on decoded RGB), curves over a run's iterations, and report.json + report.html with
 * plots, depth thumbnails and mp4 videos.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { cameraCentres } from '../geometry/cameras.js';
import {
  type CameraPath,
  type Curve,
  cameraPathSpec,
  cameraView,
  lineSpec,
  PAIR_COLOURS,
  renderSvg,
} from '../media/plots.js';
import { frameRow, rgbToPng, spreadFrames } from '../media/png.js';
import {
  type Cell,
  type ReportData,
  type ReportGroup,
  type ReportPanel,
  type ReportSection,
  writeReport,
} from '../media/report.js';
import { type DecodedVideo, VaeDecoder } from '../media/vae.js';
import { writeMp4 } from '../media/video.js';
import { clusterBootstrap, excludesZero, type Interval } from '../metrics/bootstrap.js';
import { type GroundTruth, videoMetrics } from '../metrics/consistency.js';
import { epipolarError } from '../metrics/epipolar.js';
import {
  GEOMETRY_METRICS,
  geometryValues,
  judgeColumn,
  type MetricColumn,
  metricsCsv,
  rewardColumn,
  type VideoRow,
} from '../metrics/table.js';
import { REWARDS } from '../rewards/index.js';
import { type GeometrySample, geometryArrays, sliceGeometry } from '../rewards/types.js';
import { atomicWrite } from '../shards/atomic.js';
import { followInput, LineageRoots } from '../shards/lineage.js';
import { readShard, type Shard } from '../shards/shard.js';
import { type Tensor, toNumbers } from '../shards/tensor.js';
import { type Judge, judgeVideo, openJudge } from './judge.js';
import { depthStrip } from './render-geometry.js';
import type { ConfigResolver, StageInputs, StageIo } from './types.js';

export interface EvalResult {
  report: string;
  html: string;
  metrics: Record<string, Record<string, number | null>>;
}

/** A named collection of geometry shards evaluated together (an iteration, or an eval set). */
interface EvalSet {
  name: string;
  geometry: string[];
  rewards: string[];
  iteration?: number;
  /** grpo-step's metrics of this iteration (metrics.jsonl beside its policy). */
  training?: Record<string, number>;
}

const shardsIn = (d: string) =>
  existsSync(d)
    ? readdirSync(d)
        .filter((f) => f.endsWith('.safetensors'))
        .sort()
        .map((f) => join(d, f))
    : [];

/** Find what to evaluate: run folders (iter-NNNN/ and eval/*), folders of shards, or shards. */
export function discover(paths: string[]): EvalSet[] {
  const sets: EvalSet[] = [];
  const loose = new Map<string, string[]>();
  for (const p of paths) {
    if (!existsSync(p)) throw new InputError(p, 'not found');
    if (statSync(p).isDirectory()) {
      const entries = readdirSync(p).sort();
      const iters = entries.filter((e) => /^iter-\d+$/.test(e));
      for (const it of iters) {
        sets.push({
          name: it,
          iteration: Number(it.slice(5)),
          geometry: shardsIn(join(p, it, 'geometry')),
          rewards: shardsIn(join(p, it, 'rewards')),
          training: lastJsonLine(join(p, it, 'metrics.jsonl')),
        });
      }
      if (existsSync(join(p, 'eval'))) {
        for (const e of readdirSync(join(p, 'eval')).sort()) {
          const g = shardsIn(join(p, 'eval', e, 'geometry'));
          if (g.length) sets.push({ name: e, geometry: g, rewards: shardsIn(join(p, 'eval', e, 'rewards')) });
        }
      }
      if (!iters.length && !existsSync(join(p, 'eval'))) {
        const g = shardsIn(p);
        if (!g.length) throw new InputError(p, 'holds no shards, iter-NNNN/ or eval/ folders');
        sets.push({ name: setName(p), geometry: g, rewards: [] });
      }
    } else {
      const name = setName(dirname(resolve(p)));
      loose.set(name, [...(loose.get(name) ?? []), p]);
    }
  }
  for (const [name, geometry] of loose) sets.push({ name, geometry, rewards: [] });
  if (sets.length === 0) throw new InputError('', 'nothing to evaluate');
  return sets;
}

function lastJsonLine(path: string): Record<string, number> | undefined {
  if (!existsSync(path)) return undefined;
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  try {
    return JSON.parse(lines.at(-1)!);
  } catch {
    return undefined;
  }
}

function setName(dir: string): string {
  const b = basename(dir);
  return b === 'geometry' ? basename(dirname(dir)) : b;
}

interface SetResult {
  name: string;
  training?: Record<string, number>;
  iteration?: number;
  rows: VideoRow[];
  paths: CameraPath[];
  first?: { shard: Shard; b: number };
  /** The videos the report shows (the first `eval.videos` of a video set). */
  shown: ShownVideo[];
  /** Epipolar coverage of the set's videos (video sets only). */
  epipolar?: { detector: string; videos: number; defined: number; pairsTried: number; pairsDefined: number };
}

/** A video the report shows: its mp4, and its decoded frames and depth as strips of the same frames. */
interface ShownVideo {
  /** 'set #k', the name the page gives it. */
  id: string;
  /** Prompt and seed (pairKey), so base and final of the same sample stand side by side. */
  pair: string;
  prompt: string;
  /** 'seed N', or without seeds the video's place among its prompt's videos. */
  sample: string;
  src: string;
  frames: Uint8Array;
  depth: Uint8Array;
  /** The frame indices both strips show. */
  pick: number[];
}

/** What evaluating a set needs besides the set: videos are decoded only for the video sets. */
interface SetContext {
  config: Config;
  roots: LineageRoots;
  /** For a video set: the decoder (absent: only shards with their own `rgb`), where mp4s go. */
  video?: { decoder?: VaeDecoder; out: string; keep: number; judge?: Judge };
}

function mean(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/** Rewards of a geometry shard: from its reward shard (same file name) when scored, else computed. */
function rewardsOf(set: EvalSet, geometryPath: string): Shard | undefined {
  const r = set.rewards.find((p) => basename(p) === basename(geometryPath));
  return r ? readShard(r, 'rewards') : undefined;
}

/** Every video of a set, each geometry shard read once: metrics, rewards, and for video sets the frames. */
async function evaluateSet(set: EvalSet, ctx: SetContext): Promise<SetResult> {
  const result: SetResult = {
    name: set.name,
    training: set.training,
    iteration: set.iteration,
    rows: [],
    paths: [],
    shown: [],
  };
  const members = new Map<number, number>();
  for (const p of set.geometry) {
    const shard = readShard(p, 'geometry');
    const video = ctx.video ? await videoSource(shard, ctx) : undefined;
    const rewards = rewardsOf(set, p);
    const prompts = promptsOf(shard);
    const B = shard.tensors.get('depth')?.shape[0] ?? 0;
    const promptIndex = toNumbers(shard.tensors.get('prompt_index')!);
    for (let b = 0; b < B; b++) {
      const g = sampleGeometry(shard, b);
      const pi = promptIndex[b] ?? 0;
      const member = members.get(pi) ?? 0;
      members.set(pi, member + 1);
      const row: VideoRow = {
        set: set.name,
        promptIndex: pi,
        prompt: prompts[pi] ?? '',
        seed: video?.seeds?.[b]?.toString() ?? null,
        member,
        values: {
          ...geometryValues(videoMetrics(g, groundTruthOf(shard, b))),
          ...rewardValues(g, b, rewards, ctx.config),
        },
      };
      if (ctx.video && video) await videoOf(row, shard, b, video, ctx, result);
      result.rows.push(row);
      if (result.paths.length < 4) result.paths.push(cameraPath(`${set.name} #${result.paths.length}`, g));
      result.first ??= { shard, b };
    }
  }
  return result;
}

function promptsOf(shard: Shard): string[] {
  try {
    const v = JSON.parse(shard.metadata['vggrpo.prompts'] ?? '[]');
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

function sampleGeometry(shard: Shard, b: number) {
  const t = shard.tensors;
  const [, F, h, w] = t.get('depth')!.shape as [number, number, number, number];
  return sliceGeometry(
    geometryArrays((k) => t.get(k)),
    b,
    F,
    h,
    w,
  );
}

/** Ground truth: geometry decoded from `world` shards carries it as gt_* tensors. */
function groundTruthOf(shard: Shard, b: number): GroundTruth | undefined {
  const ext = shard.tensors.get('gt_extrinsics');
  const depth = shard.tensors.get('gt_depth');
  if (!ext || !depth) return undefined;
  const F = ext.shape[1] ?? 0;
  const per = depth.data.length / (depth.shape[0] ?? 1);
  return {
    extrinsics: (ext.data as Float32Array).subarray(b * F * 12, (b + 1) * F * 12),
    depth: (depth.data as Float32Array).subarray(b * per, (b + 1) * per),
  };
}

function rewardValues(
  g: ReturnType<typeof sampleGeometry>,
  b: number,
  rewards: Shard | undefined,
  config: Config,
): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  if (!rewards) return computedRewards(g, config);
  for (const [k, t] of rewards.tensors)
    if (k.startsWith('reward/')) out[k] = finite((t.data as Float32Array)[b]);
  return out;
}

/** The config's rewards computed on a geometry sample, as `reward/<name>`. */
function computedRewards(g: GeometrySample, config: Config): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [name, entry] of Object.entries(config.rewards)) {
    const r = REWARDS[name];
    if (r) out[`reward/${name}`] = finite(r.compute(g, r.parseOptions(entry.options)));
  }
  return out;
}

/** The judge's reading of one decoded video: the config's rewards and the geometry metrics, as `judge/…`. */
async function judgeValues(
  judge: Judge,
  frames: DecodedVideo,
  gt: GroundTruth | undefined,
  config: Config,
  from: string,
): Promise<Record<string, number | null>> {
  const g = await judgeVideo(judge, frames, from);
  const values = { ...geometryValues(videoMetrics(g, gt)), ...computedRewards(g, config) };
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`judge/${k}`, v]));
}

const finite = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : null);

function cameraPath(name: string, g: ReturnType<typeof sampleGeometry>): CameraPath {
  return { name, centres: cameraCentres(g.extrinsics) };
}

/** Where a shard's frames come from: its own `rgb`, or its final latents (through lineage). */
async function videoSource(shard: Shard, ctx: SetContext) {
  if (shard.tensors.has('rgb') || !ctx.video?.decoder) return { latents: undefined, seeds: undefined };
  const traj = trajectoryOf(shard, ctx.roots);
  const seeds = traj?.tensors.get('seed');
  return {
    latents: traj?.tensors.get('final_latents'),
    seeds: seeds ? Array.from(seeds.data as BigInt64Array) : undefined,
  };
}

/** The epipolar error of one video (every video of a video set), and its mp4 for the first few. */
async function videoOf(
  row: VideoRow,
  shard: Shard,
  b: number,
  source: { latents?: Tensor },
  ctx: SetContext,
  result: SetResult,
): Promise<void> {
  const v = ctx.video;
  if (!v) return;
  const fr = await framesOf(shard, b, v.decoder, source.latents);
  if (!fr) return;
  if (v.judge)
    Object.assign(
      row.values,
      await judgeValues(v.judge, fr, groundTruthOf(shard, b), ctx.config, shard.path),
    );
  const cfg = ctx.config.eval;
  const e = await epipolarError(fr.rgb, fr, { detector: cfg.detector.toUpperCase() as 'ORB' | 'AKAZE' });
  row.values.epipolar = e.error;
  row.epipolarPairs = {
    defined: e.validPairs,
    tried: e.pairs.length,
    matches: e.pairs.map((q) => q.matches),
  };
  const s = (result.epipolar ??= {
    detector: e.detector,
    videos: 0,
    defined: 0,
    pairsTried: 0,
    pairsDefined: 0,
  });
  s.videos++;
  if (e.error !== null) s.defined++;
  s.pairsTried += e.pairs.length;
  s.pairsDefined += e.validPairs;
  const k = result.rows.length;
  if (k < v.keep) {
    const rel = join('videos', `${result.name}-${k}.mp4`);
    await writeMp4(join(v.out, rel), fr.rgb, fr);
    result.shown.push({
      id: `${result.name} #${k}`,
      pair: pairKey(row),
      prompt: row.prompt,
      sample: row.seed !== null ? `seed ${row.seed}` : `video ${row.member + 1} of the prompt`,
      src: rel,
      ...(await strips(fr, shard, b)),
    });
  }
}

/** Frame strips shown per video: this many frames, this many CSS pixels high (two panels fit a row). */
const STRIP = { frames: 8, height: 56 };

/** The decoded frames and the depth of one video as two strips of the same (evenly spread) frames. */
async function strips(fr: DecodedVideo, shard: Shard, b: number) {
  const pick = spreadFrames(fr.frames, STRIP.frames);
  const rgb = frameRow(fr.rgb, fr, 3, pick);
  const scale = Math.max(1, Math.round(STRIP.height / fr.height));
  const frames = await rgbToPng(rgb, pick.length * fr.width, fr.height, { scale });
  // The geometry may hold fewer frames than the video (a latent frame per several): the nearest in time.
  const F = shard.tensors.get('depth')!.shape[1]!;
  const at = (f: number) => (fr.frames > 1 ? Math.round((f * (F - 1)) / (fr.frames - 1)) : 0);
  const depth = await depthStrip(shard, b, { pick: pick.map(at), height: STRIP.height });
  return { frames, depth, pick };
}

/** The trajectory behind a geometry shard (through its lineage), or undefined when it is gone. */
function trajectoryOf(shard: Shard, roots: LineageRoots): Shard | undefined {
  const trajIn = shard.inputs[0];
  // No videos for a shard whose trajectory is gone; one that is there is followed as lineage.
  if (!trajIn || !existsSync(trajIn.path)) return undefined;
  return followInput(shard, 0, ['trajectory', 'geometry'], roots);
}

/** RGB frames [F, H, W, 3] of sample b: the shard's own `rgb`, or the VAE decoder on its final latents. */
export async function framesOf(
  shard: Shard,
  b: number,
  decoder: VaeDecoder | undefined,
  lat: Tensor | undefined,
): Promise<DecodedVideo | undefined> {
  const rgbT = shard.tensors.get('rgb');
  if (rgbT) {
    const [, F, H, W] = rgbT.shape as [number, number, number, number];
    const n = F * H * W * 3;
    return { rgb: (rgbT.data as Uint8Array).slice(b * n, (b + 1) * n), frames: F, height: H, width: W };
  }
  if (!decoder || !lat) return undefined;
  const per = lat.data.length / lat.shape[0]!;
  const shape = lat.shape.slice(1) as [number, number, number, number];
  const from = shard.inputs[0]?.path ?? shard.path;
  return decoder.decode((lat.data as Float32Array).slice(b * per, (b + 1) * per), shape, from);
}

export async function runEval(
  inputs: StageInputs,
  opts: { out: string },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<EvalResult> {
  const paths: string[] = [];
  for await (const p of inputs) paths.push(p);
  if (!paths.length)
    throw new InputError('', 'no input: expected geometry shards or run folders as arguments or on stdin');
  const sets = discover(paths).filter((s) => s.geometry.length);
  const roots = inputs.roots ?? new LineageRoots(paths);
  const firstShard = sets[0]?.geometry[0];
  const config = firstShard
    ? resolveConfig(readShard(firstShard, 'geometry').config, firstShard)
    : resolveConfig();
  const out = resolve(opts.out);
  const results = await evaluateSets(sets, config, roots, out, io);
  const report = buildReport(results);
  atomicWrite(
    join(out, 'metrics.csv'),
    metricsCsv(
      results.flatMap((r) => r.rows),
      report.columns,
    ),
  );
  const written = writeReport(out, await reportData(report, results, paths, config));
  io.emit(written.html);
  return { report: written.json, html: written.html, metrics: report.means };
}

/** Evaluate every set; the eval sets (or, without any, the last iteration) also get videos. */
async function evaluateSets(
  sets: EvalSet[],
  config: Config,
  roots: LineageRoots,
  out: string,
  io: StageIo,
): Promise<SetResult[]> {
  const evalSets = sets.filter((s) => s.iteration === undefined);
  const videoSets = new Set(evalSets.length ? evalSets : sets.slice(-1));
  const decoder = await VaeDecoder.open(config);
  let judge: Judge | undefined;
  const results: SetResult[] = [];
  try {
    judge = await openJudge(config);
    for (const s of sets) {
      const video = videoSets.has(s) ? { decoder, out, keep: config.eval.videos, judge } : undefined;
      const r = await evaluateSet(s, { config, roots, video });
      results.push(r);
      io.note(
        `eval: ${s.name}: ${r.rows.length} videos${r.epipolar ? `, epipolar defined for ${r.epipolar.defined}` : ''}`,
      );
    }
  } finally {
    await decoder?.release();
    await judge?.release();
  }
  return results;
}

interface EvalReport {
  columns: MetricColumn[];
  /** Set → metric key → mean (the stage's typed result). */
  means: Record<string, Record<string, number | null>>;
  /** Summary rows: eval sets, then the first and last iteration. */
  summary: SetResult[];
  intervals: Map<SetResult, Record<string, Interval | null>>;
  differences: Difference[];
}

/** A base → final comparison of two sets with the same prompts and seeds. */
interface Difference {
  name: string;
  base: SetResult;
  final: SetResult;
  pairs: number;
  intervals: Record<string, Interval | null>;
  flags: string[];
}

function buildReport(results: SetResult[]): EvalReport {
  const rewardKeys = [...new Set(results.flatMap((r) => r.rows.flatMap((v) => Object.keys(v.values))))]
    .filter((k) => k.startsWith('reward/'))
    .sort();
  const hasGt = results.some((r) => r.rows.some((v) => v.values.ate !== null && v.values.ate !== undefined));
  const judged = results.some((r) =>
    r.rows.some((v) => Object.keys(v.values).some((k) => k.startsWith('judge/'))),
  );
  const geometry = GEOMETRY_METRICS.filter((c) => hasGt || !c.groundTruth);
  const rewardCols = rewardKeys.map((k) => rewardColumn(k.slice(7)));
  // The judge's columns follow the reward model's: its rewards, then its geometry metrics.
  const columns = [
    ...rewardCols,
    ...(judged ? rewardCols.map(judgeColumn) : []),
    ...geometry,
    ...(judged ? geometry.filter((c) => c.key !== 'epipolar').map(judgeColumn) : []),
  ];
  const means: EvalReport['means'] = {};
  for (const r of results)
    means[r.name] = Object.fromEntries(
      columns.map((c) => [c.key, mean(r.rows.map((v) => v.values[c.key] ?? null))]),
    );
  const iterations = results.filter((r) => r.iteration !== undefined);
  const evalSets = results.filter((r) => r.iteration === undefined);
  const summary = [...evalSets, ...(iterations.length ? [iterations[0]!, iterations.at(-1)!] : [])].filter(
    (r, i, a) => a.indexOf(r) === i,
  );
  const intervals = new Map(summary.map((r) => [r, setIntervals(r, columns)] as const));
  return { columns, means, summary, intervals, differences: differences(evalSets, columns) };
}

/** Each metric's mean with its two-stage bootstrap interval (src/metrics/bootstrap.ts). */
function setIntervals(r: SetResult, columns: MetricColumn[]): Record<string, Interval | null> {
  const byPrompt = new Map<number, VideoRow[]>();
  for (const v of r.rows) byPrompt.set(v.promptIndex, [...(byPrompt.get(v.promptIndex) ?? []), v]);
  const out: Record<string, Interval | null> = {};
  for (const [k, c] of columns.entries()) {
    const clusters = [...byPrompt.values()].map((vs) => vs.map((v) => v.values[c.key] ?? Number.NaN));
    out[c.key] = clusterBootstrap(clusters, { seed: 1000 + k });
  }
  return out;
}

/**
 * Base → final differences: sets named base-X and final-X, videos paired by prompt and seed
 * (or, without seeds, by their position among the prompt's videos). Paired intervals; flags
 * where a reward rises while what keeps it honest falls.
 */
function differences(sets: SetResult[], columns: MetricColumn[]): Difference[] {
  const out: Difference[] = [];
  for (const [base, final] of baseFinalPairs(sets)) {
    const finals = new Map(final.rows.map((v) => [pairKey(v), v]));
    const pairs = base.rows.flatMap((b) => {
      const f = finals.get(pairKey(b));
      return f ? [[b, f] as const] : [];
    });
    const intervals: Record<string, Interval | null> = {};
    for (const [k, c] of columns.entries()) {
      const byPrompt = new Map<number, number[]>();
      for (const [b, f] of pairs) {
        const d = (f.values[c.key] ?? Number.NaN) - (b.values[c.key] ?? Number.NaN);
        byPrompt.set(b.promptIndex, [...(byPrompt.get(b.promptIndex) ?? []), d]);
      }
      intervals[c.key] = clusterBootstrap([...byPrompt.values()], { seed: 2000 + k });
    }
    out.push({
      name: `${final.name} − ${base.name}`,
      base,
      final,
      pairs: pairs.length,
      intervals,
      flags: hackingFlags(intervals),
    });
  }
  return out;
}

/** Sets named base-X and final-X, paired. */
function baseFinalPairs(sets: SetResult[]): [SetResult, SetResult][] {
  return sets.flatMap((base) => {
    const m = /^base(-.*)?$/.exec(base.name);
    const final = m ? sets.find((s) => s.name === `final${m[1] ?? ''}`) : undefined;
    return final ? [[base, final] as [SetResult, SetResult]] : [];
  });
}

/** A video's prompt and seed (or, without a seed, its position among the prompt's videos). */
const pairKey = (v: VideoRow) => `${v.promptIndex}:${v.seed ?? `#${v.member}`}`;

/**
 * Possible reward hacking: a reward that rises (resolved) while the share of pixels it scores
 * falls (resolved); a reward whose change (resolved) the independent judge reads with the
 * opposite sign.
 */
export function hackingFlags(d: Record<string, Interval | null>): string[] {
  const flags: string[] = [];
  const cov = d.coverage ?? null;
  const rep = d['reward/reprojection'] ?? null;
  if (rep && cov && excludesZero(rep) && rep.mean > 0 && excludesZero(cov) && cov.mean < 0)
    flags.push('the reprojection reward rises while its coverage falls: possible reward hacking');
  for (const [key, r] of Object.entries(d)) {
    const j = d[`judge/${key}`];
    if (!key.startsWith('reward/') || !r || !j || !excludesZero(r) || Math.sign(j.mean) === Math.sign(r.mean))
      continue;
    const iv = (i: Interval) => `${fmt(i.mean)} [${fmt(i.lo)}, ${fmt(i.hi)}]`;
    flags.push(
      `${key.slice(7)}: the reward model reads ${iv(r)}, the independent judge ${iv(j)}${excludesZero(j) ? ' (resolved)' : ''} — they disagree in sign: possible reward hacking`,
    );
  }
  return flags;
}

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Number(v.toPrecision(4));

const cellOf = (i: Interval | null | undefined, resolved?: boolean): Cell =>
  i
    ? { mean: fmt(i.mean)!, lo: fmt(i.lo)!, hi: fmt(i.hi)!, ...(resolved !== undefined ? { resolved } : {}) }
    : null;

async function reportData(
  rep: EvalReport,
  results: SetResult[],
  paths: string[],
  config: Config,
): Promise<ReportData> {
  const columns = ['set', 'videos', ...rep.columns.map((c) => c.title)];
  const rows: Cell[][] = rep.summary.map((r) => [
    r.name,
    r.rows.length,
    ...rep.columns.map((c) => cellOf(rep.intervals.get(r)?.[c.key])),
  ]);
  for (const d of rep.differences)
    rows.push([
      d.name,
      d.pairs,
      ...rep.columns.map((c) => cellOf(d.intervals[c.key], excludesZero(d.intervals[c.key] ?? null))),
    ]);
  const sections = [
    ...(await trainingCurves(results, rep.columns)),
    ...(await geometrySections(results)),
    ...evidenceSections(rep, results),
  ];
  // Blind A/B rating (`vggrpo rate`, src/rating/results.ts): its tables for a run folder that has votes.
  // A run folder (one with eval/ sets) gets the rating session's links, or how to start one.
  for (const p of paths.filter((q) => existsSync(join(q, 'rating.sqlite')) || existsSync(join(q, 'eval')))) {
    const { ratingSection } = await import('../rating/results.js');
    sections.push(ratingSection(p));
  }
  sections.push(...videoSections(results));
  return {
    title: 'vggrpo evaluation',
    subtitle: paths.join(', '),
    summary: {
      columns,
      rows,
      caption:
        'Means with 95% bootstrap intervals (prompts, then videos within them, resampled). Rows "final − base" are paired differences over the same prompts and seeds; * marks a difference whose interval excludes zero.',
    },
    sections,
    meta: {
      inputs: paths,
      config,
      metrics: rep.means,
      epipolar: Object.fromEntries(results.filter((r) => r.epipolar).map((r) => [r.name, r.epipolar])),
      differences: rep.differences.map((d) => ({
        name: d.name,
        pairs: d.pairs,
        intervals: d.intervals,
        flags: d.flags,
      })),
      iterations: results
        .filter((r) => r.iteration !== undefined)
        .map((r) => ({ iteration: r.iteration, ...rep.means[r.name], training: r.training ?? null })),
    },
  };
}

/** Coverage and the epipolar metric's definedness per set, and any reward-hacking flags. */
function evidenceSections(rep: EvalReport, results: SetResult[]): ReportSection[] {
  const withEpi = results.filter((r) => r.epipolar);
  const table = {
    title: 'Coverage of the metrics',
    columns: [
      'set',
      'videos',
      'reprojection coverage',
      'epipolar defined (videos)',
      'epipolar pairs defined',
    ],
    rows: rep.summary.map((r): Cell[] => [
      r.name,
      r.rows.length,
      cellOf(rep.intervals.get(r)?.coverage),
      r.epipolar ? `${r.epipolar.defined} / ${r.epipolar.videos}` : null,
      r.epipolar ? `${r.epipolar.pairsDefined} / ${r.epipolar.pairsTried}` : null,
    ]),
    caption:
      'Reprojection coverage: the share of each view’s valid pixels that the other frames cover and the reward scores. A reward can rise because coverage falls; such a change is flagged below.',
  };
  const flags = rep.differences.flatMap((d) => d.flags.map((f) => `${d.name}: ${f}`));
  const judge = judgeTable(rep);
  const judged = judge
    ? ' and the independent judge agrees in sign with every resolved reward change'
    : '. No independent judge is configured (eval.judge): the rewards above are read by the reward model itself';
  return [
    {
      title: 'Evidence',
      text: flags.length
        ? flags.join(' ')
        : `No flags${withEpi.length ? '' : ' (no video sets)'}: no reward rises while its coverage falls${judged}.`,
      tables: judge ? [judge, table] : [table],
    },
  ];
}

/** Each reward as the reward model and as the judge read it, and the judge's own errors, side by side. */
function judgeTable(
  rep: EvalReport,
): { title: string; columns: string[]; rows: Cell[][]; caption: string } | undefined {
  const pairs = rep.columns
    .filter((c) => c.key.startsWith('reward/'))
    .flatMap((c) => {
      const j = rep.columns.find((x) => x.key === `judge/${c.key}`);
      return j ? [[c, j] as const] : [];
    });
  if (!pairs.length) return undefined;
  const own = rep.columns.filter((c) => c.groundTruth && (c.key === 'rotErrDeg' || c.key === 'depthRelErr'));
  const ownPairs = own.flatMap((c) => {
    const j = rep.columns.find((x) => x.key === `judge/${c.key}`);
    return j ? [c, j] : [];
  });
  const cols = [...pairs.flat(), ...ownPairs];
  return {
    title: 'Reward model and independent judge',
    columns: [
      'set',
      'videos',
      ...cols.map((c) => (c.key.startsWith('judge/') ? c.title : `${c.title} (reward model)`)),
    ],
    rows: [
      ...rep.summary.map((r): Cell[] => [
        r.name,
        r.rows.length,
        ...cols.map((c) => cellOf(rep.intervals.get(r)?.[c.key])),
      ]),
      ...rep.differences.map((d): Cell[] => [
        d.name,
        d.pairs,
        ...cols.map((c) => cellOf(d.intervals[c.key], excludesZero(d.intervals[c.key] ?? null))),
      ]),
    ],
    caption:
      'The judge (eval.judge) shares no weights with the reward model and reads the decoded frames. A reward change the judge reads with the opposite sign is flagged as possible reward hacking. On world scenes the last columns are each model’s own error against ground truth.',
  };
}

async function trainingCurves(results: SetResult[], columns: MetricColumn[]): Promise<ReportSection[]> {
  const iterations = results.filter((r) => r.iteration !== undefined);
  if (iterations.length < 2) return [];
  const x = iterations.map((r) => r.iteration ?? 0);
  const meanOf = (r: SetResult, key: string) => mean(r.rows.map((v) => v.values[key] ?? null));
  const curve = (name: string, pick: (r: SetResult) => number | null | undefined): Curve => ({
    name,
    x,
    y: iterations.map((r) => pick(r) ?? null),
  });
  const rewards = columns.filter((c) => c.key.startsWith('reward/'));
  return [
    {
      title: 'Training curves',
      text: 'Means over each iteration’s rollouts (stochastic SDE samples of the policy being trained).',
      plots: [
        // One plot per reward: their scales differ too much to share an axis.
        ...(await Promise.all(
          rewards.map(async (c) => ({
            title: `reward: ${c.key.slice(7)}`,
            svg: await renderSvg(
              lineSpec({
                yTitle: `mean ${c.title}`,
                series: [curve(c.key.slice(7), (r) => meanOf(r, c.key))],
              }),
            ),
          })),
        )),
        {
          title: 'camera jitter',
          svg: await renderSvg(
            lineSpec({
              yTitle: 'S',
              series: [
                curve('S_trans', (r) => meanOf(r, 'sTrans')),
                curve('S_rot', (r) => meanOf(r, 'sRot')),
              ],
            }),
          ),
        },
        {
          title: 'policy update',
          svg: await renderSvg(
            lineSpec({
              yTitle: 'value',
              series: [
                curve('KL to base (μθ vs LoRA-off)', (r) => r.training?.kl),
                curve('approx-KL (new vs old)', (r) => r.training?.approx_kl),
              ],
            }),
          ),
          caption:
            'From grpo-step’s metrics.jsonl: the KL of the SDE step to the LoRA-off model, and the approx-KL between the updated and the sampling policy.',
        },
        {
          title: 'reprojection error',
          svg: await renderSvg(
            lineSpec({
              yTitle: 'relative depth error',
              series: [
                curve('mean', (r) => meanOf(r, 'reprojMean')),
                curve('worst-3', (r) => meanOf(r, 'reprojWorst3')),
              ],
            }),
          ),
        },
      ],
    },
  ];
}

/** The sets whose cameras the report draws: the eval sets, or the first and last iteration. */
function pathSetsOf(results: SetResult[]): SetResult[] {
  const iterations = results.filter((r) => r.iteration !== undefined);
  const evalSets = results.filter((r) => r.iteration === undefined);
  return evalSets.length
    ? evalSets
    : iterations.length
      ? [...new Set([iterations[0]!, iterations.at(-1)!])]
      : [];
}

/** Base sets (and the first iteration) in one colour of the pair, final sets (the last iteration) in the other. */
function colourOf(r: SetResult, results: SetResult[]): string {
  const iterations = results.filter((q) => q.iteration !== undefined);
  if (/^base(-|$)/.test(r.name) || (iterations.length > 1 && r === iterations[0])) return PAIR_COLOURS.base;
  if (/^final(-|$)/.test(r.name) || (r.iteration !== undefined && r === iterations.at(-1)))
    return PAIR_COLOURS.final;
  return PAIR_COLOURS.other;
}

/** One camera-path panel per set, all in one view; the depth of sets that show no video. */
async function geometrySections(results: SetResult[]): Promise<ReportSection[]> {
  const pathSets = pathSetsOf(results);
  if (!pathSets.length) return [];
  const view = cameraView(pathSets.flatMap((r) => r.paths));
  const plots = [];
  for (const r of pathSets) {
    const spec = cameraPathSpec({ title: r.name, paths: r.paths, view, colour: colourOf(r, results) });
    plots.push({ key: r.name, svg: await renderSvg(spec), caption: `First ${r.paths.length} samples.` });
  }
  const images = [];
  for (const r of pathSets)
    if (r.first && !r.shown.length)
      images.push({
        title: r.name,
        alt: `depth of ${r.name} #0`,
        png: await depthStrip(r.first.shard, r.first.b),
      });
  return [
    {
      title: 'Camera paths',
      text: 'Top-down view (x–z) of the camera centres of the first samples of each set, every panel on the same scale; squares mark the first frame. Base sets are blue, final sets orange.',
      plots,
    },
    ...(images.length
      ? [
          {
            title: 'Depth',
            text: 'Depth of the first sample of each set, frame by frame (near = warm).',
            images,
          },
        ]
      : []),
  ];
}

/** One shown video in the colour of its set, over its frame and depth strips (one width, so frames align). */
function videoPanel(v: ShownVideo, r: SetResult, results: SetResult[]): ReportPanel {
  const width = v.pick.length * STRIP.height;
  return {
    title: v.id,
    key: v.id,
    accent: colourOf(r, results),
    videos: [{ src: v.src, title: v.id }],
    images: [
      { png: v.frames, alt: `decoded frames of ${v.id}`, width },
      { png: v.depth, alt: `depth of ${v.id}`, width },
    ],
    caption: `Frames ${v.pick.join(', ')}: decoded (top), depth (bottom, near = warm).`,
  };
}

/** The shown videos grouped: base and final of the same prompt and seed together, the rest alone. */
function videoGroups(results: SetResult[]): ReportGroup[] {
  const group = (items: [ShownVideo, SetResult][]): ReportGroup => ({
    title: `“${items[0]![0].prompt}” · ${items[0]![0].sample}`,
    key: items[0]![0].pair,
    panels: items.map(([v, r]) => videoPanel(v, r, results)),
  });
  const groups: ReportGroup[] = [];
  const placed = new Set<ShownVideo>();
  for (const [base, final] of baseFinalPairs(results.filter((r) => r.iteration === undefined)))
    for (const b of base.shown) {
      const f = final.shown.find((x) => x.pair === b.pair && !placed.has(x));
      if (!f) continue;
      groups.push(
        group([
          [b, base],
          [f, final],
        ]),
      );
      placed.add(b).add(f);
    }
  for (const r of results) for (const v of r.shown) if (!placed.has(v)) groups.push(group([[v, r]]));
  return groups;
}

function videoSections(results: SetResult[]): ReportSection[] {
  if (!results.some((r) => r.shown.length)) return [];
  const det = results.find((r) => r.epipolar)?.epipolar?.detector ?? 'ORB';
  return [
    {
      title: 'Videos',
      text: `Decoded samples; base and final of the same prompt and seed side by side. The epipolar (Sampson) error uses ${det} features (the paper's numbers use SIFT), RANSAC 8-point fundamental matrices; a frame pair with fewer than 20 matches is undefined, and so is a video without a defined pair.`,
      groups: videoGroups(results),
    },
  ];
}
