/**
 * The toy's independent judge (`judge.onnx`): a geometry model with Φ's contract that shares no
 * weights and no architecture with Φ or the LGM stitched from it, so `eval` can check the
 * reward's geometry with a model the policy was never optimised against. Trained separately on
 * `world` ground truth (onnx/train-judge.ts), on sharp renders and on the analytic toy decoder's
 * frames alike.
 *
 * Convolutional, no attention:
 * - encoder, per frame: 3×3 convs (SiLU) with stride 2 from 64×64 down to the 8×8 geometry grid
 *   (16 → 32 → 32 → 64 channels, then two residual 3×3 blocks at 8×8) plus a learnt code per cell
 *   (zero padding alone tells a CNN little about where a cell sits).
 * - dense head: 1×1 convs → log-depth (depth = exp(· + log 3)) and confidence (1 + exp).
 * - pose network on consecutive frame pairs: the 16×16 encoder features of frames f−1 and f,
 *   stacked along channels → 3×3 convs (stride 2 to 8×8) → squeezed to a few channels and
 *   flattened (so it keeps where in the image each cell sits) → MLP → the relative step
 *   (Δt, a unit quaternion Δq starting at the identity). Steps are composed in-graph into
 *   cameras relative to frame 0: q_f = Δq_f ⊗ q_{f−1}, t_f = R(Δq_f)·t_{f−1} + Δt_f, q_0 = 1,
 *   t_0 = 0 — frame 0 is the world, exactly, and the jitter r_motion reads is what a pair sees.
 * - field of view per frame from the pooled 8×8 features (60° + a small offset).
 * World points come from depth and cameras in-graph (`worldPoints` of src/toy/nn.ts, as Φ does).
 *
 * @example
 *   const { model } = buildJudge({ weights: readWeights(JUDGE_WEIGHTS) });
 *   saveModel(model, 'onnx/fixtures/judge.onnx');
 */
import { GraphBuilder } from '../onnx/builder.js';
import {
  type BuiltModel,
  Net,
  normalizeQuaternion,
  quaternionProduct,
  quaternionToRotation,
  type ToyModelOptions,
  worldPoints,
} from './nn.js';
import { GEOMETRY, VIDEO } from './spaces.js';

export const JUDGE_SEED = 29;

/** Channels of the encoder stages at 32×32, 16×16 and 8×8, and of the pose network. */
const WIDTHS = { s32: 16, s16: 32, s8: 48, pose: 64 } as const;
/** Channels each pose cell keeps before flattening, and the pose MLP's width. */
const POSE_SQUEEZE = 8;
const POSE_HIDDEN = 128;
/** Typical toy depth: log-depth is predicted around log(3). */
const LOG_DEPTH_MEAN = Math.log(3);
/** A frame-to-frame step is a few centimetres and a degree or two: predicted in tenths. */
const STEP_SCALE = 0.1;
/** The field of view is predicted as a small offset from the toy cameras' 60°. */
const FOV_SCALE = 0.1;

/** x + conv2(silu(conv1(silu(x)))); conv2 starts small so the block begins near the identity. */
function resBlock(net: Net, x: string, name: string, ch: number): string {
  const a = net.conv(net.silu(x), `${name}.conv1`, ch, ch, { gain: Math.SQRT2 });
  return net.op('Add', [x, net.conv(net.silu(a), `${name}.conv2`, ch, ch, { gain: 0.1 })]);
}

/**
 * Build the judge: `frames` [B, 8, 3, 64, 64] in [0, 1] → `depth` [B, 8, 8, 8], `world_points`
 * [B, 8, 8, 8, 3], `confidence` [B, 8, 8, 8], `pose_enc` [B, 8, 9] (Φ's conventions).
 *
 * @example
 *   const { model, params } = buildJudge(); // seeded initial weights
 */
export function buildJudge(opts: ToyModelOptions = {}): BuiltModel {
  const { frames: F, height: H, width: W } = VIDEO;
  const { height: h, width: w } = GEOMETRY;
  const P = h * w;
  const B = opts.batch ?? 'B';
  const g = new GraphBuilder('toy_judge', 18);
  const net = new Net(g, {
    seed: opts.seed ?? JUDGE_SEED,
    weights: opts.weights,
    paramsAsInputs: opts.paramsAsInputs,
  });
  const frames = g.input('frames', 'float32', [B, F, 3, H, W]);

  // Encoder, every frame alone: [B·F, 3, 64, 64] → 16×16 features (the pose network's input) → 8×8.
  const pixels = net.reshape(net.scale(net.op('Sub', [frames, net.c([0.5])]), 4), [-1, 3, H, W]);
  let x = net.silu(net.conv(pixels, 'encoder.conv0', 3, WIDTHS.s32, { stride: 2 }));
  x = net.silu(net.conv(x, 'encoder.conv1', WIDTHS.s32, WIDTHS.s16, { stride: 2 }));
  const f16 = net.conv(x, 'encoder.conv2', WIDTHS.s16, WIDTHS.s16);
  x = net.conv(net.silu(f16), 'encoder.conv3', WIDTHS.s16, WIDTHS.s8, { stride: 2 });
  x = net.op('Add', [x, net.param('encoder.cell_code', [WIDTHS.s8, h, w], { kind: 'normal', std: 0.3 })]);
  x = resBlock(net, x, 'encoder.block0', WIDTHS.s8);
  const f8 = net.silu(resBlock(net, x, 'encoder.block1', WIDTHS.s8)); // [B·F, 64, 8, 8]

  // Dense head: log-depth and confidence logit per cell, as [B, F, P, 1] columns.
  const dense = net.conv(
    net.silu(net.conv(f8, 'dense_head.conv1', WIDTHS.s8, WIDTHS.s8, { k: 1 })),
    'dense_head.conv2',
    WIDTHS.s8,
    2,
    {
      k: 1,
      gain: 0.1,
    },
  );
  const cells = net.transpose(net.reshape(dense, [-1, F, 2, P]), [0, 1, 3, 2]);
  const depthCol = net.op('Exp', [net.op('Add', [net.slice(cells, 3, 0, 1), net.c([LOG_DEPTH_MEAN])])]);
  const depth = net.reshape(depthCol, [-1, F, h, w]);
  const confidence = net.reshape(net.op('Add', [net.op('Exp', [net.slice(cells, 3, 1, 2)]), net.c([1])]), [
    -1,
    F,
    h,
    w,
  ]);

  // Pose network on the F − 1 consecutive pairs (f − 1, f) of 16×16 features.
  const C16 = WIDTHS.s16;
  const seq = net.reshape(f16, [-1, F, C16, 2 * h, 2 * w]);
  const pairs = net.reshape(
    net.op('Concat', [net.slice(seq, 1, 0, F - 1), net.slice(seq, 1, 1, F)], { axis: 2 }),
    [-1, 2 * C16, 2 * h, 2 * w],
  );
  let y = net.silu(net.conv(pairs, 'pose_net.conv0', 2 * C16, WIDTHS.pose, { stride: 2 }));
  y = net.silu(net.conv(y, 'pose_net.conv1', WIDTHS.pose, WIDTHS.pose));
  y = net.conv(y, 'pose_net.squeeze', WIDTHS.pose, POSE_SQUEEZE, { k: 1 });
  const flat = net.reshape(y, [-1, F - 1, POSE_SQUEEZE * P]);
  const hid = net.gelu(
    net.linear(
      net.gelu(net.linear(flat, 'pose_net.fc1', POSE_SQUEEZE * P, POSE_HIDDEN)),
      'pose_net.fc2',
      POSE_HIDDEN,
      POSE_HIDDEN,
    ),
  );
  const step = net.linear(hid, 'pose_net.fc3', POSE_HIDDEN, 7, { std: 0.1 / Math.sqrt(POSE_HIDDEN) });
  const dt = net.scale(net.slice(step, 2, 0, 3), STEP_SCALE);
  const dq = normalizeQuaternion(
    net,
    net.op('Add', [net.scale(net.slice(step, 2, 3, 7), STEP_SCALE), net.c([0, 0, 0, 1], [4])]),
  );
  const { t, q } = composeSteps(net, dt, dq, F);

  // Field of view per frame from the frame's mean 8×8 features.
  const pooled = net.reshape(net.op('ReduceMean', [f8, net.i64([2, 3])], { keepdims: 0 }), [
    -1,
    F,
    WIDTHS.s8,
  ]);
  const fov = net.op('Add', [
    net.scale(
      net.linear(pooled, 'camera_head.fov', WIDTHS.s8, 2, { std: 0.1 / Math.sqrt(WIDTHS.s8) }),
      FOV_SCALE,
    ),
    net.c([VIDEO.fov, VIDEO.fov], [2]),
  ]);
  const poseEnc = net.op('Concat', [t, q, fov], { axis: 2 });
  const points = worldPoints(net, { depthCol, t, q, fov }, { frames: F, height: h, width: w });

  g.output(depth, 'depth', 'float32', [B, F, h, w]);
  g.output(points, 'world_points', 'float32', [B, F, h, w, 3]);
  g.output(confidence, 'confidence', 'float32', [B, F, h, w]);
  g.output(poseEnc, 'pose_enc', 'float32', [B, F, 9]);
  return { model: g.toModel('vggrpo toy fixtures'), params: net.params };
}

/**
 * Cameras [B, F, 3] / [B, F, 4] relative to frame 0 from the F − 1 steps (camera-from-world
 * composition, camera f from camera f − 1): q_f = Δq_f ⊗ q_{f−1}, t_f = R(Δq_f)·t_{f−1} + Δt_f.
 */
function composeSteps(net: Net, dt: string, dq: string, F: number): { t: string; q: string } {
  const dR = quaternionToRotation(net, dq, 2); // [B, F − 1, 3, 3]
  // frame 1 = the first step (frame 0 is the identity); zero-times-step keeps the batch shape
  const zero = (v: string) => net.scale(net.slice(v, 1, 0, 1), 0);
  const qs = [net.op('Add', [zero(dq), net.c([0, 0, 0, 1], [4])])];
  const ts = [zero(dt)];
  for (let f = 1; f < F; f++) {
    const r = net.slice(dR, 1, f - 1, f); // [B, 1, 3, 3]
    const prevT = net.op('Unsqueeze', [ts[f - 1]!, net.i64([2])]); // [B, 1, 1, 3]
    const turned = net.op('ReduceSum', [net.op('Mul', [r, prevT]), net.i64([3])], { keepdims: 0 });
    ts.push(net.op('Add', [turned, net.slice(dt, 1, f - 1, f)]));
    qs.push(quaternionProduct(net, net.slice(dq, 1, f - 1, f), qs[f - 1]!, 2));
  }
  return { t: net.op('Concat', ts, { axis: 1 }), q: net.op('Concat', qs, { axis: 1 }) };
}
