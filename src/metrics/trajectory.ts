/**
 * Trajectory metrics of the paper's evaluation: ATE after Umeyama Sim(3) alignment, RPE over
 * consecutive frames, and the geodesic rotation error. Inputs are camera-from-world extrinsics
 * [F, 3, 4] (OpenCV axes, row-major), as the geometry shard stores them; centres c = −Rᵀt.
 *
 * Geometry models give scale-normalised poses in their own world frame, so every comparison
 * first aligns the estimated trajectory to the reference with a similarity transform.
 */
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { check } from '../errors.js';
import { det3, type Mat3, mul3, mulVec3, norm3, sub3, trace3, transpose3, type Vec3 } from './mat3.js';

/** y = scale · rotation · x + translation. */
export interface Sim3 {
  scale: number;
  rotation: Mat3;
  translation: Vec3;
}

type Extrinsics = Float32Array | Float64Array | readonly number[];

function frameCount(ext: Extrinsics, where: string): number {
  check(
    ext.length % 12 === 0 && ext.length > 0,
    where,
    `expected extrinsics [F, 3, 4], got ${ext.length} values`,
  );
  return ext.length / 12;
}

function rotationOf(ext: Extrinsics, f: number): Mat3 {
  const o = 12 * f;
  return [
    ext[o]!,
    ext[o + 1]!,
    ext[o + 2]!,
    ext[o + 4]!,
    ext[o + 5]!,
    ext[o + 6]!,
    ext[o + 8]!,
    ext[o + 9]!,
    ext[o + 10]!,
  ];
}

function translationOf(ext: Extrinsics, f: number): Vec3 {
  const o = 12 * f;
  return [ext[o + 3]!, ext[o + 7]!, ext[o + 11]!];
}

/**
 * Camera centres c_i = −R_iᵀ t_i of camera-from-world extrinsics [F, 3, 4], as [F, 3].
 *
 * @example
 *   const c = cameraCentres(geometry.extrinsics.data as Float32Array); // Float64Array(3F)
 */
export function cameraCentres(extrinsics: Extrinsics): Float64Array {
  const n = frameCount(extrinsics, 'cameraCentres');
  const out = new Float64Array(3 * n);
  for (let f = 0; f < n; f++) {
    const c = mulVec3(transpose3(rotationOf(extrinsics, f)), translationOf(extrinsics, f));
    out[3 * f] = -c[0];
    out[3 * f + 1] = -c[1];
    out[3 * f + 2] = -c[2];
  }
  return out;
}

/**
 * Geodesic angle (radians) between two rotations: arccos((tr(R₁ᵀR₂) − 1)/2), the argument
 * clamped to [−1, 1] so rounding never yields NaN, evaluated as atan2(sin θ, cos θ) for precision.
 *
 * @example
 *   geodesicRotationError(IDENTITY3, axisAngle([0, 0, 1], 0.1)); // 0.1
 */
export function geodesicRotationError(r1: readonly number[], r2: readonly number[]): number {
  const m = mul3(transpose3(r1), r2);
  const c = Math.min(1, Math.max(-1, (trace3(m) - 1) / 2));
  // arccos loses half the digits near 0 (float32 poses would read as ~0.03° apart); for a rotation
  // ‖vee(M − Mᵀ)‖/2 = sin θ, so atan2(sin, cos) gives the same angle to full precision.
  const s = Math.hypot(m[7]! - m[5]!, m[2]! - m[6]!, m[3]! - m[1]!) / 2;
  return Math.atan2(s, c);
}

/**
 * Umeyama (1991) least-squares similarity: the Sim(3) minimising Σ‖target_i − (s·R·source_i + t)‖².
 * Points are flat [N, 3]. With `withScale: false` s = 1 (an SE(3) fit). When the source points
 * all coincide the scale is undefined; s = 1 is returned (every s maps them to the target mean).
 *
 * @example
 *   const sim = umeyamaAlignment(estimatedCentres, referenceCentres);
 *   const aligned = applySim3(sim, estimatedCentres);
 */
export function umeyamaAlignment(
  source: ArrayLike<number>,
  target: ArrayLike<number>,
  opts: { withScale?: boolean } = {},
): Sim3 {
  check(source.length === target.length, 'umeyamaAlignment', 'source and target differ in length');
  check(source.length % 3 === 0 && source.length > 0, 'umeyamaAlignment', 'expected [N, 3] points');
  const n = source.length / 3;
  const muX = [0, 0, 0];
  const muY = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      muX[k]! += source[3 * i + k]! / n;
      muY[k]! += target[3 * i + k]! / n;
    }
  }
  // Σ = (1/n) Σ (y − μy)(x − μx)ᵀ and σx² = (1/n) Σ ‖x − μx‖².
  const cov = new Array<number>(9).fill(0);
  let varX = 0;
  for (let i = 0; i < n; i++) {
    const dx = sub3([source[3 * i]!, source[3 * i + 1]!, source[3 * i + 2]!], muX);
    const dy = sub3([target[3 * i]!, target[3 * i + 1]!, target[3 * i + 2]!], muY);
    varX += (dx[0] * dx[0] + dx[1] * dx[1] + dx[2] * dx[2]) / n;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) cov[3 * r + c]! += (dy[r]! * dx[c]!) / n;
  }
  const svd = new SingularValueDecomposition(new Matrix([cov.slice(0, 3), cov.slice(3, 6), cov.slice(6, 9)]));
  const U = svd.leftSingularVectors.to1DArray();
  const V = svd.rightSingularVectors.to1DArray();
  const d = svd.diagonal;
  // The reflection fix: S = diag(1, 1, −1) when det(U)·det(V) < 0, applied to the smallest singular value.
  const order = [0, 1, 2].sort((a, b) => d[b]! - d[a]!);
  const sign = det3(U) * det3(V) < 0 ? -1 : 1;
  const S = [1, 1, 1];
  S[order[2]!] = sign;
  const US = U.map((u, idx) => u * S[idx % 3]!);
  const rotation = mul3(US, transpose3(V));
  let scale = 1;
  if (opts.withScale !== false && varX > 1e-300) {
    scale = (d[0]! * S[0]! + d[1]! * S[1]! + d[2]! * S[2]!) / varX;
  }
  const rMuX = mulVec3(rotation, muX);
  const translation: Vec3 = [muY[0]! - scale * rMuX[0], muY[1]! - scale * rMuX[1], muY[2]! - scale * rMuX[2]];
  return { scale, rotation, translation };
}

/** Apply y = s·R·x + t to flat [N, 3] points. */
export function applySim3(sim: Sim3, points: ArrayLike<number>): Float64Array {
  const out = new Float64Array(points.length);
  for (let i = 0; i < points.length; i += 3) {
    const y = mulVec3(sim.rotation, [points[i]!, points[i + 1]!, points[i + 2]!]);
    for (let k = 0; k < 3; k++) out[i + k] = sim.scale * y[k]! + sim.translation[k]!;
  }
  return out;
}

export interface AteResult {
  /** √(mean ‖c_ref − (s·R·c_est + t)‖²), in the reference's units. */
  rmse: number;
  mean: number;
  max: number;
  /** Mean geodesic angle (degrees) between aligned estimated and reference camera orientations. */
  rotationMeanDeg: number;
  frames: number;
  alignment: Sim3;
}

/**
 * Absolute trajectory error: RMSE of camera centres after Umeyama Sim(3) alignment of the
 * estimated centres onto the reference ones. Also the mean orientation error after the same
 * alignment (world-from-camera rotations R_a·R_estᵀ against R_refᵀ).
 *
 * @example
 *   const { rmse } = absoluteTrajectoryError(estimatedExtrinsics, referenceExtrinsics);
 */
export function absoluteTrajectoryError(
  estimated: Extrinsics,
  reference: Extrinsics,
  opts: { withScale?: boolean } = {},
): AteResult {
  const n = frameCount(estimated, 'absoluteTrajectoryError: estimated');
  check(
    frameCount(reference, 'absoluteTrajectoryError: reference') === n,
    'absoluteTrajectoryError',
    'frame counts differ',
  );
  const ce = cameraCentres(estimated);
  const cr = cameraCentres(reference);
  const alignment = umeyamaAlignment(ce, cr, opts);
  const aligned = applySim3(alignment, ce);
  let sq = 0;
  let sum = 0;
  let max = 0;
  let rot = 0;
  for (let f = 0; f < n; f++) {
    const e = norm3(sub3(aligned.subarray(3 * f, 3 * f + 3), cr.subarray(3 * f, 3 * f + 3)));
    sq += e * e;
    sum += e;
    max = Math.max(max, e);
    const worldFromCamEst = mul3(alignment.rotation, transpose3(rotationOf(estimated, f)));
    rot += geodesicRotationError(transpose3(rotationOf(reference, f)), worldFromCamEst);
  }
  return {
    rmse: Math.sqrt(sq / n),
    mean: sum / n,
    max,
    rotationMeanDeg: ((rot / n) * 180) / Math.PI,
    frames: n,
    alignment,
  };
}

export interface RpeResult {
  /** RMSE over pairs of the translation part of the relative-motion error, in reference units. */
  translationRmse: number;
  translationMean: number;
  /** Mean over pairs of the geodesic angle of the relative-motion error, in degrees. */
  rotationMeanDeg: number;
  rotationRmseDeg: number;
  pairs: number;
  /** The scale applied to the estimated translations (Umeyama's s unless given). */
  scale: number;
}

/**
 * Relative pose error over frame pairs (i, i+δ), δ = `delta` (default 1: consecutive frames).
 *
 * Definition: with camera-from-world E_i = [R_i | t_i], the relative motion from camera i+δ to
 * camera i is Q_i = E_i·E_{i+δ}⁻¹ = [R_i R_{i+δ}ᵀ | s·R_i(c_{i+δ} − c_i)], with s = 1 for the
 * reference and s = the trajectory's Sim(3) scale (Umeyama of the centres, or `opts.scale`) for
 * the estimate, since estimated poses are only defined up to scale. The error is
 * Δ_i = Q_ref,i⁻¹·Q_est,i; translation error ‖trans(Δ_i)‖ = ‖t_est,i − t_ref,i‖ (rotation-invariant),
 * rotation error = geodesic angle of rot(Δ_i) = angle between the two relative rotations.
 * Being relative, it does not depend on either world frame.
 *
 * @example
 *   const { translationRmse, rotationMeanDeg } = relativePoseError(est, ref);
 */
export function relativePoseError(
  estimated: Extrinsics,
  reference: Extrinsics,
  opts: { delta?: number; scale?: number } = {},
): RpeResult {
  const n = frameCount(estimated, 'relativePoseError: estimated');
  check(
    frameCount(reference, 'relativePoseError: reference') === n,
    'relativePoseError',
    'frame counts differ',
  );
  const delta = opts.delta ?? 1;
  check(
    Number.isInteger(delta) && delta >= 1 && delta < n,
    'relativePoseError',
    `delta ${delta} needs 1 ≤ δ < ${n}`,
  );
  const ce = cameraCentres(estimated);
  const cr = cameraCentres(reference);
  const scale = opts.scale ?? umeyamaAlignment(ce, cr).scale;
  let tSq = 0;
  let tSum = 0;
  let rSum = 0;
  let rSq = 0;
  const pairs = n - delta;
  for (let i = 0; i < pairs; i++) {
    const j = i + delta;
    const re = rotationOf(estimated, i);
    const rr = rotationOf(reference, i);
    const te = mulVec3(re, sub3(ce.subarray(3 * j, 3 * j + 3), ce.subarray(3 * i, 3 * i + 3)));
    const tr = mulVec3(rr, sub3(cr.subarray(3 * j, 3 * j + 3), cr.subarray(3 * i, 3 * i + 3)));
    const et = norm3([scale * te[0] - tr[0], scale * te[1] - tr[1], scale * te[2] - tr[2]]);
    tSq += et * et;
    tSum += et;
    const qe = mul3(re, transpose3(rotationOf(estimated, j)));
    const qr = mul3(rr, transpose3(rotationOf(reference, j)));
    const er = (geodesicRotationError(qr, qe) * 180) / Math.PI;
    rSum += er;
    rSq += er * er;
  }
  return {
    translationRmse: Math.sqrt(tSq / pairs),
    translationMean: tSum / pairs,
    rotationMeanDeg: rSum / pairs,
    rotationRmseDeg: Math.sqrt(rSq / pairs),
    pairs,
    scale,
  };
}
