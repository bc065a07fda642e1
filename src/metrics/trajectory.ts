/**
 * Trajectory metrics of the paper's evaluation: ATE after Umeyama Sim(3) alignment, RPE over
 * consecutive frames, and the rotation error (geodesicAngle of src/geometry/so3.ts). Inputs are
 * camera-from-world extrinsics [F, 3, 4] (OpenCV axes, row-major), as the geometry shard stores
 * them; centres c = −Rᵀt (cameraCentres of src/geometry/cameras.ts).
 *
 * Geometry models give scale-normalised poses in their own world frame, so every comparison
 * first aligns the estimated trajectory to the reference with a similarity transform.
 */
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { check } from '../errors.js';
import { cameraCentres, cameraRotation } from '../geometry/cameras.js';
import { det3, type Mat3, matMulT3, mulVec3, norm3, sub3, transpose3, type Vec3 } from '../geometry/mat3.js';
import { geodesicAngle } from '../geometry/so3.js';

/** y = scale · rotation · x + translation. */
export interface Sim3 {
  scale: number;
  rotation: Mat3;
  translation: Vec3;
}

/** A Sim3 as input: any array-like rotation and translation. */
export interface Sim3Like {
  scale: number;
  rotation: ArrayLike<number>;
  translation: ArrayLike<number>;
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
    varX += (dx[0]! * dx[0]! + dx[1]! * dx[1]! + dx[2]! * dx[2]!) / n;
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
  const rotation = matMulT3(US, V);
  let scale = 1;
  if (opts.withScale !== false && varX > 1e-300) {
    scale = (d[0]! * S[0]! + d[1]! * S[1]! + d[2]! * S[2]!) / varX;
  }
  const rMuX = mulVec3(rotation, muX);
  const translation = Float64Array.from(muY, (m, k) => m - scale * rMuX[k]!);
  return { scale, rotation, translation };
}

/** Apply y = s·R·x + t to flat [N, 3] points. */
export function applySim3(sim: Sim3Like, points: ArrayLike<number>): Float64Array {
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
    const worldFromCamEst = matMulT3(alignment.rotation, cameraRotation(estimated, f));
    rot += geodesicAngle(transpose3(cameraRotation(reference, f)), worldFromCamEst);
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
    const re = cameraRotation(estimated, i);
    const rr = cameraRotation(reference, i);
    const te = mulVec3(re, sub3(ce.subarray(3 * j, 3 * j + 3), ce.subarray(3 * i, 3 * i + 3)));
    const tr = mulVec3(rr, sub3(cr.subarray(3 * j, 3 * j + 3), cr.subarray(3 * i, 3 * i + 3)));
    const et = norm3([scale * te[0]! - tr[0]!, scale * te[1]! - tr[1]!, scale * te[2]! - tr[2]!]);
    tSq += et * et;
    tSum += et;
    const qe = matMulT3(re, cameraRotation(estimated, j));
    const qr = matMulT3(rr, cameraRotation(reference, j));
    const er = (geodesicAngle(qr, qe) * 180) / Math.PI;
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
