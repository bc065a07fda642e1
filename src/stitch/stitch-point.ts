/**
 * Choosing the stitch point ℓ (`--at auto`), VIST3A's recipe (onnx/README.md, Stitching): for
 * each candidate tensor of Φ (`tokenizer.output`, `blocks.N.output`, in graph order) fit a ridge
 * linear map from the latents — per token, the latent patch under it — to Φ_{1:ℓ}(x) on the
 * training videos, score it by relative MSE on the held-out videos, and pick the lowest. The
 * relative MSE Σ‖Ŷ − Y‖² / Σ(Y − Ȳ)² (Ȳ the training mean of all of the tensor's values: the MSE
 * over the tensor's variance, as the phases' losses are) is 0 for a perfect map and about 1 for
 * one that predicts a constant, so tensors of different scale compare fairly.
 *
 * @example
 *   const names = stitchCandidates(phi);             // ['tokenizer.output', 'blocks.0.output', …]
 *   const fit = new RidgeFit(8 * 4 + 1, 64);
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { RuntimeFailure } from '../errors.js';
import { tensorNames } from '../onnx/cut.js';
import type { ModelProto } from '../onnx/proto.js';
import type { StitchLayout } from './connector.js';

const CANDIDATE = /^(tokenizer\.output|blocks\.\d+\.output)$/;

/**
 * Φ's stitch-point candidates in graph order.
 *
 * @example
 *   stitchCandidates(loadModel('onnx/fixtures/geometry_rgb.onnx'));
 */
export function stitchCandidates(model: ModelProto): string[] {
  return tensorNames(model).filter((n) => CANDIDATE.test(n));
}

/** The token grid [F', h, w] and the patch [s_h, s_w] of latent cells under one token. */
export interface TokenGrid {
  frames: number;
  height: number;
  width: number;
  patch: [number, number];
}

/**
 * Per-token features of one latent sample [C, F', H, W]: the C·s_h·s_w values of the patch under
 * the token (zero outside the latent), then a 1 for the bias; rows frame-major, row-major.
 *
 * @example
 *   const X = patchFeatures(latents, [8, 8, 16, 16], { frames: 8, height: 8, width: 8, patch: [2, 2] });
 */
export function patchFeatures(
  latents: Float32Array,
  shape: readonly number[],
  grid: TokenGrid,
): Float64Array {
  const [C, , H, W] = shape as [number, number, number, number];
  const [sh, sw] = grid.patch;
  const P1 = C * sh * sw + 1;
  const N = grid.frames * grid.height * grid.width;
  const X = new Float64Array(N * P1);
  let t = 0;
  for (let f = 0; f < grid.frames; f++) {
    for (let i = 0; i < grid.height; i++) {
      for (let j = 0; j < grid.width; j++, t++) {
        const row = t * P1;
        for (let c = 0; c < C; c++) {
          for (let a = 0; a < sh; a++) {
            const y = sh * i + a;
            for (let b = 0; b < sw; b++) {
              const x = sw * j + b;
              if (y < H && x < W)
                X[row + (c * sh + a) * sw + b] = latents[((c * shape[1]! + f) * H + y) * W + x]!;
            }
          }
        }
        X[row + P1 - 1] = 1;
      }
    }
  }
  return X;
}

/**
 * One sample's stitch tensor as token rows [N, D]: tokens layout [N, D] as is, a grid [D, F', h, w] transposed.
 *
 * @example
 *   const Y = tokenRows(feature, 512, 64, 'grid');
 */
export function tokenRows(
  feature: Float32Array,
  tokens: number,
  width: number,
  layout: StitchLayout,
): Float32Array {
  if (layout === 'tokens') return feature;
  const out = new Float32Array(tokens * width);
  for (let d = 0; d < width; d++)
    for (let t = 0; t < tokens; t++) out[t * width + d] = feature[d * tokens + t]!;
  return out;
}

/**
 * Ridge regression Y ≈ X·M accumulated row by row (XᵀX and XᵀY in float64), solved by Cholesky.
 * The penalty is λ times the mean diagonal of XᵀX, on every coefficient but the bias.
 *
 * @example
 *   const r = new RidgeFit(33, 64); r.add(X, Y, 512); const M = r.solve(1e-3);
 */
export class RidgeFit {
  private readonly xtx: Float64Array;
  private readonly xty: Float64Array;
  private readonly ySum: Float64Array;
  private rows = 0;

  constructor(
    readonly features: number,
    readonly outputs: number,
  ) {
    this.xtx = new Float64Array(features * features);
    this.xty = new Float64Array(features * outputs);
    this.ySum = new Float64Array(outputs);
  }

  /** Add `n` rows: X [n, features], Y [n, outputs]. */
  add(X: Float64Array, Y: Float32Array, n: number): void {
    const P = this.features;
    const D = this.outputs;
    for (let r = 0; r < n; r++) {
      const x = r * P;
      const y = r * D;
      for (let a = 0; a < P; a++) {
        const xa = X[x + a]!;
        if (xa === 0) continue;
        for (let b = a; b < P; b++) this.xtx[a * P + b]! += xa * X[x + b]!;
        for (let d = 0; d < D; d++) this.xty[a * D + d]! += xa * Y[y + d]!;
      }
      for (let d = 0; d < D; d++) this.ySum[d]! += Y[y + d]!;
    }
    this.rows += n;
  }

  /** The training mean of each output (the baseline of the relative MSE). */
  mean(): Float64Array {
    return this.ySum.map((s) => s / Math.max(1, this.rows));
  }

  /** The map M [features, outputs]. */
  solve(lambda: number): Float64Array {
    const P = this.features;
    const A = new Matrix(P, P);
    let trace = 0;
    for (let a = 0; a < P - 1; a++) trace += this.xtx[a * P + a]!;
    const pen = (lambda * trace) / Math.max(1, P - 1) + 1e-12;
    for (let a = 0; a < P; a++) {
      for (let b = a; b < P; b++) {
        const v = this.xtx[a * P + b]!;
        A.set(a, b, v);
        A.set(b, a, v);
      }
      if (a < P - 1) A.set(a, a, A.get(a, a) + pen);
    }
    const B = new Matrix(P, this.outputs);
    for (let a = 0; a < P; a++)
      for (let d = 0; d < this.outputs; d++) B.set(a, d, this.xty[a * this.outputs + d]!);
    const chol = new CholeskyDecomposition(A);
    if (!chol.isPositiveDefinite())
      throw new RuntimeFailure('stitch: the ridge system is not positive definite');
    return Float64Array.from(chol.solve(B).to1DArray());
  }
}

/** Sums of a relative MSE, accumulated over held-out samples. */
export class RelativeError {
  private err = 0;
  private base = 0;

  constructor(private readonly mean: Float64Array) {}

  /** Add predictions and targets (rows of `mean.length` values). */
  add(pred: ArrayLike<number>, target: ArrayLike<number>): void {
    const D = this.mean.length;
    for (let i = 0; i < target.length; i++) {
      this.err += (pred[i]! - target[i]!) ** 2;
      this.base += (target[i]! - this.mean[i % D]!) ** 2;
    }
  }

  /** Σ‖Ŷ − Y‖² / Σ‖Y − Ȳ‖². */
  value(): number {
    return this.err / Math.max(this.base, 1e-30);
  }
}

/**
 * Predictions X·M of a ridge map for `n` rows.
 *
 * @example
 *   const Yhat = applyMap(X, M, 512, 33, 64);
 */
export function applyMap(X: Float64Array, M: Float64Array, n: number, P: number, D: number): Float64Array {
  const out = new Float64Array(n * D);
  for (let r = 0; r < n; r++) {
    for (let a = 0; a < P; a++) {
      const xa = X[r * P + a]!;
      if (xa === 0) continue;
      for (let d = 0; d < D; d++) out[r * D + d]! += xa * M[a * D + d]!;
    }
  }
  return out;
}
