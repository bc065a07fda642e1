/**
 * One-off training of the toy VAE (src/toy/vae.ts) on RGB frames of training-split toy videos
 * (`sampleVideo(rng, 'train')`), with the project's own autodiff and AdamW in the manner of
 * onnx/pretrain.ts: the encoder and decoder in one graph with parameters as inputs, a loss appended
 * with the graph builder, `buildGradientGraph` for the gradients, AdamW for the update. Fixed seeds,
 * a fixed step count and one onnxruntime thread make it deterministic.
 *
 * Loss: mean squared reconstruction error (PSNR, the figure the VAE is judged by, is −10·log10 of
 * exactly this; L1 would trade PSNR for sharper edges) plus `latentWeight` · mean over channels of
 * (mean(z²) − 1)², which keeps each latent channel near unit scale during training. Afterwards the
 * per-channel latent mean and std over training videos become the `latent_norm.*` buffers, so the
 * encoder's latents are about zero-mean, unit-std per channel.
 *
 * Frames: a pool of `pool` rendered training videos, one replaced by a fresh video each step;
 * each step draws `batch` random frames from it (the model is per-frame).
 *
 * @example
 *   node --import tsx onnx/train-vae.ts                       # train (≈ 13–14 min, one thread), write, rebuild, PSNR
 *   node --import tsx onnx/train-vae.ts --eval-only           # held-out PSNR of the committed weights
 *   node --import tsx onnx/train-vae.ts --steps 20 --out /tmp/vae.safetensors
 */
import { parseArgs } from 'node:util';
import { InputError } from '../src/errors.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/model.js';
import { adamwInit, adamwStep, clipGradNorm, type ParamMap } from '../src/rl/adamw.js';
import { warmupCosine } from '../src/rl/lr-schedule.js';
import { ModelSession } from '../src/runtime/session.js';
import { writeSafetensors } from '../src/shards/safetensors.js';
import { f32, type Tensor } from '../src/shards/tensor.js';
import { Net } from '../src/toy/nn.js';
import { VIDEO } from '../src/toy/spaces.js';
import {
  buildLearnedVaeDecoder,
  buildVaeEncoder,
  decoderBody,
  encoderBody,
  LATENT_NORM,
} from '../src/toy/vae.js';
import { heldOutPsnr, latentStats, vaeModelsOf } from '../src/toy/vae-eval.js';
import { Rng, type Split, sampleVideo } from '../src/toy/videos.js';
import { buildFixtures, readWeights, VAE_WEIGHTS } from './build-fixtures.js';

const { frames: F, height: H, width: W } = VIDEO;
const FRAME = 3 * H * W;

export interface TrainVaeOptions {
  steps: number;
  /** Frames per step (a multiple of the 8 frames of one graph batch row). */
  batch: number;
  lr: number;
  seed: number;
  threads: number;
  /** Rendered training videos kept to draw frames from. */
  pool: number;
  latentWeight: number;
}

export const TRAIN_VAE_DEFAULTS: TrainVaeOptions = {
  steps: 2000,
  batch: 16,
  lr: 2e-3,
  seed: 0,
  threads: 1,
  pool: 96,
  latentWeight: 1e-3,
};

/**
 * Encoder + decoder with parameters as inputs, loss = mean((x̂ − x)²) + λ·mean_c((mean z_c²) − 1)²
 * on input `frames` [rows, 8, 3, 64, 64], and its gradient graph w.r.t. every trained parameter.
 *
 * @example
 *   const { bytes, params } = vaeTrainingGraph(2, 1e-3);
 */
export function vaeTrainingGraph(
  rows: number,
  latentWeight: number,
): { bytes: Uint8Array; params: { name: string; shape: number[]; value: Float32Array }[] } {
  const g = new GraphBuilder('toy_vae_train', 18);
  const net = new Net(g, { seed: 0, paramsAsInputs: true });
  const frames = g.input('frames', 'float32', [rows, F, 3, H, W]);
  const z = encoderBody(net, frames);
  const recon = decoderBody(net, z);
  const d = net.op('Sub', [recon, frames]);
  const mse = net.op('ReduceMean', [net.op('Mul', [d, d])], { keepdims: 0 });
  const z2 = net.op('ReduceMean', [net.op('Mul', [z, z]), net.i64([0, 2, 3, 4])], { keepdims: 0 });
  const dev = net.op('Sub', [z2, net.c([1])]);
  const reg = net.op('ReduceMean', [net.op('Mul', [dev, dev])], { keepdims: 0 });
  const loss = net.op('Add', [mse, net.scale(reg, latentWeight)]);
  g.output(loss, 'loss', 'float32', []);
  g.output(mse, 'mse', 'float32', []);
  const model = g.toModel('vggrpo toy training');
  const norm = new Set<string>(Object.values(LATENT_NORM));
  const params = net.params.filter((p) => !norm.has(p.name));
  const grad = buildGradientGraph(model, { wrt: params.map((p) => p.name) });
  if (grad.warnings.length) throw new Error(`autodiff warnings: ${grad.warnings.join('; ')}`);
  return { bytes: encodeModel(grad.model), params: net.params };
}

/**
 * Train from the seeded initialisation; returns every parameter by name (the `latent_norm.*`
 * buffers still the identity).
 *
 * @example
 *   const weights = await trainVae({ ...TRAIN_VAE_DEFAULTS, steps: 10 });
 */
export async function trainVae(
  o: TrainVaeOptions,
  log: (s: string) => void = () => {},
): Promise<Map<string, Float32Array>> {
  const rows = o.batch / F;
  const { bytes, params } = vaeTrainingGraph(rows, o.latentWeight);
  const session = await ModelSession.open(bytes, { threads: o.threads });
  const norm = new Set<string>(Object.values(LATENT_NORM));
  const trained = params.filter((p) => !norm.has(p.name));
  const values: ParamMap = new Map(params.map((p) => [p.name, Float32Array.from(p.value)]));
  const trainedValues: ParamMap = new Map(trained.map((p) => [p.name, values.get(p.name)!]));
  const state = adamwInit(trainedValues);
  const rng = new Rng(o.seed * 7 + 3);
  const pool: Float32Array[] = [];
  for (let i = 0; i < o.pool; i++) pool.push(sampleVideo(rng, 'train').frames);
  const warmup = Math.min(50, Math.floor(o.steps / 10));
  const t0 = Date.now();
  let ema = Number.NaN;
  for (let step = 0; step < o.steps; step++) {
    pool[step % o.pool] = sampleVideo(rng, 'train').frames;
    const x = new Float32Array(o.batch * FRAME);
    for (let b = 0; b < o.batch; b++) {
      const v = pool[rng.int(0, o.pool - 1)]!;
      const f = rng.int(0, F - 1);
      x.set(v.subarray(f * FRAME, (f + 1) * FRAME), b * FRAME);
    }
    const feeds: Record<string, Tensor> = { frames: f32([rows, F, 3, H, W], x), 'grad:loss': f32([], [1]) };
    feeds['grad:mse'] = f32([], [0]);
    for (const p of params) feeds[p.name] = f32(p.shape, values.get(p.name)!);
    const out = await session.run(feeds);
    const grads: ParamMap = new Map(
      trained.map((p) => [p.name, out[`grad:${p.name}`]!.data as Float32Array]),
    );
    const gnorm = clipGradNorm(grads, 1);
    const lr = warmupCosine(o.lr, step, o.steps, warmup, 0.05);
    adamwStep(trainedValues, grads, state, { lr, weightDecay: 0 });
    const mse = (out.mse!.data as Float32Array)[0]!;
    ema = Number.isNaN(ema) ? mse : 0.98 * ema + 0.02 * mse;
    if (step % 25 === 0 || step === o.steps - 1) {
      log(
        `step ${step} mse ${mse.toFixed(5)} ema-psnr ${(-10 * Math.log10(ema)).toFixed(2)} dB |g| ${gnorm.toFixed(3)} lr ${lr.toExponential(2)} ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
  }
  await session.release();
  return values;
}

/** Held-out or training videos, deterministic in `seed`. */
export function toyVideoFrames(split: Split, count: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => sampleVideo(rng, split).frames);
}

function positive(name: string, v: string | undefined, fallback: number, integer = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0) || (integer && !Number.isInteger(n))) {
    throw new InputError(`--${name}`, `must be a positive ${integer ? 'integer' : 'number'}, got '${v}'`);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      threads: { type: 'string' },
      'latent-weight': { type: 'string' },
      out: { type: 'string' },
      'eval-only': { type: 'boolean', default: false },
    },
  });
  const d = TRAIN_VAE_DEFAULTS;
  const o: TrainVaeOptions = {
    ...d,
    steps: positive('steps', values.steps, d.steps, true),
    batch: positive('batch', values.batch, d.batch, true),
    lr: positive('lr', values.lr, d.lr),
    threads: positive('threads', values.threads, d.threads, true),
    latentWeight: positive('latent-weight', values['latent-weight'], d.latentWeight),
  };
  if (o.batch % F !== 0) throw new InputError('--batch', `must be a multiple of ${F}, got ${o.batch}`);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const out = values.out ?? VAE_WEIGHTS;
  let weights: Map<string, Float32Array>;
  if (values['eval-only']) {
    const w = readWeights(out);
    if (!w) throw new InputError('--out', `no weight file at ${out}`);
    weights = w;
  } else {
    const t0 = Date.now();
    const raw = await trainVae(o, log);
    const stats = await latentStats(vaeModelsOf(raw).encoder, toyVideoFrames('train', 64, 11), o.threads);
    log(`latent mean ${fmt(stats.mean)}\nlatent std  ${fmt(stats.std)}`);
    weights = new Map(raw);
    weights.set(LATENT_NORM.mean, Float32Array.from(stats.mean));
    weights.set(LATENT_NORM.std, Float32Array.from(stats.std));
    const shapes = new Map(vaeParamShapes());
    const tensors = new Map([...weights].map(([k, v]) => [k, f32(shapes.get(k) ?? [v.length], v)]));
    writeSafetensors(out, tensors, { 'vggrpo.kind': 'toy-vae-weights', 'vggrpo.train': JSON.stringify(o) });
    log(`wrote ${out} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    if (out === VAE_WEIGHTS) for (const p of Object.values(buildFixtures())) log(`rebuilt ${p}`);
  }
  const psnr = await heldOutPsnr(vaeModelsOf(weights), toyVideoFrames('heldout', 32, 5), o.threads);
  log(`held-out PSNR ${psnr.toFixed(2)} dB over 32 videos`);
}

/** Every VAE parameter's shape by name (the weight file keeps them). */
function vaeParamShapes(): [string, number[]][] {
  return [...buildVaeEncoder().params, ...buildLearnedVaeDecoder().params].map((p) => [p.name, p.shape]);
}

const fmt = (xs: ArrayLike<number>) => Array.from(xs, (x) => x.toFixed(3)).join(' ');

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    if (err instanceof InputError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
