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
