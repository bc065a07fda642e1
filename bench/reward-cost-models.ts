/**
 * Random-weight stand-ins for the reward-cost benchmark (bench/reward-cost.ts), built in the
 * shape of the real models so their cost is the real models' cost at the chosen size:
 *
 * - `videoDecoder`: a Wan2.1-VAE-decoder-shaped 3-D causal conv decoder — conv_in, a middle of
 *   two residual blocks around one per-frame spatial attention, then up stages of residual blocks
 *   with '3d' (×2 in time, causal: 2F − 1 frames, and ×2 in space) or '2d' (×2 in space)
 *   upsampling, channel RMS norms, SiLU, conv_out; frames out [B, 3, F_v, H, W] in [−1, 1] (B3FHW)
 *   or, for the toy, sigmoid [0, 1] in BF3HW.
 * - `geometryModel`: a VGGT-shaped Φ — resize to a multiple of the patch, a patch-`p` tokeniser,
 *   alternating frame-attention / global-attention transformer blocks (pre-LN, 4× GELU MLP), a
 *   per-token head (depth, points, confidence, scene flow at the patch grid) and a camera head
 *   (per-frame mean token → 9-d pose encoding).
 * - `latentGeometryModel`: the stitched LGM — the paper's connector (Conv3d, kernel 5, stride
 *   1×2×2, padding 2) on latents, then Φ's blocks after the stitch point and the same heads.
 *
 * VGGT's DPT heads (which upsample to the input resolution) are left out: both paths carry the
 * same heads, so they add the same cost to each.
 *
 * @example
 *   saveModel(videoDecoder(WAN_DECODER).toModel(), 'vae_decoder.onnx');
 */
import { GraphBuilder } from '../src/onnx/builder.js';

export interface DecoderSpec {
  latentChannels: number;
  frames: number;
  height: number;
  width: number;
  /** Channels of conv_in and the middle. */
  width0: number;
  /** Up stages, each one residual block at its width, then its upsampling. */
  stages: { width: number; up: '3d' | '2d' | 'none' }[];
  /** Wan: B3FHW in [−1, 1]; toy: BF3HW in [0, 1]. */
  output: 'wan' | 'toy';
}

export interface GeometrySpec {
  frames: number;
  /** Input frame size (the decoder's output). */
  height: number;
  width: number;
  patch: number;
  /** Patch grid (the geometry resolution); frames are resized to patch·grid first. */
  gridH: number;
  gridW: number;
  dim: number;
  heads: number;
  /** Transformer blocks (alternating frame / global attention). */
  blocks: number;
}

export interface LgmSpec extends Omit<GeometrySpec, 'height' | 'width' | 'patch'> {
  latentChannels: number;
  latentHeight: number;
  latentWidth: number;
  /** Φ's blocks the connector replaces (ℓ); the LGM keeps blocks ℓ..L−1. */
  stitchAt: number;
}

/** Fast seeded uniform weights of the given std (random weights: only their cost matters). */
class Weights {
  private s: number;
  constructor(
    readonly g: GraphBuilder,
    seed: number,
  ) {
    this.s = seed >>> 0 || 1;
  }
  param(name: string, shape: number[], std: number): string {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const half = std * Math.sqrt(3);
    let s = this.s;
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * half;
    }
    this.s = s >>> 0 || 1;
    return this.g.init(name, a, shape);
  }
  fill(name: string, shape: number[], v: number): string {
    return this.g.init(name, Float32Array, shape, () => v);
  }
}

function silu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])]);
}

/** RMS norm over the channel axis of [B, C, F, H, W] with a learnt per-channel scale (Wan's RMS_norm). */
function channelRms(w: Weights, x: string, name: string, c: number): string {
  const g = w.g;
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x]), g.ints([1])], { keepdims: 1 });
  const y = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.const([1e-6])])])]);
  return g.op('Mul', [y, w.fill(`${name}.gamma`, [c, 1, 1, 1], 1)]);
}

/** Causal 3-D conv: kernel kt×3×3, zero padding kt − 1 frames in front, 1 pixel around. */
function causalConv(w: Weights, x: string, name: string, cin: number, cout: number, kt = 3): string {
  const wt = w.param(`${name}.weight`, [cout, cin, kt, 3, 3], 1 / Math.sqrt(cin * kt * 9));
  const b = w.fill(`${name}.bias`, [cout], 0);
  return w.g.op('Conv', [x, wt, b], { pads: [kt - 1, 1, 1, 0, 1, 1] });
}

function resBlock(w: Weights, x: string, name: string, cin: number, cout: number): string {
  const g = w.g;
  let h = causalConv(w, silu(g, channelRms(w, x, `${name}.norm1`, cin)), `${name}.conv1`, cin, cout);
  h = causalConv(w, silu(g, channelRms(w, h, `${name}.norm2`, cout)), `${name}.conv2`, cout, cout);
  const skip =
    cin === cout
      ? x
      : g.op('Conv', [x, w.param(`${name}.shortcut.weight`, [cout, cin, 1, 1, 1], 1 / Math.sqrt(cin))]);
  return g.op('Add', [skip, h]);
}

/** Single-head spatial self-attention within each frame of [B, C, F, H, W] (Wan's middle AttentionBlock). */
function frameSpatialAttention(
  w: Weights,
  x: string,
  name: string,
  c: number,
  F: number,
  H: number,
  W: number,
): string {
  const g = w.g;
  const n = channelRms(w, x, `${name}.norm`, c);
  const t = g.op('Reshape', [g.op('Transpose', [n], { perm: [0, 2, 3, 4, 1] }), g.ints([-1, H * W, c])]);
  const y = attention(w, t, name, c, 1);
  const back = g.op('Transpose', [g.op('Reshape', [y, g.ints([-1, F, H, W, c])])], { perm: [0, 4, 1, 2, 3] });
  return g.op('Add', [x, back]);
}

/**
 * A Wan-VAE-decoder-shaped video decoder: latents [B, C, F, H, W] → frames.
 *
 * @example
 *   videoDecoder({ latentChannels: 16, frames: 5, height: 16, width: 24, width0: 64, stages: [...], output: 'wan' });
 */
export function videoDecoder(s: DecoderSpec): GraphBuilder {
  const g = new GraphBuilder('video_decoder', 18);
  const w = new Weights(g, 11);
  const x = g.input('latents', 'float32', ['B', s.latentChannels, s.frames, s.height, s.width]);
  let h = causalConv(w, x, 'conv_in', s.latentChannels, s.width0);
  let c = s.width0;
  h = resBlock(w, h, 'middle.0', c, c);
  h = frameSpatialAttention(w, h, 'middle.1', c, s.frames, s.height, s.width);
  h = resBlock(w, h, 'middle.2', c, c);
  let F = s.frames;
  s.stages.forEach((st, i) => {
    h = resBlock(w, h, `upsamples.${i}.res`, c, st.width);
    c = st.width;
    if (st.up === 'none') return;
    if (st.up === '3d') {
      // Nearest ×2 in time, first frame alone (Wan's causal first chunk): F → 2F − 1.
      h = g.op('Resize', [h, '', g.const([1, 1, 2, 1, 1], 'float32', [5])], { mode: 'nearest' });
      h = g.op('Slice', [h, g.ints([1]), g.ints([2 * F]), g.ints([2])]);
      F = 2 * F - 1;
    }
    h = g.op('Resize', [h, '', g.const([1, 1, 1, 2, 2], 'float32', [5])], { mode: 'nearest' });
    h = causalConv(w, h, `upsamples.${i}.resample`, c, c, 1);
  });
  h = causalConv(w, silu(g, channelRms(w, h, 'head.norm', c)), 'head.conv', c, 3);
  if (s.output === 'wan') g.output(g.op('Clip', [h, g.const([-1]), g.const([1])]), 'frames');
  else g.output(g.op('Transpose', [g.op('Sigmoid', [h])], { perm: [0, 2, 1, 3, 4] }), 'frames');
  return g;
}

function layerNorm(w: Weights, x: string, name: string, d: number): string {
  return w.g.op('LayerNormalization', [x, w.fill(`${name}.weight`, [d], 1), w.fill(`${name}.bias`, [d], 0)], {
    axis: -1,
    epsilon: 1e-6,
  });
}

function linear(w: Weights, x: string, name: string, din: number, dout: number): string {
  const g = w.g;
  return g.op('Add', [
    g.op('MatMul', [x, w.param(`${name}.weight`, [din, dout], 1 / Math.sqrt(din))]),
    w.fill(`${name}.bias`, [dout], 0),
  ]);
}

/** Multi-head self-attention on tokens [N, T, D] (N, T any). */
function attention(w: Weights, x: string, name: string, d: number, heads: number): string {
  const g = w.g;
  const dh = d / heads;
  const split = (t: string) =>
    g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, heads, dh])])], { perm: [0, 2, 1, 3] });
  const q = split(linear(w, x, `${name}.q`, d, d));
  const k = split(linear(w, x, `${name}.k`, d, d));
  const v = split(linear(w, x, `${name}.v`, d, d));
  const kt = g.op('Transpose', [k], { perm: [0, 1, 3, 2] });
  const a = g.op('Softmax', [g.op('Mul', [g.op('MatMul', [q, kt]), g.const([1 / Math.sqrt(dh)])])], {
    axis: -1,
  });
  const o = g.op('Reshape', [
    g.op('Transpose', [g.op('MatMul', [a, v])], { perm: [0, 2, 1, 3] }),
    g.ints([0, 0, d]),
  ]);
  return linear(w, o, `${name}.proj`, d, d);
}

function gelu(g: GraphBuilder, x: string): string {
  const x3 = g.op('Mul', [x, g.op('Mul', [x, x])]);
  const inner = g.op('Mul', [
    g.op('Add', [x, g.op('Mul', [x3, g.const([0.044715])])]),
    g.const([Math.sqrt(2 / Math.PI)]),
  ]);
  return g.op('Mul', [g.op('Mul', [x, g.op('Add', [g.op('Tanh', [inner]), g.const([1])])]), g.const([0.5])]);
}

/** Block i on tokens [B, F·P, D]: frame attention (even i, within each frame) or global (odd i). */
function block(w: Weights, x: string, i: number, d: number, heads: number, F: number, P: number): string {
  const g = w.g;
  const name = `blocks.${i}`;
  const frame = i % 2 === 0;
  const n = layerNorm(w, x, `${name}.norm1`, d);
  const t = frame ? g.op('Reshape', [n, g.ints([-1, P, d])]) : n;
  let a = attention(w, t, `${name}.attn`, d, heads);
  if (frame) a = g.op('Reshape', [a, g.ints([-1, F * P, d])]);
  const h = g.op('Add', [x, a]);
  const m = linear(
    w,
    gelu(g, linear(w, layerNorm(w, h, `${name}.norm2`, d), `${name}.mlp.fc1`, d, 4 * d)),
    `${name}.mlp.fc2`,
    4 * d,
    d,
  );
  return g.op('Add', [h, m], {}, { name: `${name}.add`, outputs: [`${name}.output`] });
}

/** Heads on tokens [B, F·P, D] → depth, world_points, confidence, scene_flow (patch grid), pose_enc. */
function geometryHeads(w: Weights, x: string, d: number, F: number, gh: number, gw: number): void {
  const g = w.g;
  const n = layerNorm(w, x, 'head.norm', d);
  const per = g.op('Reshape', [linear(w, n, 'head.dense', d, 8), g.ints([-1, F, gh, gw, 8])]);
  const ch = (a: number, b: number) => g.op('Slice', [per, g.ints([a]), g.ints([b]), g.ints([4])]);
  const grid = (t: string) => g.op('Reshape', [t, g.ints([-1, F, gh, gw])]);
  g.output(g.op('Add', [g.op('Exp', [grid(ch(0, 1))]), g.const([1])]), 'depth');
  g.output(ch(1, 4), 'world_points');
  g.output(g.op('Add', [g.op('Exp', [grid(ch(4, 5))]), g.const([1])]), 'confidence');
  g.output(ch(5, 8), 'scene_flow');
  const pooled = g.op('ReduceMean', [g.op('Reshape', [n, g.ints([-1, F, gh * gw, d])]), g.ints([2])], {
    keepdims: 0,
  });
  const pose = linear(w, pooled, 'camera.dense', d, 9);
  // A valid quaternion and a ~1 rad field of view whatever the random weights give.
  g.output(g.op('Add', [pose, g.const([0, 0, 0, 0, 0, 0, 4, 1, 1], 'float32', [9])]), 'pose_enc');
}

/**
 * A VGGT-shaped RGB geometry model Φ: frames [B, F, 3, H, W] in [0, 1] → geometry.
 *
 * @example
 *   geometryModel({ frames: 5, height: 128, width: 192, patch: 14, gridH: 8, gridW: 12, dim: 1024, heads: 16, blocks: 8 });
 */
export function geometryModel(s: GeometrySpec): GraphBuilder {
  const g = new GraphBuilder('geometry_rgb', 18);
  const w = new Weights(g, 23);
  const x = g.input('frames', 'float32', ['B', s.frames, 3, s.height, s.width]);
  const H = s.patch * s.gridH;
  const W = s.patch * s.gridW;
  let f = g.op('Reshape', [x, g.ints([-1, 3, s.height, s.width])]);
  if (H !== s.height || W !== s.width)
    f = g.op('Resize', [f, '', '', g.ints([H, W])], { mode: 'linear', axes: [2, 3] }); // VGGT's preprocessing resize
  // Patch tokens (VGGT: a DINO patch embed; here one patch conv).
  const p = g.op(
    'Conv',
    [f, w.param('tokenizer.weight', [s.dim, 3, s.patch, s.patch], 1 / Math.sqrt(3 * s.patch * s.patch))],
    {
      strides: [s.patch, s.patch],
    },
  );
  const P = s.gridH * s.gridW;
  let t = g.op(
    'Reshape',
    [
      g.op('Transpose', [g.op('Reshape', [p, g.ints([-1, s.frames, s.dim, P])])], { perm: [0, 1, 3, 2] }),
      g.ints([-1, s.frames * P, s.dim]),
    ],
    {},
    { outputs: ['tokenizer.output'] },
  );
  for (let i = 0; i < s.blocks; i++) t = block(w, t, i, s.dim, s.heads, s.frames, P);
  geometryHeads(w, t, s.dim, s.frames, s.gridH, s.gridW);
  return g;
}

/**
 * The stitched LGM: latents [B, C, F, H, W] → connector → Φ's blocks ℓ..L−1 → the same heads.
 *
 * @example
 *   latentGeometryModel({ latentChannels: 16, latentHeight: 16, latentWidth: 24, frames: 5, gridH: 8, gridW: 12, dim: 1024, heads: 16, blocks: 8, stitchAt: 2 });
 */
export function latentGeometryModel(s: LgmSpec): GraphBuilder {
  const g = new GraphBuilder('lgm', 18);
  const w = new Weights(g, 37);
  const x = g.input('latents', 'float32', ['B', s.latentChannels, s.frames, s.latentHeight, s.latentWidth]);
  const c = g.op(
    'Conv',
    [
      x,
      w.param('connector.weight', [s.dim, s.latentChannels, 5, 5, 5], 1 / Math.sqrt(s.latentChannels * 125)),
      w.fill('connector.bias', [s.dim], 0),
    ],
    { pads: [2, 2, 2, 2, 2, 2], strides: [1, 2, 2] },
  );
  const P = s.gridH * s.gridW;
  // [B, D, F, gh, gw] → tokens [B, F·P, D], frame-major like Φ's.
  let t = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [c, g.ints([-1, s.dim, s.frames, P])])], { perm: [0, 2, 3, 1] }),
    g.ints([-1, s.frames * P, s.dim]),
  ]);
  for (let i = s.stitchAt; i < s.blocks; i++) t = block(w, t, i, s.dim, s.heads, s.frames, P);
  geometryHeads(w, t, s.dim, s.frames, s.gridH, s.gridW);
  return g;
}
