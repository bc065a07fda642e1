/**
 * `npm run bench -- scale`: the Wan2.1-T2V-1.3B shape (onnx/wan-builder.ts) through `sample`
 * and `grpo-step` on the CPU at 160×288 × 17 frames (latent 16×5×20×36, 900 tokens): sample with
 * 2 steps and one group of 2, then one grpo-step with LoRA rank 32 on attention and FFN and
 * per-block checkpointing (`grpo.checkpointing: blocks`). Each stage is its own process under
 * /usr/bin/time -v, which reports its peak resident set.
 *
 * The full 30 blocks take too long on this project's shared 2-core machine, so by default the
 * bench measures models of 1, 2 and 4 blocks (VGGRPO_SCALE_BLOCKS=1,2,4; 30 for the real size)
 * and fits value = a + b·blocks on the smallest and largest points; the middle one checks the
 * fit, and the fit is extrapolated to 30 blocks (onnx/README.md, "What fits"). The same
 * grpo-step also runs with the unsplit gradient graph (`grpo.checkpointing: none`) to show what
 * checkpointing saves; at 30 blocks that one would not fit, so it is for the small points only.
 * Micro-batches smaller than a group are not built on this branch, so grpo-step's micro-batch
 * is the group (2). The float16 export of the same shape (wan-builder's --dtype float16) is
 * measured beside the float32 point at the smallest block count (VGGRPO_SCALE_HALF=N,… or none).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WAN_1_3B, writeWanDenoiser } from '../onnx/wan-builder.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { saveModel } from '../src/onnx/model.js';
import type { Precision } from '../src/onnx/precision.js';
import { writeSafetensors } from '../src/shards/safetensors.js';
import { f32 } from '../src/shards/tensor.js';
import { tempDir } from '../test/helpers.js';

const LATENT: [number, number, number] = [5, 20, 36];
const TARGETS = [
  '*attn.q.weight',
  '*attn.k.weight',
  '*attn.v.weight',
  '*attn.o.weight',
  '*ffn.0.weight',
  '*ffn.2.weight',
];

/**
 * A stand-in geometry model for Wan latents (the toy LGM reads the toy's 14-channel latents):
 * a 1×2×2 Conv3d to 8 features, depth and confidence from sigmoids, cameras near the identity,
 * world points along fixed rays. Only there so decode-geometry and score produce real shards.
 */
export function probeLgm(path: string): void {
  const [F, H, W] = LATENT;
  const [h, w] = [H / 2, W / 2];
  const g = new GraphBuilder('probe_lgm', 18);
  const x = g.input('latents', 'float32', ['B', 16, F, H, W]);
  const wt = g.init('w', Float32Array, [8, 16, 1, 2, 2], (i) => Math.sin(1.7 * i) * 0.1);
  const f = g.op('Conv', [x, wt], { kernel_shape: [1, 2, 2], strides: [1, 2, 2] });
  const ch = (a: number, b: number) => g.op('Slice', [f, g.ints([a]), g.ints([b]), g.ints([1])]);
  const map = (a: number) => g.op('Squeeze', [ch(a, a + 1), g.ints([1])]);
  const depth = g.op('Add', [g.op('Sigmoid', [map(0)]), g.const([2])]);
  const confidence = g.op('Sigmoid', [map(1)]);
  const feats = g.op('Transpose', [g.op('ReduceMean', [f, g.ints([3, 4])], { keepdims: 0 })], {
    perm: [0, 2, 1],
  });
  const part = (a: number, b: number) => g.op('Slice', [feats, g.ints([a]), g.ints([b]), g.ints([2])]);
  const t = g.op('Mul', [g.op('Tanh', [part(0, 3)]), g.const([0.1])]);
  const qv = g.op('Mul', [g.op('Tanh', [part(3, 6)]), g.const([0.05])]);
  const zero = g.op('Mul', [part(6, 8), g.const([0])]);
  const [zw] = g.opN('Split', [zero, g.ints([1, 1])], { axis: 2 }, { outputs: 2 });
  const qw = g.op('Add', [zw!, g.const([1])]);
  const fov = g.op('Add', [zero, g.const([1.0, 1.2], 'float32', [2])]);
  const pose = g.op('Concat', [t, qv, qw, fov], { axis: 2 });
  const rays = g.init('rays', Float32Array, [h, w, 3], (i) => {
    const [r, c, k] = [Math.floor(i / (3 * w)), Math.floor(i / 3) % w, i % 3];
    return k === 2 ? 1 : k === 0 ? (c - w / 2) / w : (r - h / 2) / h;
  });
  const points = g.op('Mul', [g.op('Unsqueeze', [depth, g.ints([-1])]), rays]);
  // Declared last: output() renames a value that nothing reads yet.
  for (const [v, name] of [
    [depth, 'depth'],
    [confidence, 'confidence'],
    [pose, 'pose_enc'],
    [points, 'world_points'],
  ] as const)
    g.output(v, name);
  saveModel(g.toModel(), path);
}

function config(dir: string, denoiser: string, lgm: string, checkpointing: 'blocks' | 'none'): string {
  const path = join(dir, `scale-${checkpointing}.yaml`);
  writeFileSync(
    path,
    [
      'models:',
      `  denoiser: ${denoiser}`,
      `  lgm: ${lgm}`,
      '  vae_decoder: null',
      '  text_encoder: null',
      'sampler: { steps: 2, group_size: 2, per_shard: 1, guidance: 1, sde_window: ":" }',
      `lora: { rank: 32, alpha: 64, targets: ${JSON.stringify(TARGETS)} }`,
      `grpo: { checkpointing: ${checkpointing} }`,
      'runtime: { threads: 2 }',
      '',
    ].join('\n'),
  );
  return path;
}

interface Timed {
  seconds: number;
  peakGiB: number;
  stdout: string;
  stderr: string;
}

/** Run the CLI under /usr/bin/time -v: wall time and peak RSS of that process alone. */
function timed(args: string[], env: Record<string, string>): Timed {
  const bin = resolve(import.meta.dirname, '..', 'bin', 'run.js');
  const log = join(env.VGGRPO_CACHE!, `time-${Date.now()}.txt`);
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', '-o', log, process.execPath, bin, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const seconds = (performance.now() - t0) / 1000;
  const stderr = r.stderr.toString();
  if (r.status !== 0) throw new Error(`${args[0]} exited ${r.status}: ${stderr.trim().split('\n').pop()}`);
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(log, 'utf8'))?.[1]);
  return { seconds, peakGiB: kb / 2 ** 20, stdout: r.stdout.toString(), stderr };
}

interface Point {
  blocks: number;
  /** The sampler's own time per denoising step (its log line; no process start or model load). */
  sampleS: number;
  sampleProcessS: number;
  /** The whole grpo-step process (one step: load, gradient graphs, sessions, the update). */
  grpoS: number;
  samplePeak: number;
  grpoPeak: number;
  /** The same step with the unsplit gradient graph (grpo.checkpointing: none). */
  unsplitS: number;
  unsplitPeak: number;
  weightsGiB: number;
}

/** `unsplit`: also the grpo-step with the unsplit gradient graph (NaN when skipped). */
function measure(blocks: number, dtype: Precision = 'float32', unsplit = true): Point {
  const dir = tempDir('vggrpo-scale-');
  try {
    const built = writeWanDenoiser({
      out: join(dir, 'wan', 'denoiser.onnx'),
      latent: LATENT,
      shape: { ...WAN_1_3B, blocks },
      dtype,
    });
    const lgm = join(dir, 'lgm.onnx');
    probeLgm(lgm);
    const emb = join(dir, 'embeddings.safetensors');
    const ctx = new Float32Array(512 * 4096).map((_, i) => 0.1 * Math.sin(0.37 * i));
    writeSafetensors(
      emb,
      { context: f32([1, 512, 4096], ctx) },
      { 'vggrpo.kind': 'embeddings', 'vggrpo.schema': '1' },
    );
    const cfg = config(dir, built.path, lgm, 'blocks');
    const env = { VGGRPO_CACHE: join(dir, 'cache') };
    execFileSync('mkdir', ['-p', env.VGGRPO_CACHE]);
    const run = join(dir, 'run');
    const sample = timed(
      ['sample', '--config', cfg, '--embeddings', emb, '--out', join(run, 'trajectory')],
      env,
    );
    const geo = timed(
      ['decode-geometry', ...sample.stdout.trim().split('\n'), '--out', join(run, 'geometry')],
      env,
    );
    const sc = timed(['score', ...geo.stdout.trim().split('\n'), '--out', join(run, 'rewards')], env);
    const rewards = sc.stdout.trim().split('\n');
    const grpo = timed(['grpo-step', ...rewards, '--out', join(run, 'policy'), '--config', cfg], env);
    if (!readdirSync(join(run, 'policy')).includes('adapter_model.safetensors'))
      throw new Error('grpo-step wrote no checkpoint');
    const plain = config(dir, built.path, lgm, 'none');
    const split = unsplit
      ? timed(['grpo-step', ...rewards, '--out', join(run, 'policy-unsplit'), '--config', plain], env)
      : { seconds: Number.NaN, peakGiB: Number.NaN };
    const group = /group 1\/1 \(prompt 0\) in ([\d.]+) s/.exec(sample.stderr);
    // 2 sampling steps; one trained step (the last step is never stochastic) in one micro-batch.
    return {
      blocks,
      sampleS: group ? Number(group[1]) / 2 : Number.NaN,
      sampleProcessS: sample.seconds,
      grpoS: grpo.seconds,
      samplePeak: sample.peakGiB,
      grpoPeak: grpo.peakGiB,
      unsplitS: split.seconds,
      unsplitPeak: split.peakGiB,
      weightsGiB: built.dataBytes / 2 ** 30,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The float16 export of the same shape beside the float32 points at VGGRPO_SCALE_HALF blocks
 * (a list; default: the smallest measured; `none` skips it), checkpointed grpo-step only; with
 * two or more, the per-block slopes of both precisions.
 */
function halfPrecision(points: Point[]): Record<string, number | string> {
  const want = process.env.VGGRPO_SCALE_HALF ?? String(points[0]!.blocks);
  if (want === 'none') return {};
  const pairs = want
    .split(',')
    .map(Number)
    .map((n) => {
      const base = points.find((p) => p.blocks === n) ?? measure(n);
      const h = measure(n, 'float16', false);
      process.stdout.write(
        `  float16, blocks ${n}: weights ${h.weightsGiB.toFixed(2)} GiB; sample ${h.sampleS.toFixed(1)} s/step, ` +
          `peak ${h.samplePeak.toFixed(2)} GiB; grpo-step ${h.grpoS.toFixed(1)} s, peak ${h.grpoPeak.toFixed(2)} GiB\n`,
      );
      return { base, h };
    });
  const { base, h } = pairs[0]!;
  const ratio = (a: number, b: number) => +(a / b).toFixed(3);
  const out: Record<string, number | string> = {
    'scale.fp16.blocks': h.blocks,
    'scale.fp16.weights_gib': +h.weightsGiB.toFixed(3),
    'scale.fp16.sample_s_per_step': +h.sampleS.toFixed(2),
    'scale.fp16.grpo_s_per_step': +h.grpoS.toFixed(2),
    'scale.fp16.sample_peak_gib': +h.samplePeak.toFixed(3),
    'scale.fp16.grpo_peak_gib': +h.grpoPeak.toFixed(3),
    'scale.fp16_over_fp32_weights': `${ratio(h.weightsGiB, base.weightsGiB)} (goal 0.5: half the bytes on disk)`,
    'scale.fp16_over_fp32_sample_peak': `${ratio(h.samplePeak, base.samplePeak)} (goal < 1)`,
    'scale.fp16_over_fp32_grpo_peak': `${ratio(h.grpoPeak, base.grpoPeak)} (goal < 1)`,
    'scale.fp16_over_fp32_sample_s': `${ratio(h.sampleS, base.sampleS)} (goal ≤ 1)`,
    'scale.fp16_over_fp32_grpo_s': `${ratio(h.grpoS, base.grpoS)} (goal ≤ 1)`,
  };
  if (pairs.length >= 2) {
    for (const key of ['samplePeak', 'grpoPeak'] as const) {
      const f32 = fit(
        pairs.map((p) => p.base),
        key,
      );
      const f16 = fit(
        pairs.map((p) => p.h),
        key,
      );
      out[`scale.fp16_over_fp32_${key}_per_block`] =
        `${ratio(f16.b, f32.b)} (float16 ${f16.b.toFixed(3)}, float32 ${f32.b.toFixed(3)} GiB/block; goal < 1)`;
      out[`scale.fp16.${key}.at_30`] = +f16.at(30).toFixed(2);
    }
  }
  return out;
}

/** value = a + b·blocks through the first and last points. */
function fit(points: Point[], key: keyof Point) {
  const p0 = points[0]!;
  const p1 = points[points.length - 1]!;
  const b = (p1[key] - p0[key]) / (p1.blocks - p0.blocks);
  const a = p0[key] - b * p0.blocks;
  return { a, b, at: (n: number) => a + b * n };
}

export async function benchScale(): Promise<Record<string, number | string>> {
  const blocks = (process.env.VGGRPO_SCALE_BLOCKS ?? '1,2,4').split(',').map(Number);
  const points: Point[] = [];
  for (const n of blocks) {
    const p = measure(n);
    points.push(p);
    process.stdout.write(
      `  blocks ${n}: weights ${p.weightsGiB.toFixed(2)} GiB; sample ${p.sampleS.toFixed(1)} s/step ` +
        `(process ${p.sampleProcessS.toFixed(1)} s), peak ${p.samplePeak.toFixed(2)} GiB; grpo-step ` +
        `${p.grpoS.toFixed(1)} s, peak ${p.grpoPeak.toFixed(2)} GiB; unsplit ${p.unsplitS.toFixed(1)} s, ` +
        `peak ${p.unsplitPeak.toFixed(2)} GiB\n`,
    );
  }
  const last = points[points.length - 1]!;
  const out: Record<string, number | string> = {
    'scale.blocks_measured': last.blocks,
    'scale.sample_s_per_step': +last.sampleS.toFixed(2),
    'scale.grpo_s_per_step': +last.grpoS.toFixed(2),
    'scale.sample_peak_gib': +last.samplePeak.toFixed(3),
    'scale.grpo_peak_gib': +last.grpoPeak.toFixed(3),
    'scale.grpo_unsplit_s_per_step': +last.unsplitS.toFixed(2),
    'scale.grpo_unsplit_peak_gib': +last.unsplitPeak.toFixed(3),
  };
  Object.assign(out, halfPrecision(points));
  if (points.length >= 2 && last.blocks !== 30) {
    for (const key of ['sampleS', 'grpoS', 'samplePeak', 'grpoPeak', 'unsplitS', 'unsplitPeak'] as const) {
      const f = fit(points, key);
      out[`scale.${key}.fit`] = `${f.a.toFixed(3)} + ${f.b.toFixed(3)}·blocks`;
      for (const p of points.slice(1, -1))
        out[`scale.${key}.check_${p.blocks}`] =
          `measured ${p[key].toFixed(3)}, fit ${f.at(p.blocks).toFixed(3)}`;
      out[`scale.${key}.at_30`] = +f.at(30).toFixed(2);
    }
  }
  return out;
}
