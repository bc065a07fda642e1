/**
 * Layer helpers over GraphBuilder for writing the toy fixture models in PyTorch's vocabulary:
 * named parameters (`blocks.0.self_attn.q.weight`, stored [in, out] and used by MatMul, so LoRA
 * globs like `*attn*.weight` find them), Linear, LayerNorm, RMSNorm and the tanh GELU — using
 * only operators the project's autodiff differentiates.
 *
 * @example
 *   const net = new Net(new GraphBuilder('m'), { seed: 0 });
 *   const y = net.linear(x, 'proj', 32, 48);
 */

import { RuntimeFailure } from '../errors.js';
import type { GraphBuilder } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/proto.js';
import { normalInit } from './init.js';

export type ParamInit = { kind: 'normal'; std: number } | { kind: 'zeros' } | { kind: 'ones' };

export interface NetOptions {
  /** Seed of the initial weights used for parameters missing from `weights`. */
  seed: number;
  /** Trained values by parameter name (shape-checked). */
  weights?: ReadonlyMap<string, Float32Array>;
  /** Declare parameters as graph inputs instead of initializers (for training graphs). */
  paramsAsInputs?: boolean;
}

/** One parameter of a built model. */
export interface ParamInfo {
  name: string;
  shape: number[];
  value: Float32Array;
}

/** What a toy model builder takes (the VAE, Φ, the judge; the denoiser adds its own). */
export interface ToyModelOptions {
  /** Trained values by parameter name; missing ones get the seeded initialisation. */
  weights?: ReadonlyMap<string, Float32Array>;
  /** Parameters as graph inputs (training graphs). */
  paramsAsInputs?: boolean;
  /** A static batch size (training graphs need static shapes); default the symbolic `B`. */
  batch?: number;
  /** Seed of the initial weights; default the model's own. */
  seed?: number;
}

/** A built toy model and its parameters in creation order. */
export interface BuiltModel {
  model: ModelProto;
  params: ParamInfo[];
}

export class Net {
  /** Every parameter in creation order, with the value written into the model. */
  readonly params: ParamInfo[] = [];
  private readonly ones = new Map<number, string>();

  constructor(
    readonly g: GraphBuilder,
    private readonly opts: NetOptions,
  ) {}

  /** A named parameter: a trained value when given, else seeded initial values. */
  param(name: string, shape: number[], init: ParamInit): string {
    let n = 1;
    for (const d of shape) n *= d;
    let value = this.opts.weights?.get(name);
    if (value) {
      if (value.length !== n) {
        throw new RuntimeFailure(`weights for '${name}': ${value.length} values for shape [${shape}]`);
      }
    } else if (init.kind === 'normal') value = normalInit(name, shape, init.std, this.opts.seed);
    else value = new Float32Array(n).fill(init.kind === 'ones' ? 1 : 0);
    this.params.push({ name, shape, value });
    if (this.opts.paramsAsInputs) return this.g.input(name, 'float32', shape);
    return this.g.init(name, value, shape);
  }

  op(type: string, inputs: string[], attrs: Parameters<GraphBuilder['op']>[2] = {}): string {
    return this.g.op(type, inputs, attrs);
  }

  /** float32 constant of the given shape (scalar by default). */
  c(values: number[] | Float32Array, shape?: number[]): string {
    return this.g.const([...values], 'float32', shape);
  }

  i64(values: number[]): string {
    return this.g.const(values, 'int64', [values.length]);
  }

  /** y = x·W + b with W [in, out] named `<name>.weight` and b `<name>.bias`. */
  linear(
    x: string,
    name: string,
    inDim: number,
    outDim: number,
    opts: { bias?: boolean; std?: number } = {},
  ): string {
    const w = this.param(`${name}.weight`, [inDim, outDim], {
      kind: 'normal',
      std: opts.std ?? 1 / Math.sqrt(inDim),
    });
    const y = this.op('MatMul', [x, w]);
    if (opts.bias === false) return y;
    const b = this.param(`${name}.bias`, [outDim], { kind: 'zeros' });
    return this.op('Add', [y, b]);
  }

  /** LayerNorm over the last axis; without a name it has no affine parameters (a constant scale of ones). */
  layerNorm(x: string, dim: number, name?: string, eps = 1e-6): string {
    if (name === undefined) {
      let ones = this.ones.get(dim);
      if (!ones) {
        ones = this.c(new Array(dim).fill(1), [dim]);
        this.ones.set(dim, ones);
      }
      return this.op('LayerNormalization', [x, ones], { axis: -1, epsilon: eps });
    }
    const w = this.param(`${name}.weight`, [dim], { kind: 'ones' });
    const b = this.param(`${name}.bias`, [dim], { kind: 'zeros' });
    return this.op('LayerNormalization', [x, w, b], { axis: -1, epsilon: eps });
  }

  /** RMSNorm over the last axis with a learnt scale `<name>.weight`: x / sqrt(mean(x²) + eps) · w. */
  rmsNorm(x: string, dim: number, name: string, eps = 1e-6): string {
    const ms = this.op('ReduceMean', [this.op('Mul', [x, x]), this.i64([-1])], { keepdims: 1 });
    const rms = this.op('Sqrt', [this.op('Add', [ms, this.c([eps])])]);
    const w = this.param(`${name}.weight`, [dim], { kind: 'ones' });
    return this.op('Mul', [this.op('Div', [x, rms]), w]);
  }

  /** GELU, tanh approximation, written out (opset 18 has no Gelu). */
  gelu(x: string): string {
    const x3 = this.op('Mul', [x, this.op('Mul', [x, x])]);
    const inner = this.op('Mul', [
      this.op('Add', [x, this.op('Mul', [x3, this.c([0.044715])])]),
      this.c([Math.sqrt(2 / Math.PI)]),
    ]);
    const t = this.op('Add', [this.op('Tanh', [inner]), this.c([1])]);
    return this.op('Mul', [this.op('Mul', [x, t]), this.c([0.5])]);
  }

  /** SiLU x·sigmoid(x). */
  silu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [x])]);
  }

  /** Slice along one axis [start, end). */
  slice(x: string, axis: number, start: number, end: number): string {
    return this.op('Slice', [x, this.i64([start]), this.i64([end]), this.i64([axis])]);
  }

  reshape(x: string, shape: number[]): string {
    return this.op('Reshape', [x, this.i64(shape)]);
  }

  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], { perm });
  }

  /** Split along `axis` into pieces of the given sizes. */
  split(x: string, axis: number, sizes: number[]): string[] {
    return this.g.opN('Split', [x, this.i64(sizes)], { axis }, { outputs: sizes.length });
  }

  scale(x: string, s: number): string {
    return this.op('Mul', [x, this.c([s])]);
  }

  /**
   * A k×k Conv (zero-padded to keep the size at stride 1, halve it at stride 2) with
   * `<name>.weight` [out, in, k, k] (std gain/√(in·k²)) and `<name>.bias`.
   */
  conv(x: string, name: string, cin: number, cout: number, opts: ConvOptions = {}): string {
    const k = opts.k ?? 3;
    const w = this.param(`${name}.weight`, [cout, cin, k, k], {
      kind: 'normal',
      std: (opts.gain ?? 1) / Math.sqrt(cin * k * k),
    });
    const b = this.param(`${name}.bias`, [cout], { kind: 'zeros' });
    const p = (k - 1) >> 1;
    const stride = opts.stride ?? 1;
    return this.op('Conv', [x, w, b], {
      kernel_shape: [k, k],
      pads: [p, p, p, p],
      ...(stride !== 1 ? { strides: [stride, stride] } : {}),
    });
  }
}

export interface ConvOptions {
  /** Kernel size (default 3). */
  k?: number;
  stride?: number;
  /** Scale of the initial weights' std (default 1). */
  gain?: number;
}

/**
 * Rotation matrices [..., 3, 3] (row-major) of unit quaternions q [..., 4] (x, y, z, w), with
 * elementwise ops only; `axis` is q's last axis.
 *
 * @example
 *   const R = quaternionToRotation(net, q, 2); // q [B, F, 4] → R [B, F, 3, 3]
 */
export function quaternionToRotation(net: Net, q: string, axis: number): string {
  const [qx, qy, qz, qw] = net.split(q, axis, [1, 1, 1, 1]) as [string, string, string, string];
  const mul = (a: string, b: string) => net.op('Mul', [a, b]);
  const two = (a: string) => net.scale(a, 2);
  const oneMinus2 = (a: string, b: string) =>
    net.op('Sub', [net.c([1]), two(net.op('Add', [mul(a, a), mul(b, b)]))]);
  const twoSum = (a: string, b: string) => two(net.op('Add', [a, b]));
  const twoDiff = (a: string, b: string) => two(net.op('Sub', [a, b]));
  const r9 = net.op(
    'Concat',
    [
      oneMinus2(qy, qz),
      twoDiff(mul(qx, qy), mul(qz, qw)),
      twoSum(mul(qx, qz), mul(qy, qw)),
      twoSum(mul(qx, qy), mul(qz, qw)),
      oneMinus2(qx, qz),
      twoDiff(mul(qy, qz), mul(qx, qw)),
      twoDiff(mul(qx, qz), mul(qy, qw)),
      twoSum(mul(qy, qz), mul(qx, qw)),
      oneMinus2(qx, qy),
    ],
    { axis },
  );
  return net.reshape(r9, [0, 0, 3, 3]);
}

/** q / ‖q‖ over the last axis (ε keeps the zero vector finite). */
export function normalizeQuaternion(net: Net, q: string): string {
  const norm = net.op('Sqrt', [
    net.op('Add', [
      net.op('ReduceSum', [net.op('Mul', [q, q]), net.i64([-1])], { keepdims: 1 }),
      net.c([1e-12]),
    ]),
  ]);
  return net.op('Div', [q, norm]);
}

/**
 * Hamilton product p ⊗ q of quaternions (x, y, z, w) on axis `axis`, elementwise:
 * R(p ⊗ q) = R(p)·R(q) with R of `quaternionToRotation`.
 *
 * @example
 *   const q2 = quaternionProduct(net, step, q1, 2); // q1 [B, 1, 4] turned on by step [B, 1, 4]
 */
export function quaternionProduct(net: Net, p: string, q: string, axis: number): string {
  const [px, py, pz, pw] = net.split(p, axis, [1, 1, 1, 1]) as [string, string, string, string];
  const [qx, qy, qz, qw] = net.split(q, axis, [1, 1, 1, 1]) as [string, string, string, string];
  const mul = (a: string, b: string) => net.op('Mul', [a, b]);
  // a·b ± c·d ± …: the first product, then each signed one added or subtracted
  const sum = (a: string, b: string, ...rest: [1 | -1, string, string][]) =>
    rest.reduce((acc, [s, c, d]) => net.op(s > 0 ? 'Add' : 'Sub', [acc, mul(c, d)]), mul(a, b));
  const x = sum(pw, qx, [1, px, qw], [1, py, qz], [-1, pz, qy]);
  const y = sum(pw, qy, [-1, px, qz], [1, py, qw], [1, pz, qx]);
  const z = sum(pw, qz, [1, px, qy], [-1, py, qx], [1, pz, qw]);
  const w = sum(pw, qw, [-1, px, qx], [-1, py, qy], [-1, pz, qz]);
  return net.op('Concat', [x, y, z, w], { axis });
}

/** Normalised pixel grids (j − w/2)/(w/2) and (i − h/2)/(h/2) of the output cells, [h·w] each. */
function pixelGrids(h: number, w: number): { gx: Float32Array; gy: Float32Array } {
  const gx = new Float32Array(h * w);
  const gy = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      gx[i * w + j] = (j - w / 2) / (w / 2);
      gy[i * w + j] = (i - h / 2) / (h / 2);
    }
  }
  return { gx, gy };
}

/**
 * World points [B, F, h, w, 3] of depth cells under VGGT-encoded cameras, in-graph so points,
 * depth and cameras always agree: X = Rᵀ(d·K⁻¹[u, v, 1] − t), as row vectors (d·ray − t)·R, with
 * K from the field of view (pixel (i, j) at u = j, v = i, principal point at the centre, as
 * src/world/render.ts draws): (u − w/2)/fx = gx·tan(fov_w/2), gx = (j − w/2)/(w/2).
 *
 * @param depthCol depth [B, F, h·w, 1]
 * @param t translation [B, F, 3]; q unit quaternion [B, F, 4]; fov (fov_h, fov_w) [B, F, 2]
 */
export function worldPoints(
  net: Net,
  cells: { depthCol: string; t: string; q: string; fov: string },
  grid: { frames: number; height: number; width: number },
): string {
  const { frames: F, height: h, width: w } = grid;
  const { depthCol, t, q, fov } = cells;
  const R = quaternionToRotation(net, q, 2);
  const [fovH, fovW] = net.split(fov, 2, [1, 1]) as [string, string];
  const tanHalf = (a: string) => net.op('Unsqueeze', [net.op('Tan', [net.scale(a, 0.5)]), net.i64([3])]); // [B,F,1,1]
  const { gx, gy } = pixelGrids(h, w);
  const rx = net.op('Mul', [net.c(gx, [h * w, 1]), tanHalf(fovW)]);
  const ry = net.op('Mul', [net.c(gy, [h * w, 1]), tanHalf(fovH)]);
  const xCam = net.op('Concat', [net.op('Mul', [depthCol, rx]), net.op('Mul', [depthCol, ry]), depthCol], {
    axis: 3,
  });
  const rel = net.op('Sub', [xCam, net.op('Unsqueeze', [t, net.i64([2])])]);
  return net.reshape(net.op('MatMul', [rel, R]), [-1, F, h, w, 3]);
}
