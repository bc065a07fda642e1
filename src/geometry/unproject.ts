/**
 * Pixels ↔ world points under the conventions of `cameras.ts`: pixel (row i, column j) sits at
 * (u = j, v = i); X_cam = d·K⁻¹[u, v, 1]ᵀ; X_world = Rᵀ(X_cam − t).
 */

/**
 * Unproject per-frame depth maps [F,h,w] into world points [F,h,w,3]. Pixels with a non-finite
 * or non-positive depth give NaN points so callers can mask them.
 *
 * @example
 *   const points = unprojectDepth(depth, extrinsics, intrinsics, 8, 32, 32);
 */
export function unprojectDepth(
  depth: ArrayLike<number>,
  extrinsics: ArrayLike<number>,
  intrinsics: ArrayLike<number>,
  frames: number,
  height: number,
  width: number,
  out: Float32Array = new Float32Array(frames * height * width * 3),
): Float32Array {
  const hw = height * width;
  for (let f = 0; f < frames; f++) {
    const e = 12 * f;
    const k = 9 * f;
    // K⁻¹ for a K with zero skew (the only kind these conventions produce).
    const fx = intrinsics[k]!;
    const cx = intrinsics[k + 2]!;
    const fy = intrinsics[k + 4]!;
    const cy = intrinsics[k + 5]!;
    const r00 = extrinsics[e]!;
    const r01 = extrinsics[e + 1]!;
    const r02 = extrinsics[e + 2]!;
    const t0 = extrinsics[e + 3]!;
    const r10 = extrinsics[e + 4]!;
    const r11 = extrinsics[e + 5]!;
    const r12 = extrinsics[e + 6]!;
    const t1 = extrinsics[e + 7]!;
    const r20 = extrinsics[e + 8]!;
    const r21 = extrinsics[e + 9]!;
    const r22 = extrinsics[e + 10]!;
    const t2 = extrinsics[e + 11]!;
    for (let i = 0; i < height; i++) {
      const yn = (i - cy) / fy;
      for (let j = 0; j < width; j++) {
        const p = f * hw + i * width + j;
        const d = depth[p]!;
        if (!(d > 0) || !Number.isFinite(d)) {
          out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = Number.NaN;
          continue;
        }
        const xc = ((j - cx) / fx) * d - t0;
        const yc = yn * d - t1;
        const zc = d - t2;
        out[3 * p] = r00 * xc + r10 * yc + r20 * zc;
        out[3 * p + 1] = r01 * xc + r11 * yc + r21 * zc;
        out[3 * p + 2] = r02 * xc + r12 * yc + r22 * zc;
      }
    }
  }
  return out;
}

/** A point seen by a camera: image position (u = column, v = row) and depth z along the optical axis. */
export interface Projection {
  u: number;
  v: number;
  z: number;
}

/**
 * Project one world point into frame f's camera. z ≤ 0 means behind the camera (u, v meaningless).
 *
 * @example
 *   projectPoint([0, 0, 5], extrinsics, intrinsics, 0); // { u, v, z }
 */
export function projectPoint(
  x: ArrayLike<number>,
  extrinsics: ArrayLike<number>,
  intrinsics: ArrayLike<number>,
  frame = 0,
): Projection {
  const e = 12 * frame;
  const k = 9 * frame;
  const xc =
    extrinsics[e]! * x[0]! + extrinsics[e + 1]! * x[1]! + extrinsics[e + 2]! * x[2]! + extrinsics[e + 3]!;
  const yc =
    extrinsics[e + 4]! * x[0]! + extrinsics[e + 5]! * x[1]! + extrinsics[e + 6]! * x[2]! + extrinsics[e + 7]!;
  const z =
    extrinsics[e + 8]! * x[0]! +
    extrinsics[e + 9]! * x[1]! +
    extrinsics[e + 10]! * x[2]! +
    extrinsics[e + 11]!;
  return {
    u: (intrinsics[k]! * xc + intrinsics[k + 1]! * yc) / z + intrinsics[k + 2]!,
    v: (intrinsics[k + 4]! * yc) / z + intrinsics[k + 5]!,
    z,
  };
}

/**
 * Depth of each frame's own world points in its own camera (z of R·X + t), [F,h,w] — the
 * "depth from points" alternative to a separate depth output.
 *
 * @example
 *   depthFromPoints(points, extrinsics, 8, 32 * 32);
 */
export function depthFromPoints(
  points: ArrayLike<number>,
  extrinsics: ArrayLike<number>,
  frames: number,
  pixels: number,
  out: Float32Array = new Float32Array(frames * pixels),
): Float32Array {
  for (let f = 0; f < frames; f++) {
    const e = 12 * f;
    const r20 = extrinsics[e + 8]!;
    const r21 = extrinsics[e + 9]!;
    const r22 = extrinsics[e + 10]!;
    const t2 = extrinsics[e + 11]!;
    for (let p = f * pixels, end = p + pixels; p < end; p++) {
      out[p] = r20 * points[3 * p]! + r21 * points[3 * p + 1]! + r22 * points[3 * p + 2]! + t2;
    }
  }
  return out;
}
