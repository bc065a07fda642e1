/**
 * The realistic-width case of the autodiff benchmark: two blocks of Wan2.1-T2V-1.3B's shape
 * (dim 1536, 12 heads, FFN 8960, text 512 × 4096) at 900 tokens (latent 4 × 30 × 30), written by
 * onnx/wan-builder.ts with random weights. Ours: its gradient graph for every parameter, run by
 * onnxruntime (forward and backward in one graph, as `onnx grad` emits it). Peer: the same
 * network in PyTorch eager (bench/autodiff_wan_torch.py, weights read from the same file),
 * forward+backward. Both float32 at the same thread count, timed in alternating rounds so load
 * changes hit both; ours in two onnxruntime set-ups (CONFIGS). Goals: ours ÷ PyTorch ≤ 1.0 in
 * time; peak memory no higher than PyTorch's.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { WAN_1_3B, writeWanDenoiser } from '../onnx/wan-builder.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { loadModel, saveModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { gradientRuntime } from '../src/runtime/session.js';
import {
  median,
  peakMib,
  type RunOptions,
  runner,
  timeInterleaved,
  torchEnv,
  withSpread,
} from './ort-measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const LATENT: [number, number, number] = [4, 30, 30];
const SHAPE = { ...WAN_1_3B, blocks: 2 };
/** Gradients compared with PyTorch's (small ones and one large weight, to keep the files small). */
const CHECKED = [
  'blocks.1.ffn.2.bias',
  'blocks.0.self_attn.norm_q.weight',
  'blocks.0.modulation',
  'head.head.weight',
];

export interface WanPeerOptions {
  /** Alternating rounds (PyTorch, then ours); the spread of the per-round ratios is reported. */
  rounds?: number;
  /** Timed runs per side per round (after one warm-up). */
  runs?: number;
  threads?: number;
}

interface TorchRound {
  torch_version: string;
  threads: number;
  blas: string[];
  fwd_bwd_ms: number;
  fwd_bwd_cpu_ms: number;
  peak_growth_mib: number;
}

function filled(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * scale;
  }
  return a;
}

/** The builder's parameters (Wan's dotted names) and its two RoPE tables [N, 1, hd/2, 1] (cos, sin). */
function parts(model: ModelProto): { params: string[]; rope: string[] } {
  const inits = model.graph?.initializer ?? [];
  const hd = SHAPE.dim / SHAPE.heads;
  const n = (LATENT[0] / SHAPE.patch[0]) * (LATENT[1] / SHAPE.patch[1]) * (LATENT[2] / SHAPE.patch[2]);
  const rope = inits.filter((t) => (t.dims ?? []).map(Number).join() === [n, 1, hd / 2, 1].join());
  return {
    params: inits.filter((t) => t.dataType === 1 && t.name?.includes('.')).map((t) => t.name!),
    rope: rope.map((t) => t.name!),
  };
}

/** Largest |a − b| relative to b's largest |value|. */
function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    max = Math.max(max, Math.abs(b[i]!));
  }
  return diff / (max || 1);
}

const f32 = (file: string): Float32Array => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

function torchRound(dir: string, runs: number, threads: number): TorchRound {
  const r = spawnSync(
    '/usr/bin/python3',
    [
      join(here, 'autodiff_wan_torch.py'),
      ...['--model', join(dir, 'wan.onnx'), '--inputs', dir, '--out', join(dir, 'torch')],
      ...['--runs', String(runs), '--threads', String(threads), '--check', JSON.stringify(CHECKED)],
    ],
    { encoding: 'utf8', timeout: 900_000, env: torchEnv(threads) },
  );
  if (r.status !== 0) {
    throw new Error(
      `autodiff_wan_torch.py failed: ${(r.stderr || String(r.error ?? '')).trim().split('\n').pop()}`,
    );
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchRound;
}

/** Which of the OpenBLAS overrides this process has (torchEnv unsets them for PyTorch). */
function unsetNote(): string {
  const set = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'].filter((k) => process.env[k] !== undefined);
  return set.length ? `, ${set.join(' and ')} unset for it` : '';
}

/** Build the Wan-shaped model and its gradient graph in `dir`; returns our feeds. */
function prepare(dir: string): { feeds: Record<string, ort.Tensor>; gradNodes: number; buildMs: number } {
  writeWanDenoiser({ out: join(dir, 'wan.onnx'), latent: LATENT, shape: SHAPE });
  const model = loadModel(join(dir, 'wan.onnx'));
  const { params, rope } = parts(model);
  const t0 = performance.now();
  const grad = buildGradientGraph(model, { wrt: params, shapes: { B: [1] } });
  const buildMs = performance.now() - t0;
  saveModel(grad.model, join(dir, 'grad.onnx'), { keepExternal: (f) => basename(f) });
  const [F, H, W] = LATENT;
  const shapes: Record<string, number[]> = {
    latents: [1, SHAPE.channels, F, H, W],
    timestep: [1],
    context: [1, SHAPE.textLength, SHAPE.textDim],
    cotangent: [1, SHAPE.channels, F, H, W],
  };
  const values: Record<string, Float32Array> = {
    latents: filled(
      shapes.latents!.reduce((a, b) => a * b),
      1,
    ),
    timestep: Float32Array.of(0.5),
    context: filled(
      shapes.context!.reduce((a, b) => a * b),
      2,
    ),
    cotangent: filled(
      shapes.cotangent!.reduce((a, b) => a * b),
      3,
    ),
  };
  for (const [k, v] of Object.entries(values)) writeFileSync(join(dir, `${k}.f32`), v);
  const grid = LATENT.map((d, i) => d / SHAPE.patch[i]!);
  const meta = {
    shapes,
    rope,
    params,
    blocks: SHAPE.blocks,
    heads: SHAPE.heads,
    grid,
    patch: SHAPE.patch,
    channels: SHAPE.channels,
  };
  writeFileSync(join(dir, 'shapes.json'), JSON.stringify(meta));
  const feeds: Record<string, ort.Tensor> = {};
  for (const k of ['latents', 'timestep', 'context'])
    feeds[k] = new ort.Tensor('float32', values[k]!, shapes[k]!);
  feeds['grad:velocity'] = new ort.Tensor('float32', values.cotangent!, shapes.cotangent!);
  return { feeds, gradNodes: grad.model.graph!.node!.length, buildMs };
}

/**
 * Three onnxruntime set-ups: lean (no prepacked weights, no arena: least memory, but every large
 * intermediate is a fresh mmap page-faulted anew each run), arena (what the adapter opens gradient
 * sessions with on CPU, gradientRuntime in src/runtime/session.ts: the memory arena without
 * prepacking or memory pattern: no faults, and the arena's chunks are reused tensor by tensor,
 * where a planned pattern block is kept twice) and onnxruntime's defaults (packed:
 * a packed copy of each weight per product reading it, which here costs more memory than
 * PyTorch's whole step, but makes the forward and dX products faster). Outputs are the ones
 * onnxruntime allocates: buffers passed in (preallocated fetches) are filled by a copy here, which
 * costs their size again (+450 MiB at this width).
 */
const CONFIGS: [string, RunOptions][] = [
  ['lean', { memoryArena: false, prepack: false }],
  ['arena', gradientRuntime({})],
  ['packed', {}],
];

/** Ours against PyTorch on the Wan-shaped model; figures printed with their goals. */
export async function benchWanPeer(o: WanPeerOptions = {}): Promise<Record<string, number | string>> {
  const { rounds = 3, runs = 2, threads = 1 } = o;
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-wan-'));
  try {
    mkdirSync(join(dir, 'torch'));
    const { feeds, gradNodes, buildMs } = prepare(dir);
    const ours = await Promise.all(
      CONFIGS.map(([, how]) => runner(join(dir, 'grad.onnx'), feeds, { ...how, threads })),
    );
    const out = (await ours[0]!()) as Record<string, ort.Tensor>;
    const torch: TorchRound[] = [];
    const timed: Awaited<ReturnType<typeof timeInterleaved>>[] = [];
    for (let r = 0; r < rounds; r++) {
      torch.push(torchRound(dir, runs, threads));
      timed.push(await timeInterleaved(ours, runs));
    }
    const check = Math.max(
      relErr(out.velocity!.data as Float32Array, f32(join(dir, 'torch', 'velocity.f32'))),
      ...CHECKED.map((k) =>
        relErr(out[`grad:${k}`]!.data as Float32Array, f32(join(dir, 'torch', `grad.${k}.f32`))),
      ),
    );
    const t = torch[0]!;
    const torchPeak = Math.max(...torch.map((x) => x.peak_growth_mib));
    const res: Record<string, number | string> = {
      'wan.model': `Wan2.1-1.3B shape, ${SHAPE.blocks} blocks, ${LATENT.join('×')} latent = 900 tokens, text 512, float32, ${threads} thread(s), ${rounds} rounds × ${runs} runs`,
      'wan.torch': `${t.torch_version}, BLAS ${t.blas.join(', ') || 'none mapped'}, ${t.threads} thread(s)${unsetNote()}`,
      'wan.grad_nodes': gradNodes,
      'wan.build_ms': Math.round(buildMs),
      'wan.pytorch_fwd_bwd_ms': +median(torch.map((x) => x.fwd_bwd_ms)).toFixed(0),
      'wan.pytorch_peak_mib': Math.round(torchPeak),
      'wan.max_rel_err_vs_pytorch': +check.toExponential(2),
    };
    CONFIGS.forEach(([name, how], k) => {
      const peak = peakMib(join(dir, 'grad.onnx'), { ...how, threads });
      res[`wan.${name}.ours_grad_ms`] = +median(timed.map((x) => x[k]!)).toFixed(0);
      res[`wan.${name}.ours/pytorch (goal ≤ 1.0)`] = withSpread(
        timed.map((x, r) => x[k]! / torch[r]!.fwd_bwd_ms),
        3,
      );
      res[`wan.${name}.ours/pytorch cpu (goal ≤ 1.0)`] = withSpread(
        timed.map((x, r) => x.cpu[k]! / torch[r]!.fwd_bwd_cpu_ms),
        3,
      );
      res[`wan.${name}.ours_peak_mib`] = peak;
      res[`wan.${name}.peak ours/pytorch (goal ≤ 1.0)`] = +(peak / torchPeak).toFixed(3);
    });
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
