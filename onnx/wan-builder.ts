/**
 * A denoiser with Wan2.1-T2V-1.3B's architecture, written with the project's GraphBuilder under
 * the denoiser contract (onnx/README.md §1): latents [B, 16, F, H, W], timestep [B], context
 * [B, 512, 4096] → velocity. 30 blocks of width 1536, 12 heads, FFN 8960; Conv3d patchify
 * 1×2×2; Wan's text embedding MLP (Linear, tanh-GELU, Linear) and time embedding (sinusoidal
 * 256 → Linear, SiLU, Linear) with the 6-way modulation projection; per block: modulated
 * LayerNorm, self-attention with RMS-normed q/k and 3-D RoPE (Wan's interleaved pairs: 22
 * frequency pairs on frames, 21 on rows, 21 on columns), affine LayerNorm + cross-attention
 * (RMS-normed q/k), modulated LayerNorm + tanh-GELU FFN; the modulated head and unpatchify.
 * Module names are Wan's (and src/toy/denoiser.ts's): `blocks.0.self_attn.q.weight`, stored
 * [in, out] (a user's PyTorch weights [out, in] are transposed on load).
 *
 * Weights are random (scaled like PyTorch's defaults, seeded per tensor) or read from a
 * safetensors file with Wan's names (`--weights`, any of F32/F16/BF16; missing ones are an
 * error). Every tensor of 1 KB or more is streamed into `<out>.data` one at a time, so the
 * 5.2 GB float32 model is written without holding it in memory.
 *
 * `--dtype float16|bfloat16` writes the model as an export in that precision would be (half the
 * external data; sample and grpo-step take it as onnx/README.md, "Half-precision exports", says).
 *
 *   npx tsx onnx/wan-builder.ts --out /tmp/wan/denoiser.onnx [--blocks 30] [--latent 5,20,36] [--weights wan.safetensors] [--dtype float16]
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ELEM_TYPE, GraphBuilder } from '../src/onnx/builder.js';
import { floatToBf16, floatToHalf } from '../src/onnx/half.js';
import { encodeModel } from '../src/onnx/model.js';
import { type Precision, toHalfModel } from '../src/onnx/precision.js';
import { DataType, type TensorProto } from '../src/onnx/proto.js';
import { readSafetensors } from '../src/shards/safetensors.js';
import { toFloat32 } from '../src/shards/tensor.js';
import { ropeTables } from '../src/toy/denoiser.js';
import { Net } from '../src/toy/nn.js';

export interface WanShape {
  blocks: number;
  dim: number;
  heads: number;
  ffnDim: number;
  freqDim: number;
  channels: number;
  textLength: number;
  textDim: number;
  patch: [number, number, number];
}

/** Wan2.1-T2V-1.3B (its config.json: dim 1536, ffn_dim 8960, num_heads 12, num_layers 30). */
export const WAN_1_3B: WanShape = {
  blocks: 30,
  dim: 1536,
  heads: 12,
  ffnDim: 8960,
  freqDim: 256,
  channels: 16,
  textLength: 512,
  textDim: 4096,
  patch: [1, 2, 2],
};

export interface WanBuildOptions {
  /** The .onnx path; the data file is written beside it. */
  out: string;
  /** Latent frames, height, width (17 frames at 160×288: 5, 20, 36). */
  latent: [number, number, number];
  shape?: WanShape;
  seed?: number;
  /** A safetensors file with Wan's parameter names (PyTorch layout). */
  weights?: string;
  /** The export's precision (float16/bfloat16: weights, constants, inputs and outputs). Default float32. */
  dtype?: Precision;
}

export interface WanBuildResult {
  path: string;
  params: number;
  dataBytes: number;
}

type Init = { std: number } | 'zeros' | 'ones';

const HALF_BITS: Record<number, (v: number) => number> = {
  [DataType.FLOAT16]: floatToHalf,
  [DataType.BFLOAT16]: floatToBf16,
};

/** Parameters streamed to the data file (or kept inline under 1 KB), random or from a user's file. */
class ParamSink {
  readonly fd: number;
  offset = 0;
  count = 0;
  constructor(
    readonly g: GraphBuilder,
    readonly dataFile: string,
    readonly seed: number,
    readonly weights?: string,
    /** ONNX element type of the streamed weights. */
    readonly et: number = DataType.FLOAT,
  ) {
    this.fd = openSync(dataFile, 'w');
  }

  param(name: string, shape: number[], init: Init, linear = false): string {
    const n = shape.reduce((a, d) => a * d, 1);
    const value = this.weights ? this.load(name, shape, linear) : random(name, n, init, this.seed);
    this.count += n;
    if (value.byteLength < 1024) return this.g.init(name, value, shape);
    const stored = this.et === DataType.FLOAT ? value : Uint16Array.from(value, HALF_BITS[this.et]!);
    const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    if (this.g.fresh(name) !== name) throw new Error(`wan-builder: name '${name}' used twice`);
    const pad = (4096 - (this.offset % 4096)) % 4096;
    if (pad) writeSync(this.fd, new Uint8Array(pad));
    this.offset += pad;
    writeSync(this.fd, bytes);
    const t: TensorProto = {
      name,
      dims: shape,
      dataType: this.et,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: basename(this.dataFile) },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(bytes.length) },
      ],
    };
    this.offset += bytes.length;
    this.g.graph.initializer!.push(t);
    return name;
  }

  /** A user's tensor as float32, Linear weights transposed from PyTorch's [out, in]. */
  private load(name: string, shape: number[], linear: boolean): Float32Array {
    const t = readSafetensors(this.weights!, { select: (k) => k === name }).tensors.get(name);
    if (!t) throw new Error(`${this.weights}: no tensor '${name}'`);
    const want = linear ? [shape[1]!, shape[0]!] : shape;
    if (t.shape.join() !== want.join())
      throw new Error(`${this.weights}: '${name}' is [${t.shape}], expected [${want}]`);
    const v = toFloat32(t);
    if (!linear) return v;
    const [rows, cols] = want as [number, number];
    const out = new Float32Array(v.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Seeded values with the init's standard deviation (uniform: fast enough for 1.4 B values). */
function random(name: string, n: number, init: Init, seed: number): Float32Array {
  const out = new Float32Array(n);
  if (init === 'zeros') return out;
  if (init === 'ones') return out.fill(1);
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  const a = init.std * Math.sqrt(3);
  let s = h || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
  return out;
}

/**
 * Write the Wan-shaped denoiser to `opts.out` (+ `.data`).
 *
 * @example
 *   writeWanDenoiser({ out: '/tmp/wan/denoiser.onnx', latent: [5, 20, 36], shape: { ...WAN_1_3B, blocks: 2 } });
 */
export function writeWanDenoiser(opts: WanBuildOptions): WanBuildResult {
  const S = opts.shape ?? WAN_1_3B;
  const [F, H, W] = opts.latent;
  const [pf, ph, pw] = S.patch;
  const grid: [number, number, number] = [F / pf, H / ph, W / pw];
  const N = grid[0] * grid[1] * grid[2];
  const { dim, heads, channels: C, textLength: L, textDim: D } = S;
  const hd = dim / heads;
  const path = resolve(opts.out);
  mkdirSync(dirname(path), { recursive: true });
  const g = new GraphBuilder('wan2.1_t2v_denoiser', 18);
  const net = new Net(g, { seed: 0 });
  const et = ELEM_TYPE[opts.dtype ?? 'float32'];
  const sink = new ParamSink(g, `${path}.data`, opts.seed ?? 0, opts.weights, et);
  const P = (name: string, shape: number[], init: Init) => sink.param(name, shape, init);
  const linear = (x: string, name: string, inDim: number, outDim: number) => {
    const w = sink.param(`${name}.weight`, [inDim, outDim], { std: 1 / Math.sqrt(inDim) }, true);
    return net.op('Add', [net.op('MatMul', [x, w]), P(`${name}.bias`, [outDim], 'zeros')]);
  };
  const rmsNorm = (x: string, name: string) => {
    const ms = net.op('ReduceMean', [net.op('Mul', [x, x]), net.i64([-1])], { keepdims: 1 });
    const rms = net.op('Sqrt', [net.op('Add', [ms, net.c([1e-6])])]);
    return net.op('Mul', [net.op('Div', [x, rms]), P(`${name}.weight`, [dim], 'ones')]);
  };
  const modulate = (v: string, shift: string, scale: string) =>
    net.op('Add', [net.op('Mul', [v, net.op('Add', [scale, net.c([1])])]), shift]);

  const B = 'B';
  const latents = g.input('latents', 'float32', [B, C, F, H, W]);
  const timestep = g.input('timestep', 'float32', [B]);
  const context = g.input('context', 'float32', [B, L, D]);

  // Patchify: Conv3d (kernel = stride = patch) → tokens [B, N, dim] in (f, h, w) order.
  const fanIn = C * pf * ph * pw;
  const pwt = P('patch_embedding.weight', [dim, C, pf, ph, pw], { std: 1 / Math.sqrt(fanIn) });
  const patches = net.op('Conv', [latents, pwt, P('patch_embedding.bias', [dim], 'zeros')], {
    kernel_shape: [pf, ph, pw],
    strides: [pf, ph, pw],
  });
  let x = net.transpose(net.reshape(patches, [0, dim, N]), [0, 2, 1]);

  // Time: sinusoidal (cos, sin) of 256 → e [B, dim]; e0 = projection of SiLU(e) → [B, 6, dim].
  const half = S.freqDim / 2;
  const freqs = Array.from({ length: half }, (_, k) => 10000 ** (-k / half));
  const arg = net.op('Mul', [net.op('Unsqueeze', [timestep, net.i64([1])]), net.c(freqs, [half])]);
  const tcode = net.op('Concat', [net.op('Cos', [arg]), net.op('Sin', [arg])], { axis: 1 });
  const e = linear(net.silu(linear(tcode, 'time_embedding.0', S.freqDim, dim)), 'time_embedding.2', dim, dim);
  const e0 = net.reshape(linear(net.silu(e), 'time_projection.1', dim, 6 * dim), [0, 6, dim]);
  // Text: [B, L, 4096] → [B, L, dim].
  const ctx = linear(net.gelu(linear(context, 'text_embedding.0', D, dim)), 'text_embedding.2', dim, dim);

  // RoPE on interleaved pairs (Wan's complex view): tables [N, 1, hd/2, 1].
  const rope = ropeTables(grid, hd);
  const cosT = new Float32Array(N * (hd / 2));
  const sinT = new Float32Array(N * (hd / 2));
  for (let n = 0; n < N; n++) {
    cosT.set(rope.cos.subarray(n * hd, n * hd + hd / 2), n * (hd / 2));
    sinT.set(rope.sin.subarray(n * hd, n * hd + hd / 2), n * (hd / 2));
  }
  const cos = net.c(cosT, [N, 1, hd / 2, 1]);
  const sin = net.c(sinT, [N, 1, hd / 2, 1]);
  const applyRope = (v: string) => {
    const [a, b] = net.split(net.reshape(v, [0, N, heads, hd / 2, 2]), 4, [1, 1]) as [string, string];
    const re = net.op('Sub', [net.op('Mul', [a, cos]), net.op('Mul', [b, sin])]);
    const im = net.op('Add', [net.op('Mul', [a, sin]), net.op('Mul', [b, cos])]);
    return net.reshape(net.op('Concat', [re, im], { axis: 4 }), [0, N, heads, hd]);
  };
  const attention = (name: string, xq: string, xkv: string, nk: number, rotary: boolean) => {
    let q = net.reshape(rmsNorm(linear(xq, `${name}.q`, dim, dim), `${name}.norm_q`), [0, N, heads, hd]);
    let k = net.reshape(rmsNorm(linear(xkv, `${name}.k`, dim, dim), `${name}.norm_k`), [0, nk, heads, hd]);
    const v = net.reshape(linear(xkv, `${name}.v`, dim, dim), [0, nk, heads, hd]);
    if (rotary) {
      q = applyRope(q);
      k = applyRope(k);
    }
    const qh = net.transpose(net.scale(q, 1 / Math.sqrt(hd)), [0, 2, 1, 3]);
    const p = net.op('Softmax', [net.op('MatMul', [qh, net.transpose(k, [0, 2, 3, 1])])], { axis: -1 });
    const o = net.op('MatMul', [p, net.transpose(v, [0, 2, 1, 3])]);
    return linear(net.reshape(net.transpose(o, [0, 2, 1, 3]), [0, N, dim]), `${name}.o`, dim, dim);
  };

  for (let l = 0; l < S.blocks; l++) {
    const p = `blocks.${l}`;
    const mod = P(`${p}.modulation`, [1, 6, dim], { std: 1 / Math.sqrt(dim) });
    const [shA, scA, gA, shF, scF, gF] = net.split(
      net.op('Add', [mod, e0]),
      1,
      [1, 1, 1, 1, 1, 1],
    ) as string[];
    const xn = modulate(net.layerNorm(x, dim), shA!, scA!);
    const y = attention(`${p}.self_attn`, xn, xn, N, true);
    x = net.op('Add', [x, net.op('Mul', [y, gA!])]);
    const w3 = P(`${p}.norm3.weight`, [dim], 'ones');
    const xc = net.op('LayerNormalization', [x, w3, P(`${p}.norm3.bias`, [dim], 'zeros')], {
      axis: -1,
      epsilon: 1e-6,
    });
    x = net.op('Add', [x, attention(`${p}.cross_attn`, xc, ctx, L, false)]);
    const h = modulate(net.layerNorm(x, dim), shF!, scF!);
    const ffn = linear(net.gelu(linear(h, `${p}.ffn.0`, dim, S.ffnDim)), `${p}.ffn.2`, S.ffnDim, dim);
    x = net.op('Add', [x, net.op('Mul', [ffn, gF!])]);
  }

  // Head: modulation [1, 2, dim] + e → shift, scale; Linear to patch values; unpatchify.
  const hmod = P('head.modulation', [1, 2, dim], { std: 1 / Math.sqrt(dim) });
  const [shift, scale] = net.split(
    net.op('Add', [hmod, net.op('Unsqueeze', [e, net.i64([1])])]),
    1,
    [1, 1],
  ) as [string, string];
  const out = linear(modulate(net.layerNorm(x, dim), shift, scale), 'head.head', dim, C * pf * ph * pw);
  const blocks = net.reshape(out, [0, grid[0], grid[1], grid[2], pf, ph, pw, C]);
  const velocity = net.reshape(net.transpose(blocks, [0, 7, 1, 4, 2, 5, 3, 6]), [0, C, F, H, W]);
  g.output(velocity, 'velocity', 'float32', [B, C, F, H, W]);
  sink.close();
  const model = g.toModel('vggrpo onnx/wan-builder.ts');
  // the small tensors, constants and the inputs/outputs follow the streamed weights' precision
  writeFileSync(path, encodeModel(et === DataType.FLOAT ? model : toHalfModel(model, et)));
  return { path, params: sink.count, dataBytes: sink.offset };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      blocks: { type: 'string', default: '30' },
      latent: { type: 'string', default: '5,20,36' },
      weights: { type: 'string' },
      seed: { type: 'string', default: '0' },
      dtype: { type: 'string', default: 'float32' },
    },
  });
  if (!values.out || !['float32', 'float16', 'bfloat16'].includes(values.dtype)) {
    process.stderr.write(
      'usage: npx tsx onnx/wan-builder.ts --out DIR/denoiser.onnx [--blocks 30] [--latent F,H,W] [--weights FILE] [--dtype float32|float16|bfloat16]\n',
    );
    process.exit(2);
  }
  const latent = values.latent.split(',').map(Number) as [number, number, number];
  const r = writeWanDenoiser({
    out: values.out,
    latent,
    shape: { ...WAN_1_3B, blocks: Number(values.blocks) },
    weights: values.weights,
    seed: Number(values.seed),
    dtype: values.dtype as Precision,
  });
  process.stdout.write(
    `${r.path}: ${r.params} parameters, ${(r.dataBytes / 2 ** 30).toFixed(2)} GiB of external data\n`,
  );
}
