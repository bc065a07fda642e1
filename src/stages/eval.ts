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
import { cameraCentre } from '../geometry/cameras.js';
import { type CameraPath, type Curve, cameraPathSpec, lineSpec, renderSvg } from '../media/plots.js';
import { type ReportData, type ReportSection, type ReportVideo, writeReport } from '../media/report.js';
import { writeMp4 } from '../media/video.js';
import { type GroundTruth, type VideoMetrics, videoMetrics } from '../metrics/consistency.js';
import { epipolarError } from '../metrics/epipolar.js';
import { REWARDS } from '../rewards/index.js';
import { sliceGeometry } from '../rewards/types.js';
import { runtimeOptions } from '../rl/policy.js';
import { ModelSession } from '../runtime/session.js';
import { followInput, LineageRoots } from '../shards/lineage.js';
import { readShard, type Shard } from '../shards/shard.js';
import { f32, type Tensor } from '../shards/tensor.js';
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

const METRIC_KEYS = [
  'sTrans',
  'sRot',
  'reprojMean',
  'reprojWorst3',
  'ate',
  'rpeTrans',
  'rpeRotDeg',
  'rotErrDeg',
  'depthRelErr',
] as const;

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
  samples: number;
  means: Record<string, number | null>;
  rewardMeans: Record<string, number | null>;
  paths: CameraPath[];
  first?: { shard: Shard; b: number };
  perVideo: VideoMetrics[];
}

function mean(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

function evaluateSet(set: EvalSet, config: Config): SetResult {
  const perVideo: VideoMetrics[] = [];
  const rewardValues: Record<string, number[]> = {};
  const paths: CameraPath[] = [];
  let first: SetResult['first'];
  for (const p of set.geometry) {
    const shard = readShard(p, 'geometry');
    const t = shard.tensors;
    const [B, F, h, w] = t.get('depth')!.shape as [number, number, number, number];
    const batch = {
      depth: t.get('depth')!.data as Float32Array,
      points: t.get('points')!.data as Float32Array,
      confidence: t.get('confidence')!.data as Float32Array,
      extrinsics: t.get('extrinsics')!.data as Float32Array,
      intrinsics: t.get('intrinsics')!.data as Float32Array,
      sceneFlow: t.get('scene_flow')?.data as Float32Array | undefined,
    };
    // Ground truth: geometry decoded from `world` shards carries it as gt_* tensors.
    const gtExt = t.get('gt_extrinsics')?.data as Float32Array | undefined;
    const gtDepth = t.get('gt_depth')?.data as Float32Array | undefined;
    for (let b = 0; b < B; b++) {
      const g = sliceGeometry(batch, b, F, h, w);
      const gt: GroundTruth | undefined =
        gtExt && gtDepth
          ? {
              extrinsics: gtExt.subarray(b * F * 12, (b + 1) * F * 12),
              depth: gtDepth.subarray(b * F * h * w, (b + 1) * F * h * w),
            }
          : undefined;
      perVideo.push(videoMetrics(g, gt));
      if (!set.rewards.length) {
        for (const [name, entry] of Object.entries(config.rewards)) {
          const r = REWARDS[name];
          if (!r) continue;
          (rewardValues[name] ??= []).push(r.compute(g, r.parseOptions(entry.options)));
        }
      }
      if (paths.length < 4) {
        const c = new Float64Array(3 * F);
        for (let f = 0; f < F; f++) c.set(cameraCentre(g.extrinsics, f), 3 * f);
        paths.push({ name: `${set.name} #${paths.length}`, centres: c });
      }
      first ??= { shard, b };
    }
  }
  for (const p of set.rewards) {
    const r = readShard(p, 'rewards');
    for (const [k, t] of r.tensors) {
      if (!k.startsWith('reward/')) continue;
      (rewardValues[k.slice(7)] ??= []).push(...(t.data as Float32Array));
    }
  }
  const means: Record<string, number | null> = {};
  for (const k of METRIC_KEYS) means[k] = mean(perVideo.map((m) => m[k]));
  const rewardMeans: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(rewardValues)) rewardMeans[k] = mean(v);
  if (rewardMeans.motion !== undefined && rewardMeans.motion !== null)
    rewardMeans.motion_gap = 1 - rewardMeans.motion;
  return {
    name: set.name,
    training: set.training,
    iteration: set.iteration,
    samples: perVideo.length,
    means,
    rewardMeans,
    paths,
    first,
    perVideo,
  };
}

/** The final latents behind a geometry shard (through its lineage), read once per shard. */
function finalLatentsOf(shard: Shard, roots: LineageRoots): Tensor | undefined {
  const trajIn = shard.inputs[0];
  // No videos for a shard whose trajectory is gone; one that is there is followed as lineage.
  if (!trajIn || !existsSync(trajIn.path)) return undefined;
  return followInput(shard, 0, ['trajectory', 'geometry'], roots).tensors.get('final_latents');
}

/** RGB frames [F, H, W, 3] of sample b: the shard's own `rgb`, or the VAE decoder on its final latents. */
export async function framesOf(
  shard: Shard,
  b: number,
  decoder: ModelSession | undefined,
  lat: Tensor | undefined,
): Promise<{ rgb: Uint8Array; frames: number; height: number; width: number } | undefined> {
  const rgbT = shard.tensors.get('rgb');
  if (rgbT) {
    const [, F, H, W] = rgbT.shape as [number, number, number, number];
    const n = F * H * W * 3;
    return { rgb: (rgbT.data as Uint8Array).slice(b * n, (b + 1) * n), frames: F, height: H, width: W };
  }
  if (!decoder || !lat) return undefined;
  const per = lat.data.length / lat.shape[0]!;
  const out = await decoder.run({
    latents: f32([1, ...lat.shape.slice(1)], (lat.data as Float32Array).slice(b * per, (b + 1) * per)),
  });
  const fr = Object.values(out)[0]!;
  const [, F, C, H, W] = fr.shape as [number, number, number, number, number];
  if (C !== 3)
    throw new InputError(decoder.source, `decoder output must be [B, F, 3, H, W], got [${fr.shape}]`);
  const d = fr.data as Float32Array;
  const rgb = new Uint8Array(F * H * W * 3);
  for (let f = 0; f < F; f++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < H * W; i++)
        rgb[(f * H * W + i) * 3 + c] = Math.round(
          255 * Math.min(1, Math.max(0, d[(f * 3 + c) * H * W + i]!)),
        );
  return { rgb, frames: F, height: H, width: W };
}

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Number(v.toPrecision(4));

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
  const sets = discover(paths);
  const roots = inputs.roots ?? new LineageRoots(paths);
  const firstShard = sets.find((s) => s.geometry.length)?.geometry[0];
  const config = firstShard
    ? resolveConfig(readShard(firstShard, 'geometry').config, firstShard)
    : resolveConfig();
  const out = resolve(opts.out);
  const results: SetResult[] = [];
  for (const s of sets) {
    if (!s.geometry.length) continue;
    results.push(evaluateSet(s, config));
    io.note(`eval: ${s.name}: ${results.at(-1)!.samples} videos`);
  }
  const iterations = results.filter((r) => r.iteration !== undefined);
  const evalSets = results.filter((r) => r.iteration === undefined);

  // Videos and the epipolar error on decoded RGB, for the evaluation sets (or the last iteration).
  const videoSets = evalSets.length ? evalSets : iterations.slice(-1);
  let decoder: ModelSession | undefined;
  if (config.models.vae_decoder && existsSync(config.models.vae_decoder)) {
    decoder = await ModelSession.open(config.models.vae_decoder, runtimeOptions(config));
  }
  const videos: ReportVideo[] = [];
  const epipolar: Record<string, { error: number | null; detector: string; pairs: number }> = {};
  try {
    for (const r of videoSets) {
      const set = sets.find((s) => s.name === r.name)!;
      const errs: (number | null)[] = [];
      let detector = config.eval.detector.toUpperCase();
      let pairs = 0;
      let k = 0;
      for (const p of set.geometry) {
        const shard = readShard(p, 'geometry');
        const B = shard.tensors.get('depth')!.shape[0]!;
        const lat = shard.tensors.has('rgb') || !decoder ? undefined : finalLatentsOf(shard, roots);
        for (let b = 0; b < B && k < Math.max(config.eval.videos, 8); b++, k++) {
          const fr = await framesOf(shard, b, decoder, lat);
          if (!fr) break;
          const e = await epipolarError(fr.rgb, fr, { detector: detector as 'ORB' | 'AKAZE' });
          detector = e.detector;
          pairs += e.validPairs;
          errs.push(e.error);
          if (k < config.eval.videos) {
            const rel = join('videos', `${r.name}-${k}.mp4`);
            await writeMp4(join(out, rel), fr.rgb, fr);
            videos.push({ title: `${r.name} #${k}`, src: rel });
          }
        }
      }
      epipolar[r.name] = { error: mean(errs), detector, pairs };
    }
  } finally {
    await decoder?.release();
  }

  const rewardNames = [...new Set(results.flatMap((r) => Object.keys(r.rewardMeans)))];
  const columns = [
    'set',
    'videos',
    ...rewardNames.map((n) => `r_${n}`),
    'S_trans',
    'S_rot',
    'reproj err',
    'worst-3',
    'epipolar',
  ];
  const hasGt = results.some((r) => r.means.ate !== null);
  if (hasGt) columns.push('ATE', 'RPE trans', 'RPE rot°', 'rot err°', 'depth rel err');
  const row = (r: SetResult) => [
    r.name,
    r.samples,
    ...rewardNames.map((n) => fmt(r.rewardMeans[n])),
    fmt(r.means.sTrans),
    fmt(r.means.sRot),
    fmt(r.means.reprojMean),
    fmt(r.means.reprojWorst3),
    fmt(epipolar[r.name]?.error ?? null),
    ...(hasGt
      ? [
          fmt(r.means.ate),
          fmt(r.means.rpeTrans),
          fmt(r.means.rpeRotDeg),
          fmt(r.means.rotErrDeg),
          fmt(r.means.depthRelErr),
        ]
      : []),
  ];
  const summaryRows = [...evalSets, ...(iterations.length ? [iterations[0]!, iterations.at(-1)!] : [])]
    .filter((r, i, a) => a.indexOf(r) === i)
    .map(row);
  const sections: ReportSection[] = [];
  if (iterations.length > 1) {
    const x = iterations.map((r) => r.iteration!);
    const curve = (name: string, pick: (r: SetResult) => number | null | undefined): Curve => ({
      name,
      x,
      y: iterations.map((r) => pick(r) ?? null),
    });
    sections.push({
      title: 'Training curves',
      text: 'Means over each iteration’s rollouts (stochastic SDE samples of the policy being trained).',
      plots: [
        // One plot per reward: their scales differ too much to share an axis.
        ...(await Promise.all(
          rewardNames
            .filter((n) => n !== 'motion_gap')
            .map(async (n) => ({
              title: `reward: ${n}`,
              svg: await renderSvg(
                lineSpec({ yTitle: `mean r_${n}`, series: [curve(n, (r) => r.rewardMeans[n])] }),
              ),
            })),
        )),
        {
          title: 'camera jitter',
          svg: await renderSvg(
            lineSpec({
              yTitle: 'S',
              series: [curve('S_trans', (r) => r.means.sTrans), curve('S_rot', (r) => r.means.sRot)],
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
                curve('mean', (r) => r.means.reprojMean),
                curve('worst-3', (r) => r.means.reprojWorst3),
              ],
            }),
          ),
        },
      ],
    });
  }
  const pathSets = evalSets.length ? evalSets : iterations.length ? [iterations[0]!, iterations.at(-1)!] : [];
  if (pathSets.length) {
    sections.push({
      title: 'Camera paths',
      text: 'Top-down view (x–z) of the camera centres of the first samples of each set.',
      plots: [{ svg: await renderSvg(cameraPathSpec({ paths: pathSets.flatMap((r) => r.paths) })) }],
    });
    const images = [];
    for (const r of pathSets)
      if (r.first)
        images.push({
          title: r.name,
          alt: `depth of ${r.name} #0`,
          png: await depthStrip(r.first.shard, r.first.b),
        });
    sections.push({
      title: 'Depth',
      text: 'Depth of the first sample of each set, frame by frame (near = warm).',
      images,
    });
  }
  if (videos.length) {
    const det = Object.values(epipolar)[0]?.detector ?? 'ORB';
    sections.push({
      title: 'Videos',
      text: `Decoded samples. The epipolar (Sampson) error uses ${det} features (the paper's numbers use SIFT), RANSAC 8-point fundamental matrices; undefined where too few matches.`,
      videos,
    });
  }
  // Blind A/B rating (`vggrpo rate`, src/rating/results.ts): its tables for a run folder that has votes.
  const rated = paths.filter((p) => existsSync(join(p, 'rating.sqlite')));
  if (rated.length) {
    const { ratingSection } = await import('../rating/results.js');
    for (const p of rated) sections.push(ratingSection(p)!);
  }
  const metrics: Record<string, Record<string, number | null>> = {};
  for (const r of results)
    metrics[r.name] = {
      ...r.means,
      ...Object.fromEntries(Object.entries(r.rewardMeans).map(([k, v]) => [`reward/${k}`, v])),
      epipolar: epipolar[r.name]?.error ?? null,
    };
  const report: ReportData = {
    title: 'vggrpo evaluation',
    subtitle: paths.join(', '),
    summary: { columns, rows: summaryRows },
    sections,
    meta: {
      inputs: paths,
      config,
      metrics,
      epipolar,
      iterations: iterations.map((r) => ({
        iteration: r.iteration,
        ...r.means,
        ...r.rewardMeans,
        training: r.training ?? null,
      })),
    },
  };
  const written = writeReport(out, report);
  io.emit(written.html);
  return { report: written.json, html: written.html, metrics };
}
