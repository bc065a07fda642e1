/**
 * Linear probes: how much of a target (a camera's centre and rotation) a ridge regression
 * recovers from features (per-frame statistics of a latent or of RGB frames), scored by R² on a
 * held-out split. A latent that hands a geometry reward its answer (explicit camera channels)
 * probes at R² ≈ 1; one that holds only appearance probes low.
 *
 * @example
 *   const r2 = linearProbeR2(trainX, trainY, testX, testY);
 */
import { Matrix, solve } from 'ml-matrix';

/** A fitted ridge regression y ≈ ((x − mean) / scale)·W + intercept. */
export interface RidgeModel {
  mean: Float64Array;
  scale: Float64Array;
  weights: Matrix;
  intercept: Float64Array;
}

function columnMoments(
  rows: readonly ArrayLike<number>[],
  d: number,
): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) mean[j]! += r[j]! / rows.length;
  for (const r of rows) for (let j = 0; j < d; j++) std[j]! += (r[j]! - mean[j]!) ** 2 / rows.length;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!);
  return { mean, std };
}

/**
 * Ridge regression of `y` on `x` with penalty `lambda`·n on standardised features (so λ does not
 * depend on the features' units or the sample count) and an unpenalised intercept.
 *
 * @example
 *   const m = fitRidge([[0], [1], [2]], [[1], [3], [5]], 0); // y = 2x + 1
 */
export function fitRidge(
  x: readonly ArrayLike<number>[],
  y: readonly ArrayLike<number>[],
  lambda = 1e-3,
): RidgeModel {
  const n = x.length;
  if (n === 0 || y.length !== n) throw new Error(`fitRidge: ${n} feature rows for ${y.length} targets`);
  const d = x[0]!.length;
  const k = y[0]!.length;
  const { mean, std } = columnMoments(x, d);
  // A constant feature carries nothing: scale 1 leaves its standardised column at zero.
  const scale = std.map((s) => (s > 1e-12 ? s : 1));
  const ym = columnMoments(y, k).mean;
  const X = new Matrix(x.map((r) => Array.from({ length: d }, (_, j) => (r[j]! - mean[j]!) / scale[j]!)));
  const Y = new Matrix(y.map((r) => Array.from({ length: k }, (_, j) => r[j]! - ym[j]!)));
  const Xt = X.transpose();
  const A = Xt.mmul(X);
  for (let j = 0; j < d; j++) A.set(j, j, A.get(j, j) + lambda * n);
  return { mean, scale, weights: solve(A, Xt.mmul(Y)), intercept: ym };
}

/**
 * Predictions of a fitted ridge model, one row per feature row.
 *
 * @example
 *   predictRidge(fitRidge(x, y), [[3]]); // [[7]]
 */
export function predictRidge(m: RidgeModel, x: readonly ArrayLike<number>[]): number[][] {
  const d = m.mean.length;
  const k = m.intercept.length;
  return x.map((r) => {
    const out = Array.from(m.intercept);
    for (let j = 0; j < d; j++) {
      const z = (r[j]! - m.mean[j]!) / m.scale[j]!;
      for (let c = 0; c < k; c++) out[c]! += z * m.weights.get(j, c);
    }
    return out;
  });
}

/**
 * Coefficient of determination 1 − SS_res/SS_tot of each target column (SS_tot about the
 * column's own mean), averaged over the columns that vary; columns with no variance are skipped
 * (R² is undefined for them). NaN when none varies.
 *
 * @example
 *   rSquared([[1], [2], [3]], [[1], [2], [4]]); // 1 − 1/2 = 0.5
 */
export function rSquared(yTrue: readonly ArrayLike<number>[], yPred: readonly ArrayLike<number>[]): number {
  const k = yTrue[0]?.length ?? 0;
  const { mean } = columnMoments(yTrue, k);
  let sum = 0;
  let used = 0;
  for (let c = 0; c < k; c++) {
    let res = 0;
    let tot = 0;
    for (let i = 0; i < yTrue.length; i++) {
      res += (yTrue[i]![c]! - yPred[i]![c]!) ** 2;
      tot += (yTrue[i]![c]! - mean[c]!) ** 2;
    }
    if (tot <= 1e-12 * yTrue.length) continue;
    sum += 1 - res / tot;
    used++;
  }
  return used ? sum / used : Number.NaN;
}

/**
 * Held-out R² of a ridge probe fitted on (trainX, trainY) and scored on (testX, testY).
 *
 * @example
 *   const r2 = linearProbeR2(trainFeatures, trainCameras, testFeatures, testCameras);
 */
export function linearProbeR2(
  trainX: readonly ArrayLike<number>[],
  trainY: readonly ArrayLike<number>[],
  testX: readonly ArrayLike<number>[],
  testY: readonly ArrayLike<number>[],
  lambda = 1e-3,
): number {
  return rSquared(testY, predictRidge(fitRidge(trainX, trainY, lambda), testX));
}

/**
 * Per-frame statistics of a multi-channel video: for each frame, every channel's mean and then
 * every channel's standard deviation over its `plane` positions (2·channels features). `layout`
 * says how the array is ordered: 'CF' for latents [C, F, plane], 'FC' for frames [F, C, plane].
 *
 * @example
 *   const feats = frameChannelStats(latents, 8, 8, 256, 'CF'); // 8 rows of 16
 */
export function frameChannelStats(
  data: ArrayLike<number>,
  channels: number,
  frames: number,
  plane: number,
  layout: 'CF' | 'FC',
): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let f = 0; f < frames; f++) {
    const row = new Float64Array(2 * channels);
    for (let c = 0; c < channels; c++) {
      const o = (layout === 'CF' ? c * frames + f : f * channels + c) * plane;
      let s = 0;
      let s2 = 0;
      for (let p = 0; p < plane; p++) {
        const v = data[o + p]!;
        s += v;
        s2 += v * v;
      }
      const m = s / plane;
      row[c] = m;
      row[channels + c] = Math.sqrt(Math.max(s2 / plane - m * m, 0));
    }
    rows.push(row);
  }
  return rows;
}
