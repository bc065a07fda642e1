/**
 * Cost of the two reward paths on the same latents, measured in one run (issue 13; the paper:
 * latent reward 41.3 s vs RGB-decoded reward 54.7 s per batch, −24.5%; peak memory 68.6 vs
 * 76.8 GB). Latent path: the LGM on the latents. RGB path: VAE decode, then Φ on the frames at
 * the latent frames' positions (`decode-geometry --via rgb`). Each path runs in its own child
 * process (bench/reward-cost-child.ts, ONE onnxruntime thread) so its peak memory — peak RSS,
 * getrusage ru_maxrss, which counts onnxruntime's arena, the weights and Node's own ≈ 0.1 GB — is
 * not the other's. Time is CPU time per batch (with one thread it is the work done, robust to
 * the other jobs of a shared machine, where wall-time ratios swung 0.40–0.62 between runs);
 * the wall-clock ratio is printed beside it. Goals: reward_cost.latent_over_rgb_time < 1 and …_peak_memory < 1.
 *
 * Two cases:
 * - toy: the models of the config in VGGRPO_BENCH_CONFIG (default examples/toy/config.yaml)
 *   when it names all three of models.lgm, models.vae_decoder and models.geometry and they exist;
 *   otherwise random-weight stand-ins of the toy world's shapes (src/toy/spaces.ts: latents
 *   8×8×16×16, frames 8×3×64×64, geometry 8×8; a 4-block width-64 Φ with patch 8, the LGM
 *   stitched after block 1). The output says which.
 * - wan-vggt: a Wan2.1-VAE-decoder-shaped decoder (16 latent channels, 8× space, 4× causal time,
 *   widths 64/64/32/16 with one residual block per stage — Wan's 384/384/192/96 scaled by 1/6, three blocks each) and a VGGT-shaped Φ (patch 14,
 *   width 1024, 16 heads, 8 alternating frame/global blocks of VGGT's 48; the LGM replaces the
 *   first pair), random weights (bench/reward-cost-models.ts), on latents 1×16×5×30×52: 17 frames
 *   of 240×416 (Wan's 480×832 halved per side; 5 latent frames of Wan's 21), Φ at 210×364
 *   (15×26 patches, 1,950 tokens). Why this size: with one thread on this shared 2-core machine
 *   one RGB-path batch takes ≈ 12 s of CPU (≈ 25 s wall when shared) and ≈ 3 GB, the whole bench
 *   ≈ 2–2.5 minutes; the next step (33 frames, or 480×832) is 2–4× that per pass. The integrator can point the toy case at the
 *   real fixtures with VGGRPO_BENCH_CONFIG; VGGRPO_BENCH_CASES=toy runs only the toy case.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfigFile, resolveConfig } from '../src/config/load.js';
import { saveModel } from '../src/onnx/model.js';
import { ModelSession } from '../src/runtime/session.js';
import { GEOMETRY, LATENT, VIDEO } from '../src/toy/spaces.js';
import { geometryModel, latentGeometryModel, videoDecoder } from './reward-cost-models.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

interface Case {
  name: string;
  /** The config layer the children resolve (models, vae.*, *_outputs). */
  config: Record<string, unknown>;
  shape: number[];
  reps: number;
  models: string;
}

interface PathCost {
  ms: number;
  cpu_ms: number;
  open_ms: number;
  peak_rss_mb: number;
  base_rss_mb: number;
}

function save(g: { toModel(): Parameters<typeof saveModel>[0] }, path: string): string {
  saveModel(g.toModel(), path);
  return path;
}

/** The toy case: the config's three models, or random stand-ins of the toy world's shapes. */
async function toyCase(dir: string): Promise<Case> {
  const file = process.env.VGGRPO_BENCH_CONFIG ?? join(root, 'examples/toy/config.yaml');
  const cfg = resolveConfig([readConfigFile(file)], file);
  const m = cfg.models;
  if (
    m.lgm &&
    m.vae_decoder &&
    m.geometry &&
    [m.lgm, m.vae_decoder, m.geometry].every((p) => existsSync(p!))
  ) {
    const s = await ModelSession.open(m.lgm, { threads: 1 });
    const shape = s.inputs.find((i) => i.name === cfg.lgm_outputs.latents_input)?.shape ?? [];
    await s.release();
    const dims = shape.map((d, k) => (k === 0 ? 8 : typeof d === 'number' ? d : Number.NaN));
    if (dims.some((d) => !Number.isFinite(d))) throw new Error(`${m.lgm}: latents input has non-static dims`);
    return {
      name: 'toy',
      config: { ...cfg, runtime: { ...cfg.runtime, threads: 1 } },
      shape: dims,
      reps: 10,
      models: `from ${file}`,
    };
  }
  const D = 64;
  const grid = { gridH: GEOMETRY.height, gridW: GEOMETRY.width };
  const decoder = save(
    videoDecoder({
      latentChannels: LATENT.channels,
      frames: LATENT.frames,
      height: LATENT.height,
      width: LATENT.width,
      width0: 32,
      stages: [
        { width: 32, up: '2d' },
        { width: 16, up: '2d' },
      ],
      output: 'toy',
    }),
    join(dir, 'toy-vae_decoder.onnx'),
  );
  const phi = save(
    geometryModel({
      frames: VIDEO.frames,
      height: VIDEO.height,
      width: VIDEO.width,
      patch: 8,
      ...grid,
      dim: D,
      heads: 4,
      blocks: 4,
    }),
    join(dir, 'toy-geometry.onnx'),
  );
  const lgm = save(
    latentGeometryModel({
      latentChannels: LATENT.channels,
      latentHeight: LATENT.height,
      latentWidth: LATENT.width,
      frames: LATENT.frames,
      ...grid,
      dim: D,
      heads: 4,
      blocks: 4,
      stitchAt: 1,
    }),
    join(dir, 'toy-lgm.onnx'),
  );
  return {
    name: 'toy',
    config: { models: { lgm, vae_decoder: decoder, geometry: phi }, runtime: { threads: 1 } },
    shape: [8, LATENT.channels, LATENT.frames, LATENT.height, LATENT.width],
    reps: 10,
    models: `random-weight toy-shaped stand-ins (${file} names no models.geometry)`,
  };
}

/** Latents 1×16×5×30×52 → Wan-shaped decoder → 17×3×240×416 → VGGT-shaped Φ at 15×26 patches. */
function wanVggtCase(dir: string): Case {
  const [B, C, F, H, W] = [1, 16, 5, 30, 52];
  const vggt = { frames: F, gridH: H / 2, gridW: W / 2, dim: 1024, heads: 16, blocks: 8 };
  const decoder = save(
    videoDecoder({
      latentChannels: C,
      frames: F,
      height: H,
      width: W,
      width0: 64,
      stages: [
        { width: 64, up: '3d' },
        { width: 64, up: '3d' },
        { width: 32, up: '2d' },
        { width: 16, up: 'none' },
      ],
      output: 'wan',
    }),
    join(dir, 'wan-vae_decoder.onnx'),
  );
  const phi = save(
    geometryModel({ ...vggt, height: 8 * H, width: 8 * W, patch: 14 }),
    join(dir, 'vggt.onnx'),
  );
  const lgm = save(
    latentGeometryModel({ ...vggt, latentChannels: C, latentHeight: H, latentWidth: W, stitchAt: 2 }),
    join(dir, 'vggt-lgm.onnx'),
  );
  return {
    name: 'wan-vggt',
    config: {
      models: { lgm, vae_decoder: decoder, geometry: phi },
      vae: { output_range: [-1, 1], layout: 'B3FHW', temporal_compression: 4 },
      runtime: { threads: 1 },
    },
    shape: [B, C, F, H, W],
    reps: 2,
    models: 'random-weight Wan2.1-VAE-decoder-shaped + VGGT-shaped (width 1024, 8 blocks)',
  };
}

function runPath(specPath: string, path: 'latent' | 'rgb'): PathCost {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(here, 'reward-cost-child.ts'), specPath, path],
    {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  if (r.status !== 0)
    throw new Error(
      `${path} path failed: ${(r.stderr || '')
        .trim()
        .split('\n')
        .filter((l) => /Error|error:/.test(l))
        .slice(0, 2)
        .join(' | ')}`,
    );
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as PathCost;
}

/** Gaussian latents (the same file for both paths). */
function latentsFile(path: string, shape: number[], seed: number): string {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  writeFileSync(path, new Uint8Array(a.buffer));
  return path;
}

export async function benchRewardCost(): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-reward-cost-'));
  const res: Record<string, number | string> = {};
  const round = (x: number, d = 3) => Number(x.toFixed(d));
  res['paper reward_cost.latent_over_rgb_time'] =
    `${round(41.3 / 54.7)} (41.3 s vs 54.7 s per batch, −24.5%)`;
  res['paper reward_cost.latent_over_rgb_peak_memory'] = `${round(68.6 / 76.8)} (68.6 vs 76.8 GB)`;
  res['time'] =
    'CPU time per batch (one onnxruntime thread: the work, however busy the shared machine); wall time beside it';
  res['memory'] =
    'peak RSS per child process (getrusage ru_maxrss); net = peak − RSS before the models opened';
  try {
    const cases = (process.env.VGGRPO_BENCH_CASES ?? 'toy,wan-vggt').split(',');
    const makers: [string, () => Promise<Case>][] = [
      ['toy', () => toyCase(dir)],
      ['wan-vggt', () => Promise.resolve(wanVggtCase(dir))],
    ];
    for (const [name, make] of makers) {
      if (!cases.includes(name)) continue;
      const c = await make();
      const spec = join(dir, `${c.name}.json`);
      writeFileSync(
        spec,
        JSON.stringify({
          config: c.config,
          latents: latentsFile(join(dir, `${c.name}.f32`), c.shape, 7),
          shape: c.shape,
          reps: c.reps,
        }),
      );
      const lat = runPath(spec, 'latent');
      const rgb = runPath(spec, 'rgb');
      const p = c.name;
      res[`${p} models`] = c.models;
      res[`${p} latents`] = `[${c.shape.join(', ')}]`;
      res[`${p} latent CPU ms/batch`] = round(lat.cpu_ms, 1);
      res[`${p} rgb CPU ms/batch`] = round(rgb.cpu_ms, 1);
      res[`${p} latent wall ms/batch`] = round(lat.ms, 1);
      res[`${p} rgb wall ms/batch`] = round(rgb.ms, 1);
      res[`${p} latent peak RSS MB`] = round(lat.peak_rss_mb, 0);
      res[`${p} rgb peak RSS MB`] = round(rgb.peak_rss_mb, 0);
      res[`${p} reward_cost.latent_over_rgb_time`] = round(lat.cpu_ms / rgb.cpu_ms);
      res[`${p} reward_cost.latent_over_rgb_time (wall)`] = round(lat.ms / rgb.ms);
      res[`${p} reward_cost.latent_over_rgb_peak_memory`] = round(lat.peak_rss_mb / rgb.peak_rss_mb);
      res[`${p} reward_cost.latent_over_rgb_peak_memory (net)`] = round(
        (lat.peak_rss_mb - lat.base_rss_mb) / (rgb.peak_rss_mb - rgb.base_rss_mb),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchRewardCost();
  for (const [k, v] of Object.entries(r)) process.stdout.write(`${k}: ${v}\n`);
}
