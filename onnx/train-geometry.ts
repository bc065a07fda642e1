/**
 * One-off training of the toy RGB geometry model Φ (src/toy/geometry-model.ts) on `world` ground
 * truth with the project's own autodiff and AdamW, as onnx/pretrain.ts trains the denoiser: the
 * model graph (parameters as inputs) gets its loss appended with the graph builder,
 * `buildGradientGraph` differentiates it, AdamW (src/rl/adamw.ts) steps. Deterministic: fixed
 * seeds, fixed step count, one onnxruntime thread by default.
 *
 * Data: a pool of `sampleVideo(rng, 'train')` videos (src/toy/videos.ts; held-out scenes never
 * appear), rendered once and drawn with replacement, since rendering costs as much as a step.
 * Targets are expressed in the first camera's frame (the model contract): R_rel = R_f R_0ᵀ,
 * t_rel = t_f − R_rel t_0 (quaternion with w ≥ 0: the toy paths turn less than 180°), world
 * points R_0 X + t_0, scene flow R_0 · flow. Loss (VGGRPO.md's Φ is VGGT-trained, so VGGT's):
 *   depth   mean(c·|log d̂ − log d| − α·log c)   (aleatoric confidence c = 1 + exp(·))
 *   camera  w_cam·(mean|t̂ − t| + mean|q̂ − q|) + mean|fov − 60°|   (the motion reward needs
 *           sub-degree rotations, so it is weighted up)
 *   flow    w_flow·mean|f̂ − f|,  points  w_pts·mean|X̂ − X|.
 *
 * Writes onnx/fixtures/geometry-weights.safetensors, rebuilds the fixtures, and prints Φ's fidelity
 * on 48 held-out groups of 4 (src/metrics/fidelity.ts).
 *
 * @example
 *   node --import tsx onnx/train-geometry.ts                         # ≈ 19 min (1148 s), one thread
 *   node --import tsx onnx/train-geometry.ts --steps 20 --videos 40 --out /tmp/g.safetensors
 *   node --import tsx onnx/train-geometry.ts --eval-only          # fidelity of the committed weights
 */
import { parseArgs } from 'node:util';
import { matMulT3 } from '../src/geometry/mat3.js';
import { matrixToQuat } from '../src/geometry/so3.js';
import { rgb8ToUnitFrames } from '../src/media/vae.js';
import { type FidelityReport, measureFidelity, sessionPredictor } from '../src/metrics/fidelity.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { adamwInit, adamwStep, clipGradNorm, type ParamMap } from '../src/rl/adamw.js';
import { warmupCosine } from '../src/rl/lr-schedule.js';
import { ModelSession } from '../src/runtime/session.js';
import { writeSafetensors } from '../src/shards/safetensors.js';
import { f32, type Tensor } from '../src/shards/tensor.js';
import { buildGeometryModel } from '../src/toy/geometry-model.js';
import type { ParamInfo } from '../src/toy/nn.js';
import { GEOMETRY, VIDEO } from '../src/toy/spaces.js';
import { heldOutGroups, Rng, sampleVideo, type ToyVideo } from '../src/toy/videos.js';
import { buildFixtures, GEOMETRY_WEIGHTS, readWeights } from './build-fixtures.js';

const { frames: F, height: H, width: W } = VIDEO;
const { height: h, width: w } = GEOMETRY;
const HW = h * w;

export interface GeometryTrainOptions {
  steps: number;
  batch: number;
  /** Training videos rendered into the pool. */
  videos: number;
  lr: number;
  seed: number;
  threads: number;
  /** α of the confidence term c·|err| − α·log c. */
  alpha: number;
  cameraWeight: number;
  flowWeight: number;
  pointsWeight: number;
  /** Weight of the L1 of frame-to-frame steps of t and q (what r_motion reads); 0 = off. */
  stepWeight: number;
}

export const GEOMETRY_TRAIN_DEFAULTS: GeometryTrainOptions = {
  steps: 3500,
  batch: 8,
  videos: 4000,
  lr: 2e-3,
  seed: 0,
  threads: 1,
  alpha: 0.1,
  cameraWeight: 10,
  flowWeight: 1,
  pointsWeight: 0.5,
  stepWeight: 0,
};

/** One training video kept in the pool: 8-bit RGB and the targets in the first camera's frame. */
export interface GeometryTargets {
  rgb: Uint8Array;
  logDepth: Float32Array;
  translation: Float32Array;
  quaternion: Float32Array;
  points: Float32Array;
  flow: Float32Array;
}

/**
 * Targets of one video in the model contract's frame (the first camera's).
 *
 * @example
 *   const t = geometryTargets(sampleVideo(new Rng(0), 'train'));
 *   t.quaternion.subarray(0, 4); // ≈ [0, 0, 0, 1]
 */
export function geometryTargets(v: ToyVideo): GeometryTargets {
  const g = v.geometry;
  const ext = g.extrinsics;
  const r0 = new Float64Array(9);
  const t0 = new Float64Array(3);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) r0[3 * r + c] = ext[4 * r + c]!;
    t0[r] = ext[4 * r + 3]!;
  }
  const translation = new Float32Array(F * 3);
  const quaternion = new Float32Array(F * 4);
  const rf = new Float64Array(9);
  const rel = new Float64Array(9);
  for (let f = 0; f < F; f++) {
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) rf[3 * r + c] = ext[12 * f + 4 * r + c]!;
    matMulT3(rf, r0, rel);
    for (let r = 0; r < 3; r++) {
      let s = ext[12 * f + 4 * r + 3]!;
      for (let c = 0; c < 3; c++) s -= rel[3 * r + c]! * t0[c]!;
      translation[3 * f + r] = s;
    }
    const q = matrixToQuat(rel);
    const sign = q[3]! < 0 ? -1 : 1;
    for (let k = 0; k < 4; k++) quaternion[4 * f + k] = sign * q[k]!;
  }
  const n = F * HW;
  const logDepth = Float32Array.from(g.depth, Math.log);
  const points = new Float32Array(n * 3);
  const flow = new Float32Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let r = 0; r < 3; r++) {
      let x = t0[r]!;
      let fl = 0;
      for (let c = 0; c < 3; c++) {
        x += r0[3 * r + c]! * g.points[3 * p + c]!;
        fl += r0[3 * r + c]! * g.sceneFlow[3 * p + c]!;
      }
      points[3 * p + r] = x;
      flow[3 * p + r] = fl;
    }
  }
  return { rgb: v.video.rgb, logDepth, translation, quaternion, points, flow };
}

/** A geometry model's builder (Φ, the judge): Φ's outputs, `scene_flow` optional. */
export type GeometryModelBuilder = (o: { paramsAsInputs: boolean; batch: number }) => {
  model: ModelProto;
  params: ParamInfo[];
};

/**
 * The model (Φ by default) with parameters as inputs, its loss against target inputs, and the
 * gradient graph. A model without `scene_flow` gets no flow term (and no `loss_flow` output).
 */
export function trainingGraph(
  batch: number,
  o: GeometryTrainOptions,
  build: GeometryModelBuilder = buildGeometryModel,
): { bytes: Uint8Array; params: ParamInfo[]; hasFlow: boolean } {
  const { model, params } = build({ paramsAsInputs: true, batch });
  const hasFlow = model.graph!.output!.some((v) => v.name === 'scene_flow');
  const g = GraphBuilder.extend(model);
  const c = (v: number) => g.const([v], 'float32');
  const mean = (v: string) => g.op('ReduceMean', [v], { keepdims: 0 });
  const l1 = (a: string, b: string) => mean(g.op('Abs', [g.op('Sub', [a, b])]));
  const tLogDepth = g.input('target_log_depth', 'float32', [batch, F, h, w]);
  const tT = g.input('target_translation', 'float32', [batch, F, 3]);
  const tQ = g.input('target_quaternion', 'float32', [batch, F, 4]);
  const tPoints = g.input('target_points', 'float32', [batch, F, h, w, 3]);

  const err = g.op('Abs', [g.op('Sub', [g.op('Log', ['depth']), tLogDepth])]);
  const lossDepth = mean(
    g.op('Sub', [g.op('Mul', ['confidence', err]), g.op('Mul', [g.op('Log', ['confidence']), c(o.alpha)])]),
  );
  const slice = (start: number, end: number) =>
    g.op('Slice', ['pose_enc', g.ints([start]), g.ints([end]), g.ints([2])]);
  const pt = slice(0, 3);
  const pq = slice(3, 7);
  const pfov = slice(7, 9);
  const lossCameraTerms = [
    g.op('Mul', [g.op('Add', [l1(pt, tT), l1(pq, tQ)]), c(o.cameraWeight)]),
    mean(g.op('Abs', [g.op('Sub', [pfov, c(VIDEO.fov)])])),
  ];
  if (o.stepWeight > 0) {
    const frameSlice = (v: string, start: number, end: number) =>
      g.op('Slice', [v, g.ints([start]), g.ints([end]), g.ints([1])]);
    const steps = (v: string) => g.op('Sub', [frameSlice(v, 1, F), frameSlice(v, 0, F - 1)]);
    const stepLoss = g.op('Add', [l1(steps(pt), steps(tT)), l1(steps(pq), steps(tQ))]);
    lossCameraTerms.push(g.op('Mul', [stepLoss, c(o.stepWeight)]));
  }
  const lossCamera = g.op('Sum', lossCameraTerms);
  const lossFlow = hasFlow
    ? g.op('Mul', [l1('scene_flow', g.input('target_flow', 'float32', [batch, F, h, w, 3])), c(o.flowWeight)])
    : undefined;
  const lossPoints = g.op('Mul', [l1('world_points', tPoints), c(o.pointsWeight)]);
  const loss = g.op(
    'Sum',
    lossFlow ? [lossDepth, lossCamera, lossFlow, lossPoints] : [lossDepth, lossCamera, lossPoints],
  );
  model.graph!.output = [];
  g.output(loss, 'loss', 'float32', []);
  g.output(lossDepth, 'loss_depth', 'float32', []);
  g.output(lossCamera, 'loss_camera', 'float32', []);
  if (lossFlow) g.output(lossFlow, 'loss_flow', 'float32', []);
  const grad = buildGradientGraph(model, { wrt: params.map((p) => p.name) });
  if (grad.warnings.length) throw new Error(`autodiff warnings: ${grad.warnings.join('; ')}`);
  return { bytes: encodeModel(grad.model), params, hasFlow };
}

/** RGB [F, H, W, 3] bytes → frames [F, 3, H, W] in [0, 1] written at `out[offset…]`. */
export function writeFrames(rgb: Uint8Array, out: Float32Array, offset: number): void {
  out.set(rgb8ToUnitFrames(rgb, F, H, W), offset);
}

/**
 * The loss's target inputs and output cotangents for a batch of targets (scene flow only when
 * the model predicts it): what the training graph takes besides its frames and parameters.
 *
 * @example
 *   const feeds = { frames, ...targetFeeds([geometryTargets(v)], true) };
 */
export function targetFeeds(batch: readonly GeometryTargets[], hasFlow: boolean): Record<string, Tensor> {
  const B = batch.length;
  const cat = (pick: (t: GeometryTargets) => Float32Array, per: number) => {
    const out = new Float32Array(B * per);
    for (const [b, t] of batch.entries()) out.set(pick(t), b * per);
    return out;
  };
  const feeds: Record<string, Tensor> = {
    target_log_depth: f32(
      [B, F, h, w],
      cat((t) => t.logDepth, F * HW),
    ),
    target_translation: f32(
      [B, F, 3],
      cat((t) => t.translation, F * 3),
    ),
    target_quaternion: f32(
      [B, F, 4],
      cat((t) => t.quaternion, F * 4),
    ),
    target_points: f32(
      [B, F, h, w, 3],
      cat((t) => t.points, F * HW * 3),
    ),
    'grad:loss': f32([], [1]),
    'grad:loss_depth': f32([], [0]),
    'grad:loss_camera': f32([], [0]),
  };
  if (hasFlow) {
    feeds.target_flow = f32(
      [B, F, h, w, 3],
      cat((t) => t.flow, F * HW * 3),
    );
    feeds['grad:loss_flow'] = f32([], [0]);
  }
  return feeds;
}

/**
 * What a trainer varies: the model, what a pool entry keeps of a training video, and the frames
 * batch slot b is fed from an entry (Φ: the sharp render; the judge: sharp or decoded).
 */
export interface GeometryTrainer<E extends GeometryTargets> {
  build: GeometryModelBuilder;
  entry: (v: ToyVideo) => E | Promise<E>;
  frames: (e: E, slot: number, out: Float32Array, offset: number) => void;
}

/** Φ's trainer: its builder, the targets of each video, the sharp 64×64 render. */
export const PHI_TRAINER: GeometryTrainer<GeometryTargets> = {
  build: buildGeometryModel,
  entry: geometryTargets,
  frames: (e, _slot, out, offset) => writeFrames(e.rgb, out, offset),
};

/**
 * Train Φ from its seeded initialisation; returns the trained parameters by name.
 *
 * @example
 *   const weights = await trainGeometry({ ...GEOMETRY_TRAIN_DEFAULTS, steps: 10, videos: 16 });
 */
export function trainGeometry(
  o: GeometryTrainOptions,
  log: (s: string) => void = () => {},
): Promise<Map<string, Float32Array>> {
  return trainGeometryModel(PHI_TRAINER, o, log);
}

/**
 * Train a geometry model from its seeded initialisation on a pool of `sampleVideo(rng, 'train')`
 * videos with the project's autodiff and AdamW; returns the trained parameters by name.
 *
 * @example
 *   const weights = await trainGeometryModel(PHI_TRAINER, { ...GEOMETRY_TRAIN_DEFAULTS, steps: 10, videos: 16 });
 */
export async function trainGeometryModel<E extends GeometryTargets>(
  trainer: GeometryTrainer<E>,
  o: GeometryTrainOptions,
  log: (s: string) => void = () => {},
): Promise<Map<string, Float32Array>> {
  const t0 = Date.now();
  const rng = new Rng(o.seed * 7 + 3);
  const pool: E[] = [];
  for (let i = 0; i < o.videos; i++) pool.push(await trainer.entry(sampleVideo(rng, 'train')));
  log(`rendered ${o.videos} training videos in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const { bytes, params, hasFlow } = trainingGraph(o.batch, o, trainer.build);
  const session = await ModelSession.open(bytes, { threads: o.threads });
  const values: ParamMap = new Map(params.map((p) => [p.name, Float32Array.from(p.value)]));
  const state = adamwInit(values);
  const B = o.batch;
  const warmup = Math.min(50, Math.floor(o.steps / 10));
  let ema = Number.NaN;
  const frames = new Float32Array(B * F * 3 * H * W);
  for (let step = 0; step < o.steps; step++) {
    const batch: E[] = [];
    for (let b = 0; b < B; b++) {
      const v = pool[rng.int(0, pool.length - 1)]!;
      trainer.frames(v, b, frames, b * F * 3 * H * W);
      batch.push(v);
    }
    const feeds: Record<string, Tensor> = {
      frames: f32([B, F, 3, H, W], frames),
      ...targetFeeds(batch, hasFlow),
    };
    for (const p of params) feeds[p.name] = f32(p.shape, values.get(p.name)!);
    const out = await session.run(feeds);
    const grads: ParamMap = new Map(params.map((p) => [p.name, out[`grad:${p.name}`]!.data as Float32Array]));
    const gnorm = clipGradNorm(grads, 1);
    const lr = warmupCosine(o.lr, step, o.steps, warmup, 0.02);
    adamwStep(values, grads, state, { lr, weightDecay: 0 });
    const scalar = (k: string) => (out[k]!.data as Float32Array)[0]!;
    const loss = scalar('loss');
    ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss;
    if (step % 25 === 0 || step === o.steps - 1) {
      const flowPart = hasFlow ? ` flow ${scalar('loss_flow').toFixed(4)}` : '';
      log(
        `step ${step} loss ${loss.toFixed(4)} ema ${ema.toFixed(4)} depth ${scalar('loss_depth').toFixed(4)} camera ${scalar('loss_camera').toFixed(4)}${flowPart} |g| ${gnorm.toFixed(3)} lr ${lr.toExponential(2)} ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
  }
  await session.release();
  return values;
}

/**
 * Fidelity of Φ with `weights` on held-out groups (src/metrics/fidelity.ts).
 *
 * @example
 *   const report = await evaluateGeometry(weights, 48, 4);
 */
export async function evaluateGeometry(
  weights: ReadonlyMap<string, Float32Array>,
  groups = 48,
  size = 4,
  threads = 1,
): Promise<FidelityReport> {
  const s = await ModelSession.open(encodeModel(buildGeometryModel({ weights }).model), { threads });
  try {
    return await measureFidelity(sessionPredictor(s), heldOutGroups(groups, size));
  } finally {
    await s.release();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      batch: { type: 'string' },
      videos: { type: 'string' },
      lr: { type: 'string' },
      threads: { type: 'string' },
      'camera-weight': { type: 'string' },
      'step-weight': { type: 'string' },
      out: { type: 'string' },
      'eval-only': { type: 'boolean', default: false },
      'no-eval': { type: 'boolean', default: false },
    },
  });
  const num = (k: keyof typeof values, key: keyof GeometryTrainOptions) =>
    values[k] !== undefined ? { [key]: Number(values[k]) } : {};
  const o: GeometryTrainOptions = {
    ...GEOMETRY_TRAIN_DEFAULTS,
    ...num('steps', 'steps'),
    ...num('batch', 'batch'),
    ...num('videos', 'videos'),
    ...num('lr', 'lr'),
    ...num('threads', 'threads'),
    ...num('camera-weight', 'cameraWeight'),
    ...num('step-weight', 'stepWeight'),
  };
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const out = (values.out as string | undefined) ?? GEOMETRY_WEIGHTS;
  let weights: Map<string, Float32Array>;
  if (values['eval-only']) {
    weights = readWeights(out) ?? new Map();
  } else {
    const t0 = Date.now();
    weights = await trainGeometry(o, log);
    const tensors = new Map<string, Tensor>();
    for (const p of buildGeometryModel().params) tensors.set(p.name, f32(p.shape, weights.get(p.name)!));
    writeSafetensors(out, tensors, {
      'vggrpo.kind': 'toy-geometry-weights',
      'vggrpo.train': JSON.stringify(o),
    });
    log(`wrote ${out} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    if (out === GEOMETRY_WEIGHTS) for (const p of Object.values(buildFixtures())) log(`rebuilt ${p}`);
  }
  if (values['no-eval']) return;
  const report = await evaluateGeometry(weights, 48, 4, o.threads);
  const fmt = (x: object) => JSON.stringify(x, (_, v) => (typeof v === 'number' ? +v.toFixed(4) : v));
  log(`held-out fidelity (48 groups of 4): ${fmt(report.overall)}`);
  for (const [f, x] of Object.entries(report.perFamily)) log(`  ${f}: ${fmt(x)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
