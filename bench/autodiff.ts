/**
 * Autodiff benchmark: a toy Wan-style DiT (256 tokens, width 64, 2 blocks) timed forward vs
 * its gradient graph in onnxruntime-node (CPU, one thread), for full-weight gradients and for LoRA
 * gradients. Goals: gradient / forward ≤ 3.0 (all weights) and ≤ 2.3 (LoRA only).
 *
 * Peers: when Debian's /usr/bin/python3 imports torch, bench/autodiff_torch.py defines the same
 * DiT in PyTorch, exports it with torch.onnx.export, and times eager forward+backward; we build
 * the gradient graph of that exported model and time it on the same inputs and thread count.
 * At a realistic width, bench/autodiff-wan.ts compares two Wan2.1-1.3B-shaped blocks (goals:
 * ours / PyTorch ≤ 1.0 in time, peak memory no higher). Skipped (with the reason printed)
 * without torch. PyTorch runs on the BLAS that `update-alternatives` picked (OpenBLAS once
 * libopenblas0-pthread is installed; the reference BLAS otherwise, an unfair baseline); the
 * Wan case prints which.
 *
 * @example
 *   node --import tsx bench/autodiff.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import { buildGradientGraph, trimOptionalInputs } from '../src/onnx/autodiff.js';
import { injectLora } from '../src/onnx/lora.js';
import { encodeModel, loadModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { buildToyDit } from '../src/onnx/toy-dit.js';
import { benchWanPeer } from './autodiff-wan.js';
import { median, peakMib, runner, timeInterleaved, torchEnv, withSpread } from './ort-measure.js';

const here = dirname(fileURLToPath(import.meta.url));

const DIMS = {
  batch: 1,
  channels: 16,
  frames: 4,
  height: 16,
  width: 16,
  dim: 64,
  heads: 4,
  layers: 2,
  contextLength: 16,
  contextDim: 64,
};

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

function feedsFor(model: ModelProto, seed: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  let k = seed;
  for (const v of model.graph!.input!) {
    const dims = v.type!.tensorType!.shape!.dim!.map((d) => d.dimValue!);
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[v.name!] = new ort.Tensor(
      'float32',
      v.name === 'timestep' ? Float32Array.of(0.5) : filled(n, k++),
      dims,
    );
  }
  return feeds;
}

/** Times forward vs gradient graphs; returns the medians (ms), ratios and peak memory (MiB). */
const REPEATS = 5;

export async function benchAutodiff(runs = 20): Promise<Record<string, number | string>> {
  const fwd = buildToyDit(DIMS);
  const t0 = performance.now();
  const full = buildGradientGraph(fwd, { wrt: ['*.weight', '*.bias'] });
  const buildMs = performance.now() - t0;
  const { model: lora } = injectLora(fwd, {
    rank: 8,
    alpha: 8,
    targets: ['blocks.*.self_attn.*.weight', 'blocks.*.cross_attn.*.weight', 'blocks.*.ffn.*.weight'],
  });
  const loraGrad = buildGradientGraph(lora, { wrt: ['lora:*'] });
  const feeds = { ...feedsFor(fwd, 1), ...feedsFor(full.model, 1), ...feedsFor(loraGrad.model, 1) };
  const runners = [
    await runner(fwd, feeds),
    await runner(full.model, feeds),
    await runner(lora, feeds),
    await runner(loraGrad.model, feeds),
  ];
  // repeated blocks of interleaved runs: the spread of their ratios shows the machine's noise
  const reps: Awaited<ReturnType<typeof timeInterleaved>>[] = [];
  for (let r = 0; r < REPEATS; r++) reps.push(await timeInterleaved(runners, runs));
  const ratios = (num: number, den: number, cpu = false) =>
    reps.map((t) => (cpu ? t.cpu : t)[num]! / (cpu ? t.cpu : t)[den]!);
  const ms = (k: number) => +median(reps.map((t) => t[k]!)).toFixed(2);
  const res: Record<string, number | string> = {
    model: `toy DiT tokens=256 width=64 blocks=2 (${fwd.graph!.node!.length} nodes), ${REPEATS}×${runs} runs`,
    'autodiff.build_ms': Math.round(buildMs),
    'autodiff.grad_nodes': full.model.graph!.node!.length,
    'autodiff.forward_ms': ms(0),
    'autodiff.grad_ms': ms(1),
    'autodiff.ratio (goal ≤ 3.0)': withSpread(ratios(1, 0)),
    'autodiff.cpu_ratio (goal ≤ 3.0)': withSpread(ratios(1, 0, true)),
    'autodiff.lora_forward_ms': ms(2),
    'autodiff.lora_grad_ms': ms(3),
    'autodiff.lora_ratio (goal ≤ 2.3)': withSpread(ratios(3, 2)),
    'autodiff.lora_cpu_ratio (goal ≤ 2.3)': withSpread(ratios(3, 2, true)),
    'autodiff.forward_peak_mib': peakMib(fwd),
    'autodiff.grad_peak_mib': peakMib(full.model),
    'autodiff.lora_grad_peak_mib': peakMib(loraGrad.model),
  };
  Object.assign(res, await benchTorchPeer(runs));
  if (!torchMissing()) Object.assign(res, await benchWanPeer());
  return res;
}

/** What bench/autodiff_torch.py wrote: the exported model, its inputs and PyTorch's results. */
export interface TorchPeer {
  dir: string;
  model: ModelProto;
  /** Parameter names (state-dict names) with PyTorch's autograd gradients. */
  grads: Map<string, { data: Float32Array; shape: number[] }>;
  inputs: Record<string, { data: Float32Array; shape: number[] }>;
  cotangent: { data: Float32Array; shape: number[] };
  output: { data: Float32Array; shape: number[] };
  torchForwardMs?: number;
  torchFwdBwdMs?: number;
  torchPeakRssMib: number;
  /** Growth of PyTorch's resident-set high-water mark over its forward+backward passes. */
  torchRssGrowthMib: number;
  torchVersion: string;
  /** Remove the temporary folder. */
  dispose(): void;
}

/** Why the PyTorch peer cannot run here, or undefined when /usr/bin/python3 imports torch and onnx. */
export function torchMissing(): string | undefined {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch, onnx'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0
    ? undefined
    : '/usr/bin/python3 cannot import torch and onnx (apt-get install -y python3-torch python3-onnx)';
}

/**
 * Run bench/autodiff_torch.py: export the PyTorch toy DiT and collect its gradients and timings.
 *
 * @example
 *   const peer = runTorchPeer({ dim: 16, heads: 2 }, 0); // no timing, small model
 */
export function runTorchPeer(dims: Record<string, number> = {}, runs = 15): TorchPeer {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-torch-'));
  const r = spawnSync(
    '/usr/bin/python3',
    [join(here, 'autodiff_torch.py'), '--out', dir, '--runs', String(runs), '--dims', JSON.stringify(dims)],
    { encoding: 'utf8', timeout: 600_000, env: torchEnv(1) },
  );
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `autodiff_torch.py failed: ${(r.stderr || String(r.error ?? '')).trim().split('\n').pop()}`,
    );
  }
  type Entry = { file: string; shape: number[] };
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    inputs: Record<string, Entry>;
    cotangent: Entry;
    output: Entry;
    params: (Entry & { name: string })[];
    torch_forward_ms: number | null;
    torch_fwd_bwd_ms: number | null;
    torch_peak_rss_mib: number;
    torch_rss_growth_mib: number;
    torch_version: string;
  };
  const read = (e: Entry) => {
    const b = readFileSync(join(dir, e.file));
    return {
      data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
      shape: e.shape,
    };
  };
  const inputs: TorchPeer['inputs'] = {};
  for (const [k, e] of Object.entries(m.inputs)) inputs[k] = read(e);
  const model = loadModel(join(dir, 'model.onnx'));
  // PyTorch writes LayerNormalization(x, w, ''), which crashes onnxruntime's fusions
  model.graph!.node = model.graph!.node!.map(trimOptionalInputs);
  return {
    dir,
    model,
    grads: new Map(m.params.map((p) => [p.name, read(p)])),
    inputs,
    cotangent: read(m.cotangent),
    output: read(m.output),
    torchForwardMs: m.torch_forward_ms ?? undefined,
    torchFwdBwdMs: m.torch_fwd_bwd_ms ?? undefined,
    torchPeakRssMib: m.torch_peak_rss_mib,
    torchRssGrowthMib: m.torch_rss_growth_mib,
    torchVersion: m.torch_version,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Largest |ours − PyTorch| over every parameter, relative to that parameter's largest |gradient|
 * but never to less than 1e-3 of the largest over all: some gradients are exactly zero in exact
 * arithmetic (a cross-attention key bias shifts every score of a query alike, which Softmax
 * ignores), and both sides then hold rounding noise.
 *
 * @example
 *   maxGradError(peer, (name) => outputs[`grad:${name}`].data); // ≈ 1e-6
 */
export function maxGradError(peer: TorchPeer, ours: (name: string) => Float32Array): number {
  const absMax = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const global = Math.max(...[...peer.grads.values()].map((g) => absMax(g.data)));
  let worst = 0;
  for (const [name, g] of peer.grads) {
    const a = ours(name);
    if (a.length !== g.data.length) return Number.POSITIVE_INFINITY;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - g.data[i]!));
    worst = Math.max(worst, diff / Math.max(absMax(g.data), 1e-3 * global));
  }
  return worst;
}

/** Ours (gradient graph of the PyTorch-exported model in onnxruntime) against PyTorch eager. */
async function benchTorchPeer(runs: number): Promise<Record<string, number | string>> {
  const missing = torchMissing();
  if (missing) return { 'torch.skipped': missing };
  const peer = runTorchPeer({}, runs);
  try {
    const wrt = [...peer.grads.keys()];
    const grad = buildGradientGraph(peer.model, { wrt });
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(peer.inputs)) feeds[k] = new ort.Tensor('float32', v.data, v.shape);
    feeds['grad:velocity'] = new ort.Tensor('float32', peer.cotangent.data, peer.cotangent.shape);
    const timed = await timeInterleaved(
      [await runner(peer.model, feeds), await runner(grad.model, feeds)],
      runs,
    );
    const [fwdMs = Number.NaN, gradMs = Number.NaN] = timed;
    // agreement with PyTorch's autograd, as a sanity check of what is timed
    const s = await ort.InferenceSession.create(encodeModel(grad.model), { intraOpNumThreads: 1 });
    const out = await s.run(feeds);
    const worst = maxGradError(peer, (name) => out[`grad:${name}`]!.data as Float32Array);
    return {
      'torch.version': peer.torchVersion,
      'torch.grad_nodes': grad.model.graph!.node!.length,
      'torch.ours_forward_ms': +fwdMs.toFixed(2),
      'torch.ours_grad_ms': +gradMs.toFixed(2),
      'torch.ours_ratio': +(gradMs! / fwdMs!).toFixed(2),
      'torch.ours_cpu_ratio': +(timed.cpu[1]! / timed.cpu[0]!).toFixed(2),
      'torch.pytorch_forward_ms': +(peer.torchForwardMs ?? Number.NaN).toFixed(2),
      'torch.pytorch_fwd_bwd_ms': +(peer.torchFwdBwdMs ?? Number.NaN).toFixed(2),
      'torch.ours_grad/pytorch_fwd_bwd (goal ≤ 1.0)': +(gradMs / (peer.torchFwdBwdMs ?? Number.NaN)).toFixed(
        3,
      ),
      'torch.ours_grad_peak_mib': peakMib(grad.model),
      'torch.pytorch_rss_growth_mib': Math.round(peer.torchRssGrowthMib),
      'torch.pytorch_peak_rss_mib': Math.round(peer.torchPeakRssMib),
      'torch.max_rel_grad_err': +worst.toExponential(2),
    };
  } finally {
    peer.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchAutodiff();
  for (const [k, v] of Object.entries(r)) console.log(`${k}: ${v}`);
}
