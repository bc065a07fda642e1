/**
 * The toy denoiser: a Wan2.1-shaped video diffusion transformer at toy size. Conv3d patchify
 * (1×2×2) → F·(H/2)·(W/2) = 512 tokens of width 48 (plus a learnt per-frame code); sinusoidal timestep embedding → MLP → 6-way
 * modulation (shift/scale/gate of attention and feed-forward); per block self-attention with
 * RMS-normalised q/k and 3-D rotary positions, cross-attention to the projected text context,
 * tanh-GELU feed-forward; a modulated head; unpatchify to [B, C, F, H, W] as a clean-latent
 * prediction x̂0, returned as the velocity (x_σ − x̂0)/σ̃. Parameter names follow
 * Wan's PyTorch modules (`blocks.0.self_attn.q.weight`, stored [in, out]).
 *
 * Flow-matching convention: x_σ = (1−σ)·x0 + σ·ε, `timestep` = 1000σ, output `velocity` ≈ ε − x0.
 *
 * @example
 *   const { model, params } = buildDenoiser({ seed: 0 });           // random init
 *   const trained = buildDenoiser({ weights: readWeights(file) });   // committed weights
 */
import { GraphBuilder } from '../onnx/builder.js';
import { TOY } from './latent.js';
import { type BuiltModel, Net } from './nn.js';
import { LATENT } from './spaces.js';

export interface DenoiserShape {
  dim: number;
  heads: number;
  ffnDim: number;
  layers: number;
  /** Width of the sinusoidal timestep code. */
  freqDim: number;
  /** Patch size (frames, height, width). */
  patch: [number, number, number];
}

export const DENOISER_SHAPE: DenoiserShape = {
  dim: 48,
  heads: 4,
  ffnDim: 128,
  layers: 2,
  freqDim: 32,
  patch: [1, 2, 2],
};

export const DENOISER_SEED = 1;

/** Floor of the σ the clean-latent prediction is divided by (see the output of `buildDenoiser`). */
export const SIGMA_MIN = 0.05;

/**
 * σ̃ = sqrt(σ² + σ_min²): the velocity error is the clean-latent error over σ̃, so pretraining
 * weights the velocity MSE by σ̃² to train the clean-latent prediction evenly over σ.
 *
 * @example
 *   effectiveSigma(0.5); // ≈ 0.5025
 */
export function effectiveSigma(sigma: number): number {
  return Math.sqrt(sigma * sigma + SIGMA_MIN * SIGMA_MIN);
}

export interface DenoiserOptions {
  /** Trained weights by parameter name; missing ones get the seeded initial values. */
  weights?: ReadonlyMap<string, Float32Array>;
  seed?: number;
  shape?: DenoiserShape;
  /** Parameters as graph inputs (named like the initializers) — the training graph's form. */
  paramsAsInputs?: boolean;
  /** Batch dimension: symbolic 'B' (default) or a fixed size. */
  batch?: number | string;
  /**
   * Which latent space it generates: the analytic toy latents of latent.ts (default) or the
   * learned toy VAE's (spaces.ts: 8 channels), the learned world's denoiser_learned.onnx.
   */
  space?: 'analytic' | 'learned';
}

/**
 * cos/sin tables [N, 1, hd] of Wan's 3-D rotary embedding in rotate-half layout: of the hd/2
 * frequency pairs, the first hd/2 − 2·(hd/6 rounded down) rotate with the frame index, then
 * equal shares with the row and the column.
 */
export function ropeTables(
  grid: [number, number, number],
  headDim: number,
): { cos: Float32Array; sin: Float32Array } {
  const [gf, gh, gw] = grid;
  const half = headDim / 2;
  const hw = Math.floor(headDim / 6);
  const sections = [half - 2 * hw, hw, hw];
  const axisOf: number[] = [];
  const freqOf: number[] = [];
  sections.forEach((n, axis) => {
    for (let k = 0; k < n; k++) {
      axisOf.push(axis);
      freqOf.push(1 / 10000 ** ((2 * k) / (2 * n)));
    }
  });
  const N = gf * gh * gw;
  const cos = new Float32Array(N * headDim);
  const sin = new Float32Array(N * headDim);
  for (let f = 0; f < gf; f++) {
    for (let i = 0; i < gh; i++) {
      for (let j = 0; j < gw; j++) {
        const n = (f * gh + i) * gw + j;
        const pos = [f, i, j];
        for (let p = 0; p < half; p++) {
          const a = pos[axisOf[p]!]! * freqOf[p]!;
          for (const d of [p, p + half]) {
            cos[n * headDim + d] = Math.cos(a);
            sin[n * headDim + d] = Math.sin(a);
          }
        }
      }
    }
  }
  return { cos, sin };
}

/**
 * Build the denoiser: `latents` [B, C, F, H, W], `timestep` [B], `context` [B, L, D] → `velocity`.
 *
 * @example
 *   const { model } = buildDenoiser({ weights });
 *   saveModel(model, 'onnx/fixtures/denoiser.onnx');
 */
export function buildDenoiser(opts: DenoiserOptions = {}): BuiltModel {
  const S = opts.shape ?? DENOISER_SHAPE;
  const { contextLength: L, contextDim: D } = TOY;
  const { channels: C, frames: F, height: H, width: W } = opts.space === 'learned' ? LATENT : TOY;
  const [pf, ph, pw] = S.patch;
  const grid: [number, number, number] = [F / pf, H / ph, W / pw];
  const N = grid[0] * grid[1] * grid[2];
  const dim = S.dim;
  const hd = dim / S.heads;
  const B = opts.batch ?? 'B';
  const g = new GraphBuilder('toy_denoiser', 18);
  const net = new Net(g, {
    seed: opts.seed ?? DENOISER_SEED,
    weights: opts.weights,
    paramsAsInputs: opts.paramsAsInputs,
  });
  const latents = g.input('latents', 'float32', [B, C, F, H, W]);
  const timestep = g.input('timestep', 'float32', [B]);
  const context = g.input('context', 'float32', [B, L, D]);

  // Patchify: Conv3d → [B, dim, F', H', W'] → tokens [B, N, dim].
  const pwt = net.param('patch_embedding.weight', [dim, C, pf, ph, pw], {
    kind: 'normal',
    std: 1 / Math.sqrt(C * pf * ph * pw),
  });
  const pb = net.param('patch_embedding.bias', [dim], { kind: 'zeros' });
  const patches = net.op('Conv', [latents, pwt, pb], { kernel_shape: [pf, ph, pw], strides: [pf, ph, pw] });
  let x = net.transpose(net.reshape(patches, [0, dim, N]), [0, 2, 1]);
  // A learnt absolute frame code (Wan has none): rotary positions are only relative, and a toy
  // camera path depends on where in the clip a frame is.
  const frameEmb = net.param('frame_embedding.weight', [grid[0], 1, dim], { kind: 'normal', std: 0.3 });
  x = net.reshape(net.op('Add', [net.reshape(x, [0, grid[0], grid[1] * grid[2], dim]), frameEmb]), [
    0,
    N,
    dim,
  ]);

  // Timestep: sinusoidal code (cos, sin) → MLP → e [B, dim]; 6-way modulation e0 [B, 6, dim].
  const half = S.freqDim / 2;
  const freqs = Array.from({ length: half }, (_, k) => 10000 ** (-k / half));
  const arg = net.op('Mul', [net.op('Unsqueeze', [timestep, net.i64([1])]), net.c(freqs, [half])]);
  const tcode = net.op('Concat', [net.op('Cos', [arg]), net.op('Sin', [arg])], { axis: 1 });
  const e = net.linear(
    net.silu(net.linear(tcode, 'time_embedding.0', S.freqDim, dim)),
    'time_embedding.2',
    dim,
    dim,
  );
  const e0 = net.reshape(
    net.linear(net.silu(e), 'time_projection.1', dim, 6 * dim, { std: 0.1 / Math.sqrt(dim) }),
    [0, 6, dim],
  );

  // Text: context [B, L, D] → [B, L, dim].
  const ctx = net.linear(
    net.gelu(net.linear(context, 'text_embedding.0', D, dim)),
    'text_embedding.2',
    dim,
    dim,
  );

  const rope = ropeTables(grid, hd);
  const cos = net.c(rope.cos, [N, 1, hd]);
  const sin = net.c(rope.sin, [N, 1, hd]);
  const applyRope = (v: string) => {
    const [a, b] = net.split(v, 3, [hd / 2, hd / 2]) as [string, string];
    const rot = net.op('Concat', [net.op('Neg', [b]), a], { axis: 3 });
    return net.op('Add', [net.op('Mul', [v, cos]), net.op('Mul', [rot, sin])]);
  };
  const qScale = 1 / Math.sqrt(hd);

  /** Multi-head attention of queries [B, Nq, dim] over keys/values [B, Nk, dim]. */
  const attention = (
    name: string,
    xq: string,
    xkv: string,
    nq: number,
    nk: number,
    kvDim: number,
    rotary: boolean,
  ) => {
    let q = net.rmsNorm(net.linear(xq, `${name}.q`, dim, dim), dim, `${name}.norm_q`);
    let k = net.rmsNorm(net.linear(xkv, `${name}.k`, kvDim, dim), dim, `${name}.norm_k`);
    const v = net.linear(xkv, `${name}.v`, kvDim, dim);
    q = net.reshape(q, [0, nq, S.heads, hd]);
    k = net.reshape(k, [0, nk, S.heads, hd]);
    if (rotary) {
      q = applyRope(q);
      k = applyRope(k);
    }
    const qh = net.transpose(net.scale(q, qScale), [0, 2, 1, 3]);
    const kh = net.transpose(k, [0, 2, 3, 1]);
    const vh = net.transpose(net.reshape(v, [0, nk, S.heads, hd]), [0, 2, 1, 3]);
    const p = net.op('Softmax', [net.op('MatMul', [qh, kh])], { axis: -1 });
    const o = net.reshape(net.transpose(net.op('MatMul', [p, vh]), [0, 2, 1, 3]), [0, nq, dim]);
    return net.linear(o, `${name}.o`, dim, dim);
  };
  const modulate = (v: string, shift: string, scale: string) =>
    net.op('Add', [net.op('Mul', [v, net.op('Add', [scale, net.c([1])])]), shift]);

  for (let l = 0; l < S.layers; l++) {
    const p = `blocks.${l}`;
    const mod = net.param(`${p}.modulation`, [1, 6, dim], { kind: 'normal', std: 1 / Math.sqrt(dim) / 10 });
    const [shMsa, scMsa, gMsa, shMlp, scMlp, gMlp] = net.split(
      net.op('Add', [mod, e0]),
      1,
      [1, 1, 1, 1, 1, 1],
    ) as string[];
    const xn = modulate(net.layerNorm(x, dim), shMsa!, scMsa!);
    const y = attention(`${p}.self_attn`, xn, xn, N, N, dim, true);
    x = net.op('Add', [x, net.op('Mul', [y, gMsa!])]);
    const xc = net.layerNorm(x, dim, `${p}.norm3`);
    x = net.op('Add', [x, attention(`${p}.cross_attn`, xc, ctx, N, L, dim, false)]);
    const h = modulate(net.layerNorm(x, dim), shMlp!, scMlp!);
    const ffn = net.linear(net.gelu(net.linear(h, `${p}.ffn.0`, dim, S.ffnDim)), `${p}.ffn.2`, S.ffnDim, dim);
    x = net.op('Add', [x, net.op('Mul', [ffn, gMlp!])]);
  }

  // Head: modulated LayerNorm, Linear to patch values, unpatchify.
  const hmod = net.param('head.modulation', [1, 2, dim], { kind: 'normal', std: 1 / Math.sqrt(dim) / 10 });
  const [shift, scale] = net.split(
    net.op('Add', [hmod, net.op('Unsqueeze', [e, net.i64([1])])]),
    1,
    [1, 1],
  ) as [string, string];
  const out = net.linear(modulate(net.layerNorm(x, dim), shift, scale), 'head.head', dim, C * pf * ph * pw, {
    std: 0.1 / Math.sqrt(dim),
  });
  const blocks = net.reshape(out, [0, grid[0], grid[1], grid[2], pf, ph, pw, C]);
  const x0 = net.reshape(net.transpose(blocks, [0, 7, 1, 4, 2, 5, 3, 6]), [0, C, F, H, W]);
  // The transformer predicts the clean latent; v = (x_σ − x̂0)/σ̃ turns it into the velocity. A
  // 48-wide token cannot carry the 56 independent noise values of its patch, so an ε- or
  // v-predicting head leaves the noise in the sample; this skip passes it through exactly.
  // σ̃ = sqrt(σ² + σ_min²) keeps the division finite at σ = 0.
  const sigma = net.scale(timestep, 1 / 1000);
  const sigmaT = net.op('Sqrt', [
    net.op('Add', [net.op('Mul', [sigma, sigma]), net.c([SIGMA_MIN * SIGMA_MIN])]),
  ]);
  const velocity = net.op('Div', [net.op('Sub', [latents, x0]), net.reshape(sigmaT, [-1, 1, 1, 1, 1])]);
  g.output(velocity, 'velocity', 'float32', [B, C, F, H, W]);
  return { model: g.toModel('vggrpo toy fixtures'), params: net.params };
}
