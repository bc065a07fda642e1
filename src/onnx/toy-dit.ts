/**
 * A toy Wan-style video DiT written with the graph builder: Conv3d patchify, sinusoidal
 * timestep embedding with adaLN modulation (shift/scale/gate), self-attention with RMSNorm on
 * q/k (Pow/ReduceMean/Sqrt/Div), cross-attention to the text context, a tanh-Gelu MLP, and an
 * unpatchify head. It follows the denoiser contract: latents [B,C,F,H,W], timestep [B],
 * context [B,L,D] → velocity [B,C,F,H,W]. Used by tests, the autodiff benchmark and fixtures.
 *
 * @example
 *   const model = buildToyDit({ channels: 4, frames: 2, height: 8, width: 8, dim: 32, heads: 2, layers: 1 });
 */
import { GraphBuilder } from './builder.js';
import type { ModelProto } from './proto.js';

export interface ToyDitOptions {
  batch?: number;
  channels?: number;
  frames?: number;
  height?: number;
  width?: number;
  dim?: number;
  heads?: number;
  layers?: number;
  contextLength?: number;
  contextDim?: number;
  mlpRatio?: number;
  seed?: number;
  /** 20 uses the Gelu op; 18 writes tanh-Gelu out of elementary ops. */
  opset?: number;
  /** Leave the batch dim symbolic ('batch') in the inputs. */
  dynamicBatch?: boolean;
}

export function buildToyDit(o: ToyDitOptions = {}): ModelProto {
  const B = o.batch ?? 1;
  const C = o.channels ?? 4;
  const F = o.frames ?? 2;
  const H = o.height ?? 8;
  const W = o.width ?? 8;
  const D = o.dim ?? 32;
  const NH = o.heads ?? 2;
  const dh = D / NH;
  const L = o.contextLength ?? 4;
  const Dc = o.contextDim ?? 16;
  const opset = o.opset ?? 20;
  const hidden = D * (o.mlpRatio ?? 2);
  const [ph, pw] = [2, 2];
  const T = F * (H / ph) * (W / pw);
  let seed = (o.seed ?? 1) >>> 0;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 4294967296 - 0.5;
  };
  const g = new GraphBuilder('toy_dit', opset);
  const weight = (name: string, shape: number[], fanIn: number, scale = 1) =>
    g.init(name, Float32Array, shape, () => (rand() * 2 * scale) / Math.sqrt(fanIn));
  const bias = (name: string, n: number) => g.init(name, Float32Array, [n], () => rand() * 0.1);
  const ones = (name: string, n: number) => g.init(name, Float32Array, [n], () => 1 + rand() * 0.1);
  const i64 = (v: number[]) => g.const(v, 'int64', [v.length]);
  const f = (v: number) => g.const([v]);
  const linear = (x: string, name: string, inD: number, outD: number, withBias = true) => {
    const y = g.op('MatMul', [x, weight(`${name}.weight`, [inD, outD], inD)]);
    return withBias ? g.op('Add', [y, bias(`${name}.bias`, outD)]) : y;
  };
  const gelu = (x: string) => {
    if (opset >= 20) return g.op('Gelu', [x], { approximate: 'tanh' });
    const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const u = g.op('Mul', [g.op('Add', [x, g.op('Mul', [x3, f(0.044715)])]), f(Math.sqrt(2 / Math.PI))]);
    return g.op('Mul', [g.op('Mul', [x, f(0.5)]), g.op('Add', [f(1), g.op('Tanh', [u])])]);
  };
  const rmsNorm = (x: string, name: string) => {
    const ms = g.op('ReduceMean', [g.op('Pow', [x, f(2)]), i64([-1])], { keepdims: 1 });
    const n = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, f(1e-6)])])]);
    return g.op('Mul', [n, ones(`${name}.weight`, D)]);
  };
  const layerNorm = (x: string) =>
    g.op('LayerNormalization', [x, g.const(new Array(D).fill(1), 'float32', [D])], { epsilon: 1e-6 });
  // [B, T, D] -> [B, NH, T, dh]; the head split reads B from Shape(x) as exporters write it
  const heads = (x: string, len: number) => {
    const b = g.op('Gather', [g.op('Shape', [x]), g.const([0], 'int64', [1])], { axis: 0 });
    const shape = g.op('Concat', [b, i64([len, NH, dh])], { axis: 0 });
    return g.op('Transpose', [g.op('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
  };
  const merge = (x: string) =>
    g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), i64([B, -1, D])]);
  const attention = (q: string, k: string, v: string) => {
    const s = g.op('Mul', [
      g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]),
      f(1 / Math.sqrt(dh)),
    ]);
    return g.op('MatMul', [g.op('Softmax', [s], { axis: -1 }), v]);
  };

  const bDim = o.dynamicBatch ? 'batch' : B;
  const latents = g.input('latents', 'float32', [bDim, C, F, H, W]);
  const timestep = g.input('timestep', 'float32', [bDim]);
  const context = g.input('context', 'float32', [bDim, L, Dc]);

  // patchify: Conv3d with kernel = stride = (1, 2, 2), then tokens [B, T, D]
  const pe = g.op(
    'Conv',
    [
      latents,
      weight('patch_embedding.weight', [D, C, 1, ph, pw], C * ph * pw),
      bias('patch_embedding.bias', D),
    ],
    {
      kernel_shape: [1, ph, pw],
      strides: [1, ph, pw],
    },
  );
  let x = g.op('Transpose', [g.op('Reshape', [pe, i64([B, D, T])])], { perm: [0, 2, 1] });

  // timestep: sinusoidal features -> MLP -> 6·D modulation per block
  const half = D / 2;
  const freqs = g.const(
    Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half)),
    'float32',
    [1, half],
  );
  const targ = g.op('Mul', [g.op('Unsqueeze', [timestep, i64([1])]), freqs]);
  const temb0 = g.op('Concat', [g.op('Cos', [targ]), g.op('Sin', [targ])], { axis: 1 });
  const t1 = linear(temb0, 'time_embedding.0', D, D);
  const temb = linear(g.op('Mul', [t1, g.op('Sigmoid', [t1])]), 'time_embedding.2', D, D);
  const tact = g.op('Mul', [temb, g.op('Sigmoid', [temb])]);
  const ctx = linear(context, 'text_embedding', Dc, D);

  for (let l = 0; l < (o.layers ?? 1); l++) {
    const p = `blocks.${l}`;
    const mod = g.op('Reshape', [linear(tact, `${p}.modulation`, D, 6 * D), i64([B, 6, D])]);
    const [sh1, sc1, g1, sh2, sc2, g2] = g.opN(
      'Split',
      [mod, i64([1, 1, 1, 1, 1, 1])],
      { axis: 1 },
      { outputs: 6 },
    );
    // self-attention
    const h = g.op('Add', [g.op('Mul', [layerNorm(x), g.op('Add', [sc1!, f(1)])]), sh1!]);
    const q = heads(rmsNorm(linear(h, `${p}.self_attn.q`, D, D), `${p}.self_attn.norm_q`), T);
    const k = heads(rmsNorm(linear(h, `${p}.self_attn.k`, D, D), `${p}.self_attn.norm_k`), T);
    const v = heads(linear(h, `${p}.self_attn.v`, D, D), T);
    const sa = linear(merge(attention(q, k, v)), `${p}.self_attn.o`, D, D);
    x = g.op('Add', [x, g.op('Mul', [sa, g1!])]);
    // cross-attention to the text context
    const hc = layerNorm(x);
    const cq = heads(linear(hc, `${p}.cross_attn.q`, D, D), T);
    const ck = heads(linear(ctx, `${p}.cross_attn.k`, D, D), L);
    const cv = heads(linear(ctx, `${p}.cross_attn.v`, D, D), L);
    x = g.op('Add', [x, linear(merge(attention(cq, ck, cv)), `${p}.cross_attn.o`, D, D)]);
    // MLP
    const hm = g.op('Add', [g.op('Mul', [layerNorm(x), g.op('Add', [sc2!, f(1)])]), sh2!]);
    const mlp = linear(gelu(linear(hm, `${p}.ffn.0`, D, hidden)), `${p}.ffn.2`, hidden, D);
    x = g.op('Add', [x, g.op('Mul', [mlp, g2!])]);
  }

  // head and unpatchify: [B, T, C·ph·pw] -> [B, C, F, H, W]
  const out = linear(layerNorm(x), 'head.head', D, C * ph * pw);
  const r = g.op('Reshape', [out, i64([B, F, H / ph, W / pw, C, ph, pw])]);
  const tr = g.op('Transpose', [r], { perm: [0, 4, 1, 2, 5, 3, 6] });
  g.output(g.op('Reshape', [tr, i64([B, C, F, H, W])]), 'velocity');
  return g.toModel();
}
