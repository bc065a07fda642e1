/**
 * The toy RGB geometry foundation model Φ (`geometry_rgb.onnx`): a tiny VGGT-shaped transformer
 * trained on `world` ground truth (onnx/train-geometry.ts). Frames [B, 8, 3, 64, 64] → depth,
 * world points, confidence, VGGT pose encoding and scene flow at the geometry resolution 8×8.
 *
 * It is a stack of named blocks so a stitch point can be named (docs/METHOD.md, the LGM):
 * - `tokenizer.output` [B, F·64, D]: an 8×8 stride-8 patchify conv per frame (64 tokens a frame,
 *   frame-major, row-major in the patch grid) plus a learnt code per patch position and per frame;
 *   the first frame's code is what marks the reference camera, as VGGT's camera token does.
 * - `blocks.N.output` [B, F·64, D]: pre-norm transformer blocks alternating frame-local attention
 *   (tokens of one frame) and global attention (all tokens of the clip), VGGT's alternating design.
 * - heads on the last block: per token an MLP gives log-depth (depth = exp, positive), confidence
 *   (1 + exp, VGGT's form) and scene flow; per frame the tokens, squeezed to a few channels and
 *   flattened so the head keeps where in the image each one sits, go through an MLP (with the
 *   first frame's tokens added in) to t, a normalised quaternion (x, y, z, w) and the field of
 *   view. World points are computed in-graph from depth and cameras, X = Rᵀ(d·K⁻¹[u, v, 1] − t)
 *   with K from the predicted field of view (pixel (i, j) at u = j, v = i, principal point at the
 *   centre, as src/world/render.ts draws), so points, depth and cameras always agree.
 *
 * Contract: cameras are camera-from-world with the world frame = the first frame's camera (the
 * first pose ≈ identity), metric toy units; scene flow is the world-frame displacement to the
 * next frame.
 *
 * @example
 *   const { model } = buildGeometryModel({ weights });
 *   saveModel(model, 'onnx/fixtures/geometry_rgb.onnx');
 */
import { GraphBuilder } from '../onnx/builder.js';
import { type BuiltModel, Net, normalizeQuaternion, type ToyModelOptions, worldPoints } from './nn.js';
import { GEOMETRY, VIDEO } from './spaces.js';

export interface GeometryShape {
  /** Token width D. */
  dim: number;
  heads: number;
  /** Transformer blocks; even blocks attend within a frame, odd ones over the clip. */
  layers: number;
  /** Hidden width of each block's MLP. */
  mlpDim: number;
  /** Channels each token keeps for the camera head (flattened per frame). */
  cameraChannels: number;
  /** Hidden width of the camera MLP. */
  cameraHidden: number;
}

export const GEOMETRY_SHAPE: GeometryShape = {
  dim: 48,
  heads: 4,
  layers: 4,
  mlpDim: 96,
  cameraChannels: 8,
  cameraHidden: 128,
};

export const GEOMETRY_SEED = 13;

/** Patch size of the tokeniser: 64×64 frames → 8×8 tokens, one per geometry cell. */
export const PATCH = VIDEO.height / GEOMETRY.height;

/** Tokens per frame. */
export const TOKENS_PER_FRAME = GEOMETRY.height * GEOMETRY.width;

/** The stitch-point tensor names: `tokenizer.output`, then `blocks.N.output`. */
export function blockOutputNames(layers = GEOMETRY_SHAPE.layers): string[] {
  return ['tokenizer.output', ...Array.from({ length: layers }, (_, l) => `blocks.${l}.output`)];
}

/** Typical toy depth: log-depth is predicted around log(3). */
const LOG_DEPTH_MEAN = Math.log(3);
/** Scene flow per frame is a few centimetres: the head predicts it in tenths. */
const FLOW_SCALE = 0.1;
/** The field of view is predicted as a small offset from the toy cameras' 60°. */
const FOV_SCALE = 0.1;

export interface GeometryModelOptions extends ToyModelOptions {
  shape?: GeometryShape;
}

/**
 * Build Φ: `frames` [B, 8, 3, 64, 64] → `depth` [B, 8, 8, 8], `world_points` [B, 8, 8, 8, 3],
 * `confidence` [B, 8, 8, 8], `pose_enc` [B, 8, 9], `scene_flow` [B, 8, 8, 8, 3].
 *
 * @example
 *   const { model, params } = buildGeometryModel(); // seeded initial weights
 */
export function buildGeometryModel(opts: GeometryModelOptions = {}): BuiltModel {
  const S = opts.shape ?? GEOMETRY_SHAPE;
  const { frames: F, height: H, width: W } = VIDEO;
  const { height: h, width: w } = GEOMETRY;
  const P = TOKENS_PER_FRAME;
  const N = F * P;
  const D = S.dim;
  const hd = D / S.heads;
  const B = opts.batch ?? 'B';
  const g = new GraphBuilder('toy_geometry_rgb', 18);
  const net = new Net(g, {
    seed: opts.seed ?? GEOMETRY_SEED,
    weights: opts.weights,
    paramsAsInputs: opts.paramsAsInputs,
  });
  const frames = g.input('frames', 'float32', [B, F, 3, H, W]);
  const named = (type: string, inputs: string[], name: string) => g.op(type, inputs, {}, { outputs: [name] });

  // Tokeniser: centre the [0, 1] pixels, patchify each frame, add position and frame codes.
  const pixels = net.reshape(net.scale(net.op('Sub', [frames, net.c([0.5])]), 4), [-1, 3, H, W]);
  const pw = net.param('tokenizer.patch_embed.weight', [D, 3, PATCH, PATCH], {
    kind: 'normal',
    std: 1 / Math.sqrt(3 * PATCH * PATCH),
  });
  const pb = net.param('tokenizer.patch_embed.bias', [D], { kind: 'zeros' });
  const patches = net.op('Conv', [pixels, pw, pb], { kernel_shape: [PATCH, PATCH], strides: [PATCH, PATCH] });
  let x = net.transpose(net.reshape(patches, [-1, F, D, P]), [0, 1, 3, 2]);
  const posCode = net.param('tokenizer.position_embed', [P, D], { kind: 'normal', std: 0.3 });
  const frameCode = net.param('tokenizer.frame_embed', [F, 1, D], { kind: 'normal', std: 0.3 });
  x = net.op('Add', [net.op('Add', [x, posCode]), frameCode]);
  x = named('Reshape', [x, net.i64([-1, N, D])], 'tokenizer.output');

  const attention = (name: string, v: string, n: number) => {
    const split = (t: string) => net.transpose(net.reshape(t, [0, n, S.heads, hd]), [0, 2, 1, 3]);
    const q = split(net.scale(net.linear(v, `${name}.q`, D, D), 1 / Math.sqrt(hd)));
    const k = net.transpose(net.reshape(net.linear(v, `${name}.k`, D, D), [0, n, S.heads, hd]), [0, 2, 3, 1]);
    const val = split(net.linear(v, `${name}.v`, D, D));
    const p = net.op('Softmax', [net.op('MatMul', [q, k])], { axis: -1 });
    const o = net.reshape(net.transpose(net.op('MatMul', [p, val]), [0, 2, 1, 3]), [0, n, D]);
    return net.linear(o, `${name}.proj`, D, D, { std: 0.5 / Math.sqrt(D) });
  };
  for (let l = 0; l < S.layers; l++) {
    const p = `blocks.${l}`;
    const local = l % 2 === 0;
    // Frame-local attention runs the frames as a batch of 64-token sequences.
    const seq = local ? net.reshape(x, [-1, P, D]) : x;
    const a = attention(`${p}.attn`, net.layerNorm(seq, D, `${p}.norm1`), local ? P : N);
    x = net.op('Add', [x, local ? net.reshape(a, [-1, N, D]) : a]);
    const m = net.linear(
      net.gelu(net.linear(net.layerNorm(x, D, `${p}.norm2`), `${p}.mlp.fc1`, D, S.mlpDim)),
      `${p}.mlp.fc2`,
      S.mlpDim,
      D,
      { std: 0.5 / Math.sqrt(S.mlpDim) },
    );
    x = named('Add', [x, m], `${p}.output`);
  }

  const y = net.layerNorm(x, D, 'head_norm');

  // Dense head: log-depth, confidence logit, scene flow per token.
  const dense = net.linear(net.gelu(net.linear(y, 'dense_head.fc1', D, D)), 'dense_head.fc2', D, 5, {
    std: 0.1 / Math.sqrt(D),
  });
  // Slices, not one Split: the autodiff's Split rule concatenates cotangents whose shapes it may
  // not know (an unbroadcast Expand), which mis-sizes the bias gradient behind it.
  const denseCells = net.reshape(dense, [-1, F, P, 5]);
  const dRaw = net.slice(denseCells, 3, 0, 1);
  const cRaw = net.slice(denseCells, 3, 1, 2);
  const fRaw = net.slice(denseCells, 3, 2, 5);
  const depthCol = net.op('Exp', [net.op('Add', [dRaw, net.c([LOG_DEPTH_MEAN])])]); // [B, F, P, 1]
  const depth = net.reshape(depthCol, [-1, F, h, w]);
  const confidence = net.reshape(net.op('Add', [net.op('Exp', [cRaw]), net.c([1])]), [-1, F, h, w]);
  const flow = net.reshape(net.scale(fRaw, FLOW_SCALE), [-1, F, h, w, 3]);

  // Camera head: per-frame flattened squeezed tokens (+ the reference frame's) → MLP → 9 numbers.
  const C = S.cameraChannels;
  const squeezed = net.reshape(net.linear(y, 'camera_head.reduce', D, C), [-1, F, P * C]);
  const ref = net.slice(squeezed, 1, 0, 1);
  const h0 = net.op('Add', [
    net.linear(squeezed, 'camera_head.fc1', P * C, S.cameraHidden),
    net.linear(ref, 'camera_head.ref', P * C, S.cameraHidden, { bias: false }),
  ]);
  const h1 = net.gelu(net.linear(net.gelu(h0), 'camera_head.fc2', S.cameraHidden, S.cameraHidden));
  const cam = net.linear(h1, 'camera_head.fc3', S.cameraHidden, 9, { std: 0.1 / Math.sqrt(S.cameraHidden) });
  const t = net.slice(cam, 2, 0, 3);
  const qOff = net.slice(cam, 2, 3, 7);
  const fovOff = net.slice(cam, 2, 7, 9);
  // Start at the identity rotation; normalise in-graph so the output is a unit quaternion.
  const qRaw = net.op('Add', [qOff, net.c([0, 0, 0, 1], [4])]);
  const q = normalizeQuaternion(net, qRaw);
  const fov = net.op('Add', [net.scale(fovOff, FOV_SCALE), net.c([VIDEO.fov, VIDEO.fov], [2])]);
  const poseEnc = net.op('Concat', [t, q, fov], { axis: 2 });

  // World points from depth and cameras, so they always agree.
  const points = worldPoints(net, { depthCol, t, q, fov }, { frames: F, height: h, width: w });

  g.output(depth, 'depth', 'float32', [B, F, h, w]);
  g.output(points, 'world_points', 'float32', [B, F, h, w, 3]);
  g.output(confidence, 'confidence', 'float32', [B, F, h, w]);
  g.output(poseEnc, 'pose_enc', 'float32', [B, F, 9]);
  g.output(flow, 'scene_flow', 'float32', [B, F, h, w, 3]);
  return { model: g.toModel('vggrpo toy fixtures'), params: net.params };
}
