/**
 * Autodiff benchmark: a toy Wan-style DiT (256 tokens, width 64, 2 blocks) timed forward vs
 * its gradient graph in onnxruntime-node (CPU, one thread), for full-weight gradients and for LoRA
 * gradients. Goal: gradient / forward ≤ 3.
 *
 * @example
 *   node --import tsx bench/autodiff.ts
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { injectLora } from '../src/onnx/lora.js';
import { encodeModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { buildToyDit } from '../src/onnx/toy-dit.js';

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

type Runner = () => Promise<unknown>;

async function runner(model: ModelProto, feeds: Record<string, ort.Tensor>): Promise<Runner> {
  // one thread: the ratio then measures work, not how busy the other cores happen to be
  const s = await ort.InferenceSession.create(encodeModel(model), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  const f: Record<string, ort.Tensor> = {};
  for (const k of s.inputNames) {
    const t = feeds[k];
    if (t) f[k] = t;
  }
  await s.run(f); // warm-up
  return () => s.run(f);
}

/** Median times (ms) of the runners, run interleaved so load changes hit them alike. */
async function timeInterleaved(runners: Runner[], runs: number): Promise<number[]> {
  const times: number[][] = runners.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < runners.length; k++) {
      const t0 = performance.now();
      await runners[k]!();
      times[k]!.push(performance.now() - t0);
    }
  }
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
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

/** Times forward vs gradient graphs; returns the medians (ms), ratios and peak RSS (MiB). */
export async function benchAutodiff(runs = 15): Promise<Record<string, number | string>> {
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
  const [fwdMs, gradMs, loraFwdMs, loraGradMs] = await timeInterleaved(
    [
      await runner(fwd, feeds),
      await runner(full.model, feeds),
      await runner(lora, feeds),
      await runner(loraGrad.model, feeds),
    ],
    runs,
  );
  const res: Record<string, number | string> = {
    model: `toy DiT tokens=256 width=64 blocks=2 (${fwd.graph!.node!.length} nodes)`,
    'autodiff.build_ms': Math.round(buildMs),
    'autodiff.grad_nodes': full.model.graph!.node!.length,
    'autodiff.forward_ms': +fwdMs.toFixed(2),
    'autodiff.grad_ms': +gradMs.toFixed(2),
    'autodiff.ratio': +(gradMs / fwdMs).toFixed(2),
    'autodiff.lora_forward_ms': +loraFwdMs.toFixed(2),
    'autodiff.lora_grad_ms': +loraGradMs.toFixed(2),
    'autodiff.lora_ratio': +(loraGradMs / loraFwdMs).toFixed(2),
    'autodiff.peak_rss_mib': Math.round(process.resourceUsage().maxRSS / 1024),
  };
  return res;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchAutodiff();
  for (const [k, v] of Object.entries(r)) console.log(`${k}: ${v}`);
}
