/**
 * The toy latent geometry model (LGM): analytic weights that decode the toy latent space into
 * the geometry a real LGM predicts — depth, world points, confidence, VGGT pose encoding and
 * scene flow — behind the paper's connector shape, one Conv3d with kernel 5×5×5, stride 1×2×2,
 * padding 2.
 *
 * The connector's taps (temporal centre tap only) average each channel's 2×2 block, which undoes
 * the encoder's ×2 nearest upsampling exactly, and add a Laplacian of log-depth on the 8×8 grid
 * (replicate border) that drives confidence = exp(−k·lap²), low at depth edges. The heads:
 * depth = exp(s·f + μ); the camera = the spatial mean of the camera features, the quaternion
 * normalised in-graph and turned into R with elementwise ops; world points = Rᵀ(d·K⁻¹[u,v,1] − t)
 * with a constant ray grid (pixel (i, j) at u = j, v = i, principal point (w/2, h/2)).
 *
 * @example
 *   const model = buildLgm();
 *   saveModel(model, 'onnx/fixtures/lgm.onnx');
 */
import { GraphBuilder } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/proto.js';
import { CH, NORM, TOY, toyFocal } from './latent.js';
import { Net, normalizeQuaternion, quaternionToRotation } from './nn.js';

/** Sharpness k of confidence = exp(−k·lap²), lap in normalised log-depth units. */
export const CONFIDENCE_SHARPNESS = 1;

/** Connector feature channels: log-depth, its Laplacian, t (3), q (4), flow (3). */
const FEAT = { logDepth: 0, laplacian: 1, translation: 2, quaternion: 5, flow: 9, count: 12 } as const;

/**
 * Weights [K, C, 5, 5, 5] of the connector Conv3d. Output (o_h, o_w) reads input rows
 * 2·o_h − 2 + k_h, so taps k ∈ {2, 3} cover its own 2×2 block, k = 1 and k = 4 the adjacent
 * blocks' nearer rows (equal to the whole block for upsampled latents).
 */
export function connectorWeights(): Float32Array {
  const C = TOY.channels;
  const K = FEAT.count;
  const w = new Float32Array(K * C * 125);
  const at = (k: number, c: number, kt: number, kh: number, kw: number) =>
    (((k * C + c) * 5 + kt) * 5 + kh) * 5 + kw;
  const add = (i: number, v: number) => {
    w[i] = (w[i] ?? 0) + v;
  };
  const average = (k: number, c: number) => {
    for (const kh of [2, 3]) for (const kw of [2, 3]) w[at(k, c, 2, kh, kw)] = 0.25;
  };
  average(FEAT.logDepth, CH.logDepth);
  for (let k = 0; k < 3; k++) average(FEAT.translation + k, CH.translation + k);
  for (let k = 0; k < 4; k++) average(FEAT.quaternion + k, CH.quaternion + k);
  for (let k = 0; k < 3; k++) average(FEAT.flow + k, CH.flow + k);
  // Laplacian: four neighbour blocks (two taps of 0.5 each) minus four times the centre block.
  const L = FEAT.laplacian;
  for (const kk of [2, 3]) {
    for (const [kh, kw] of [
      [1, kk],
      [4, kk],
      [kk, 1],
      [kk, 4],
    ] as const)
      add(at(L, CH.logDepth, 2, kh, kw), 0.5);
    for (const kw of [2, 3]) add(at(L, CH.logDepth, 2, kk, kw), -1);
  }
  return w;
}

/**
 * Missing neighbours of each h×w cell (0 inside, 1 on edges, 2 at corners): adding this times the
 * centre value turns the zero-padded Laplacian into the replicate-padded one.
 */
function borderCounts(h: number, w: number): Float32Array {
  const m = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) m[i * w + j] = +(i === 0) + +(i === h - 1) + +(j === 0) + +(j === w - 1);
  }
  return m;
}

/** Camera rays K⁻¹[u, v, 1] of the h×w output grid, [h·w, 3]. */
export function rayGrid(h: number, w: number): Float32Array {
  // Square pixels, as the toy renderer draws them: fx = fy.
  const fy = toyFocal(h);
  const fx = fy;
  const rays = new Float32Array(h * w * 3);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const p = 3 * (i * w + j);
      rays[p] = (j - w / 2) / fx;
      rays[p + 1] = (i - h / 2) / fy;
      rays[p + 2] = 1;
    }
  }
  return rays;
}

/**
 * The toy LGM: `latents` [B, C, F, H, W] → `depth` [B, F, h, w], `world_points` [B, F, h, w, 3],
 * `confidence` [B, F, h, w], `pose_enc` [B, F, 9], `scene_flow` [B, F, h, w, 3].
 *
 * @example
 *   const lgm = buildLgm(); // ModelProto, opset 18
 */
export function buildLgm(): ModelProto {
  const { channels: C, frames: F, height: H, width: W, geoHeight: h, geoWidth: w } = TOY;
  const g = new GraphBuilder('toy_lgm', 18);
  const net = new Net(g, { seed: 0 });
  const x = g.input('latents', 'float32', ['B', C, F, H, W]);
  const convW = g.init('connector.weight', connectorWeights(), [FEAT.count, C, 5, 5, 5]);
  const feats = g.op('Conv', [x, convW], {
    kernel_shape: [5, 5, 5],
    strides: [1, 2, 2],
    pads: [2, 2, 2, 2, 2, 2],
  });
  const [fd, fl, ft, fq, ff] = net.split(feats, 1, [1, 1, 3, 4, 3]) as [
    string,
    string,
    string,
    string,
    string,
  ];

  // Depth head.
  const logDepth = net.op('Squeeze', [fd, net.i64([1])]);
  const depth = net.op('Exp', [
    net.op('Add', [net.scale(logDepth, NORM.logDepthScale), net.c([NORM.logDepthMean])]),
  ]);

  // Confidence head: replicate-border Laplacian of normalised log-depth.
  const lap = net.op('Add', [
    net.op('Squeeze', [fl, net.i64([1])]),
    net.op('Mul', [logDepth, net.c(borderCounts(h, w), [h, w])]),
  ]);
  const confidence = net.op('Exp', [net.scale(net.op('Mul', [lap, lap]), -CONFIDENCE_SHARPNESS)]);

  // Camera head: spatial means → t [B,F,3], unit q [B,F,4].
  const spatialMean = (v: string) =>
    net.transpose(net.op('ReduceMean', [v, net.i64([3, 4])], { keepdims: 0 }), [0, 2, 1]);
  const affine = (v: string, scale: readonly number[], mean: readonly number[]) =>
    net.op('Add', [net.op('Mul', [v, net.c([...scale], [scale.length])]), net.c([...mean], [mean.length])]);
  const t = affine(spatialMean(ft), NORM.translationScale, NORM.translationMean);
  const qRaw = affine(spatialMean(fq), NORM.quaternionScale, NORM.quaternionMean);
  const q = normalizeQuaternion(net, qRaw);
  const fov = net.op('Add', [net.scale(net.slice(q, 2, 0, 2), 0), net.c([TOY.fov, TOY.fov], [2])]);
  const poseEnc = net.op('Concat', [t, q, fov], { axis: 2 });

  // Rotation matrix from the unit quaternion (x, y, z, w), row-major, [B, F, 3, 3].
  const R = quaternionToRotation(net, q, 2);

  // World points: row vectors (d·ray − t)·R = (Rᵀ(X_cam − t))ᵀ.
  const xCam = net.op('Mul', [net.reshape(depth, [0, 0, h * w, 1]), net.c(rayGrid(h, w), [h * w, 3])]);
  const rel = net.op('Sub', [xCam, net.op('Unsqueeze', [t, net.i64([2])])]);
  const points = net.reshape(net.op('MatMul', [rel, R]), [0, 0, h, w, 3]);

  // Scene flow head.
  const flow = net.transpose(net.scale(ff, NORM.flowScale), [0, 2, 3, 4, 1]);

  g.output(depth, 'depth', 'float32', ['B', F, h, w]);
  g.output(points, 'world_points', 'float32', ['B', F, h, w, 3]);
  g.output(confidence, 'confidence', 'float32', ['B', F, h, w]);
  g.output(poseEnc, 'pose_enc', 'float32', ['B', F, 9]);
  g.output(flow, 'scene_flow', 'float32', ['B', F, h, w, 3]);
  return g.toModel('vggrpo toy fixtures');
}
