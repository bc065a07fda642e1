/**
 * The two training phases of a stitch (docs/METHOD.md, Parts 1), both with the project's autodiff
 * and AdamW as onnx/pretrain.ts trains the toy denoiser:
 * - phase 1 fits the connector C so C(E(x)) matches Φ_{1:ℓ}(x) at the stitch point (MSE);
 * - phase 2 fine-tunes C and Φ_{ℓ+1:L} so the LGM's outputs match Φ's outputs on the RGB video.
 *
 * Each loss term is an MSE divided by its target's variance over the training videos (a relative
 * MSE), times its weight from `stitch.phase2.weights`, so outputs of different scale (depth,
 * confidence, the pose encoding) weigh what the config says. Batches are drawn from a seed per
 * (phase, step), so a run resumed from a checkpoint continues exactly as an uninterrupted one.
 *
 * @example
 *   const r = await runPhase({ phase: 1, model, params, data, ...opts });
 */
import { InputError, RuntimeFailure } from '../errors.js';
import { buildGradientGraph } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { encodeModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/proto.js';
import { type AdamWState, adamwInit, adamwStep, clipGradNorm, type ParamMap } from '../rl/adamw.js';
import { warmupCosine } from '../rl/lr-schedule.js';
import { splitSeed, Xoshiro128 } from '../rl/prng.js';
import { gradientRuntime, ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';
import type { ParamInfo } from '../toy/nn.js';

/** One term of the loss: a model output matched to a target. */
export interface LossTerm {
  output: string;
  /** Per-sample shape of the output. */
  shape: number[];
  weight: number;
  /** Training targets per video (the output's own values, also for a `frameSteps` term). */
  targets: Float32Array[];
  /**
   * Match the differences between consecutive frames (axis 0 of the per-sample shape) instead of
   * the values, with the differences' variance as the scale.
   */
  frameSteps?: boolean;
}

/** The key a term's target is fed under. */
export function targetName(t: LossTerm): string {
  return t.frameSteps ? `target:${t.output}:steps` : `target:${t.output}`;
}

/** Per-sample shape of what a term compares (one frame fewer for a `frameSteps` term). */
function comparedShape(t: LossTerm): number[] {
  return t.frameSteps ? [t.shape[0]! - 1, ...t.shape.slice(1)] : t.shape;
}

/** The differences x[f+1] − x[f] along axis 0 of a per-sample array of shape `shape`. */
export function frameSteps(x: Float32Array, shape: number[]): Float32Array {
  const per = shape.slice(1).reduce((a, d) => a * d, 1);
  const out = new Float32Array(x.length - per);
  for (let i = 0; i < out.length; i++) out[i] = x[i + per]! - x[i]!;
  return out;
}

/** What a term's targets compare against: the values, or their frame steps. */
function comparedTargets(t: LossTerm): Float32Array[] {
  return t.frameSteps ? t.targets.map((x) => frameSteps(x, t.shape)) : t.targets;
}

export interface PhaseSettings {
  steps: number;
  lr: number;
  weightDecay: number;
  batch: number;
  gradClip: number;
  seed: number;
  checkpointEvery: number;
  threads: number;
  device: 'cpu' | 'cuda';
}

/** Where a phase stands: what a checkpoint holds. */
export interface PhaseState {
  phase: 1 | 2;
  /** Steps done. */
  step: number;
  values: ParamMap;
  adam: AdamWState;
  /** Loss per step done. */
  curve: number[];
}

export interface PhaseRun {
  phase: 1 | 2;
  /** The forward model with parameters as inputs and a fixed batch (see buildStitchedLgm). */
  model: ModelProto;
  params: ParamInfo[];
  input: string;
  inputShape: number[];
  inputs: Float32Array[];
  terms: LossTerm[];
  settings: PhaseSettings;
  /** A checkpoint to continue from (same phase). */
  resume?: PhaseState;
  /** Called every `checkpointEvery` steps and at the end with the state to save. */
  checkpoint: (s: PhaseState) => void;
  progress: (msg: string) => void;
  signal?: AbortSignal;
}

/** Variance of all values of a set of samples (the scale of a relative MSE). */
export function variance(samples: Float32Array[]): number {
  let n = 0;
  let s = 0;
  let s2 = 0;
  for (const x of samples) {
    for (let i = 0; i < x.length; i++) {
      s += x[i]!;
      s2 += x[i]! * x[i]!;
    }
    n += x.length;
  }
  const m = s / Math.max(1, n);
  return Math.max(s2 / Math.max(1, n) - m * m, 1e-12);
}

/**
 * The training graph: the model's outputs matched to `target:<output>` inputs, loss
 * Σ weight·mean((y − t)²)/var(t), and its gradient w.r.t. every parameter.
 *
 * @example
 *   const { bytes, warnings } = lossGradientGraph(model, params, terms, 4);
 */
export function lossGradientGraph(
  model: ModelProto,
  params: ParamInfo[],
  terms: LossTerm[],
  batch: number,
): { bytes: Uint8Array; warnings: string[] } {
  const m: ModelProto = structuredClone(model);
  const g = GraphBuilder.extend(m);
  const parts: string[] = [];
  for (const t of terms) {
    const target = g.input(targetName(t), 'float32', [batch, ...comparedShape(t)]);
    const F = t.shape[0]!;
    const y = t.frameSteps
      ? g.op('Sub', [
          g.op('Slice', [t.output, g.ints([1]), g.ints([F]), g.ints([1])]),
          g.op('Slice', [t.output, g.ints([0]), g.ints([F - 1]), g.ints([1])]),
        ])
      : t.output;
    const d = g.op('Sub', [y, target]);
    const mse = g.op('ReduceMean', [g.op('Mul', [d, d])], { keepdims: 0 });
    parts.push(g.op('Mul', [mse, g.const([t.weight / variance(comparedTargets(t))])]));
  }
  const loss = parts.length === 1 ? parts[0]! : g.op('Sum', parts);
  m.graph!.output = [];
  g.output(loss, 'loss', 'float32', []);
  // A parameter no weighted output reads (a head whose weight is 0) gets a zero gradient, so
  // AdamW leaves it as it is; the autodiff says so in a warning.
  const grad = buildGradientGraph(m, { wrt: params.map((p) => p.name) });
  return { bytes: encodeModel(grad.model), warnings: grad.warnings };
}

/** `b` distinct sample indices of `n` for one step, from a seed per (phase, step). */
export function batchIndices(seed: number, phase: number, step: number, n: number, b: number): number[] {
  const rng = new Xoshiro128(splitSeed(seed, phase * 1_000_003 + step));
  const idx = Array.from({ length: n }, (_, i) => i);
  const k = Math.min(b, n);
  for (let i = 0; i < k; i++) {
    const j = i + (rng.nextUint32() % (n - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  // A batch larger than the data repeats samples (the graph's batch is fixed).
  return Array.from({ length: b }, (_, i) => idx[i % k]!);
}

/**
 * Run one phase from its start or from `resume`; returns the final state.
 *
 * @example
 *   const state = await runPhase(run);
 */
export async function runPhase(r: PhaseRun): Promise<PhaseState> {
  const o = r.settings;
  const n = r.inputs.length;
  if (n === 0) throw new InputError('--videos', 'no training videos');
  const { bytes, warnings } = lossGradientGraph(r.model, r.params, r.terms, o.batch);
  for (const w of warnings) r.progress(`warning: stitch phase ${r.phase}: ${w}`);
  const session = await ModelSession.open(
    bytes,
    gradientRuntime({ threads: o.threads, device: o.device }),
    `stitch phase ${r.phase}`,
  );
  const values: ParamMap =
    r.resume?.values ?? new Map(r.params.map((p) => [p.name, Float32Array.from(p.value)]));
  const state: PhaseState = r.resume ?? {
    phase: r.phase,
    step: 0,
    values,
    adam: adamwInit(values),
    curve: [],
  };
  const per = r.inputShape.reduce((a, d) => a * d, 1);
  const compared = r.terms.map((t) => [t, comparedTargets(t)] as const);
  const t0 = Date.now();
  try {
    while (state.step < o.steps) {
      if (r.signal?.aborted) throw interrupted(state);
      const idx = batchIndices(o.seed, r.phase, state.step, n, o.batch);
      const feeds: Record<string, Tensor> = { 'grad:loss': f32([], [1]) };
      feeds[r.input] = f32([o.batch, ...r.inputShape], gather(r.inputs, idx, per));
      for (const [t, targets] of compared) {
        const shape = comparedShape(t);
        const size = shape.reduce((a, d) => a * d, 1);
        feeds[targetName(t)] = f32([o.batch, ...shape], gather(targets, idx, size));
      }
      for (const p of r.params) feeds[p.name] = f32(p.shape, state.values.get(p.name)!);
      const out = await session.run(feeds);
      const loss = (out.loss!.data as Float32Array)[0]!;
      if (!Number.isFinite(loss))
        throw new RuntimeFailure(`stitch phase ${r.phase}: non-finite loss at step ${state.step}`);
      const grads: ParamMap = new Map(
        r.params.map((p) => [p.name, out[`grad:${p.name}`]!.data as Float32Array]),
      );
      clipGradNorm(grads, o.gradClip);
      adamwStep(state.values, grads, state.adam, {
        lr: warmupCosine(o.lr, state.step, o.steps, Math.max(1, Math.floor(o.steps / 10)), 0.1),
        weightDecay: o.weightDecay,
      });
      state.curve.push(loss);
      state.step++;
      if (state.step % 10 === 0 || state.step === o.steps) {
        const s = ((Date.now() - t0) / 1000).toFixed(0);
        r.progress(
          `stitch: phase ${r.phase} step ${state.step}/${o.steps} loss ${loss.toExponential(3)} (${s} s)`,
        );
      }
      if (state.step % o.checkpointEvery === 0 || state.step === o.steps) {
        r.checkpoint(state);
        if (r.signal?.aborted) throw interrupted(state);
      }
    }
  } finally {
    await session.release();
  }
  return state;
}

function interrupted(s: PhaseState): RuntimeFailure {
  return new RuntimeFailure(
    `stitch: interrupted in phase ${s.phase} at step ${s.step}; continue with --resume`,
  );
}

/** The samples at `idx`, concatenated. */
function gather(samples: Float32Array[], idx: number[], per: number): Float32Array {
  const out = new Float32Array(idx.length * per);
  idx.forEach((i, k) => {
    out.set(samples[i]!, k * per);
  });
  return out;
}
