/**
 * Z-buffer splatting of a point cloud into a view: the rendered depth D̂ that the reprojection
 * reward compares with a frame's own depth.
 *
 * Why not one pixel per point: a surface sampled by another camera from farther away (or more
 * obliquely) lands on the target grid with gaps, and through a one-pixel hole the z-buffer shows
 * a farther surface — a large error on perfectly consistent geometry (docs/METHOD.md, pitfall 2).
 * Three measures keep ground truth near the optimum:
 *  1. footprint: each point covers a square whose half-width is the projected size of the pixel
 *     it came from (its source pixel's world size z_src/f_src times f_tgt/z_tgt), ×splatScale/2;
 *  2. blending: among the points reaching a pixel, those within a relative depth band of the
 *     nearest are averaged with tent weights, which interpolates a slanted surface instead of
 *     always keeping its nearest sample;
 *  3. support test: a pixel whose depth lies behind both neighbours of an opposite pair (left/
 *     right, up/down or a diagonal) is a leak through a hole and is dropped.
 *
 * The splatter keeps its buffers between calls: rendering allocates nothing per point.
 */

/** A point cloud packed frame by frame so a frame's own points can be left out cheaply. */
export interface PointCloud {
  /** [N,3] world points. */
  xyz: Float32Array;
  /** [N] world size of the source pixel at each point (z_src / f_src); 0 → a one-pixel splat. */
  footprint: Float32Array;
  /** [F+1] offsets: frame f's points are [frameStart[f], frameStart[f+1]). */
  frameStart: Int32Array;
  count: number;
}

export interface SplatOptions {
  /** Footprint multiplier: half-width = splatScale·(projected source pixel)/2. 1 = exact tiling. */
  splatScale: number;
  /** Smallest half-width in pixels (0.5 = the nearest pixel only). */
  minRadius: number;
  /** Largest half-width in pixels, so points right in front of a camera cannot paint the image. */
  maxRadius: number;
  /** Relative depth band over the nearest splat whose points are blended; 0 = plain z-buffer. */
  blendTolerance: number;
  /** Relative depth step that makes a pixel a leak in the support test; 0 disables the test. */
  holeTolerance: number;
  /** Points nearer than this (in the target camera's depth units) are ignored. */
  near: number;
}

export const DEFAULT_SPLAT: SplatOptions = {
  splatScale: 1,
  minRadius: 0.5,
  maxRadius: 4,
  blendTolerance: 0.05,
  holeTolerance: 0.1,
  near: 1e-6,
};

/**
 * Pack frames' world points [F,h,w,3] into a cloud, keeping the points where `keep` is nonzero
 * (and the point is finite). Each point's footprint is its depth in its own camera over that
 * camera's mean focal length.
 *
 * @example
 *   const cloud = pointCloudFromFrames(points, extrinsics, intrinsics, 8, 32 * 32);
 */
export function pointCloudFromFrames(
  points: ArrayLike<number>,
  extrinsics: ArrayLike<number>,
  intrinsics: ArrayLike<number>,
  frames: number,
  pixels: number,
  keep?: Uint8Array,
): PointCloud {
  let count = 0;
  const total = frames * pixels;
  for (let p = 0; p < total; p++) {
    if (keep && !keep[p]) continue;
    if (
      Number.isFinite(points[3 * p]!) &&
      Number.isFinite(points[3 * p + 1]!) &&
      Number.isFinite(points[3 * p + 2]!)
    )
      count++;
  }
  const xyz = new Float32Array(count * 3);
  const footprint = new Float32Array(count);
  const frameStart = new Int32Array(frames + 1);
  let n = 0;
  for (let f = 0; f < frames; f++) {
    frameStart[f] = n;
    const e = 12 * f;
    const focal = Math.sqrt(Math.abs(intrinsics[9 * f]! * intrinsics[9 * f + 4]!));
    const r20 = extrinsics[e + 8]!;
    const r21 = extrinsics[e + 9]!;
    const r22 = extrinsics[e + 10]!;
    const t2 = extrinsics[e + 11]!;
    for (let p = f * pixels, end = p + pixels; p < end; p++) {
      if (keep && !keep[p]) continue;
      const x = points[3 * p]!;
      const y = points[3 * p + 1]!;
      const z = points[3 * p + 2]!;
      if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) continue;
      xyz[3 * n] = x;
      xyz[3 * n + 1] = y;
      xyz[3 * n + 2] = z;
      const zs = r20 * x + r21 * y + r22 * z + t2;
      footprint[n] = zs > 0 && focal > 0 ? zs / focal : 0;
      n++;
    }
  }
  frameStart[frames] = n;
  return { xyz, footprint, frameStart, count };
}

/**
 * Renders depth maps of point clouds into h×w views, reusing its buffers.
 *
 * @example
 *   const splat = new DepthSplatter(32, 32);
 *   const dhat = new Float32Array(32 * 32);
 *   splat.render(cloud, extrinsics, 12 * i, intrinsics, 9 * i, dhat, DEFAULT_SPLAT, cloud.frameStart[i], cloud.frameStart[i + 1]);
 */
export class DepthSplatter {
  private readonly zmin: Float32Array;
  private readonly acc: Float64Array;
  private readonly wsum: Float64Array;
  private readonly tmp: Float32Array;
  /** Per point: u, v, z, ru, rv of the last render (z = 0: not drawn). */
  private scratch = new Float32Array(0);

  constructor(
    readonly height: number,
    readonly width: number,
  ) {
    const hw = height * width;
    this.zmin = new Float32Array(hw);
    this.acc = new Float64Array(hw);
    this.wsum = new Float64Array(hw);
    this.tmp = new Float32Array(hw);
  }

  /**
   * Render `cloud` (leaving out points [skipFrom, skipTo)) into the camera whose extrinsics start
   * at `extrinsics[eo]` and intrinsics at `intrinsics[io]`. Writes depth into `out` [h·w]; 0 marks
   * pixels no point reaches (or dropped by the support test). Returns `out`.
   */
  render(
    cloud: PointCloud,
    extrinsics: ArrayLike<number>,
    eo: number,
    intrinsics: ArrayLike<number>,
    io: number,
    out: Float32Array,
    options: SplatOptions = DEFAULT_SPLAT,
    skipFrom = 0,
    skipTo = 0,
  ): Float32Array {
    const { height, width, zmin, acc, wsum } = this;
    const hw = height * width;
    if (this.scratch.length < cloud.count * 5) this.scratch = new Float32Array(cloud.count * 5);
    const sc = this.scratch;
    zmin.fill(Number.POSITIVE_INFINITY);
    const r00 = extrinsics[eo]!;
    const r01 = extrinsics[eo + 1]!;
    const r02 = extrinsics[eo + 2]!;
    const t0 = extrinsics[eo + 3]!;
    const r10 = extrinsics[eo + 4]!;
    const r11 = extrinsics[eo + 5]!;
    const r12 = extrinsics[eo + 6]!;
    const t1 = extrinsics[eo + 7]!;
    const r20 = extrinsics[eo + 8]!;
    const r21 = extrinsics[eo + 9]!;
    const r22 = extrinsics[eo + 10]!;
    const t2 = extrinsics[eo + 11]!;
    const fx = intrinsics[io]!;
    const skew = intrinsics[io + 1]!;
    const cx = intrinsics[io + 2]!;
    const fy = intrinsics[io + 4]!;
    const cy = intrinsics[io + 5]!;
    const half = 0.5 * options.splatScale;
    const { minRadius, maxRadius, near } = options;
    const xyz = cloud.xyz;
    const fp = cloud.footprint;
    const wMax = width - 1;
    const hMax = height - 1;

    // Pass 1: nearest depth over each footprint.
    for (let n = 0; n < cloud.count; n++) {
      const s5 = 5 * n;
      if (n >= skipFrom && n < skipTo) {
        sc[s5 + 2] = 0;
        continue;
      }
      const x = xyz[3 * n]!;
      const y = xyz[3 * n + 1]!;
      const z = xyz[3 * n + 2]!;
      const zc = r20 * x + r21 * y + r22 * z + t2;
      if (!(zc > near)) {
        sc[s5 + 2] = 0;
        continue;
      }
      const xc = r00 * x + r01 * y + r02 * z + t0;
      const yc = r10 * x + r11 * y + r12 * z + t1;
      const u = (fx * xc + skew * yc) / zc + cx;
      const v = (fy * yc) / zc + cy;
      const s = (half * fp[n]!) / zc;
      const ru = Math.max(minRadius, Math.min(maxRadius, s * fx));
      const rv = Math.max(minRadius, Math.min(maxRadius, s * fy));
      let j0 = Math.ceil(u - ru);
      let j1 = Math.floor(u + ru);
      let i0 = Math.ceil(v - rv);
      let i1 = Math.floor(v + rv);
      if (j0 < 0) j0 = 0;
      if (i0 < 0) i0 = 0;
      if (j1 > wMax) j1 = wMax;
      if (i1 > hMax) i1 = hMax;
      if (j0 > j1 || i0 > i1) {
        sc[s5 + 2] = 0;
        continue;
      }
      sc[s5] = u;
      sc[s5 + 1] = v;
      sc[s5 + 2] = zc;
      sc[s5 + 3] = ru;
      sc[s5 + 4] = rv;
      for (let i = i0; i <= i1; i++) {
        const row = i * width;
        for (let j = j0; j <= j1; j++) if (zc < zmin[row + j]!) zmin[row + j] = zc;
      }
    }

    const tol = options.blendTolerance;
    const target = options.holeTolerance > 0 ? this.tmp : out;
    if (tol > 0) {
      // Pass 2: tent-weighted mean of the splats within the depth band of the nearest.
      acc.fill(0);
      wsum.fill(0);
      const band = 1 + tol;
      for (let n = 0; n < cloud.count; n++) {
        const s5 = 5 * n;
        const zc = sc[s5 + 2]!;
        if (zc === 0) continue;
        const u = sc[s5]!;
        const v = sc[s5 + 1]!;
        const ru = sc[s5 + 3]!;
        const rv = sc[s5 + 4]!;
        const iu = 1 / (ru + 0.5);
        const iv = 1 / (rv + 0.5);
        let j0 = Math.ceil(u - ru);
        let j1 = Math.floor(u + ru);
        let i0 = Math.ceil(v - rv);
        let i1 = Math.floor(v + rv);
        if (j0 < 0) j0 = 0;
        if (i0 < 0) i0 = 0;
        if (j1 > wMax) j1 = wMax;
        if (i1 > hMax) i1 = hMax;
        for (let i = i0; i <= i1; i++) {
          const row = i * width;
          const wv = 1 - Math.abs(i - v) * iv;
          for (let j = j0; j <= j1; j++) {
            const p = row + j;
            if (zc <= zmin[p]! * band) {
              const w = wv * (1 - Math.abs(j - u) * iu);
              acc[p] = (acc[p] ?? 0) + w * zc;
              wsum[p] = (wsum[p] ?? 0) + w;
            }
          }
        }
      }
      for (let p = 0; p < hw; p++) target[p] = wsum[p]! > 0 ? acc[p]! / wsum[p]! : 0;
    } else {
      for (let p = 0; p < hw; p++) {
        const z = zmin[p]!;
        target[p] = z === Number.POSITIVE_INFINITY ? 0 : z;
      }
    }
    if (options.holeTolerance > 0) supportTest(target, out, height, width, options.holeTolerance);
    return out;
  }
}

/**
 * Copy `src` to `dst`, zeroing pixels that lie behind both neighbours of an opposite pair by more
 * than `tol` (relative): the signature of a far surface showing through a hole in a nearer one.
 */
function supportTest(src: Float32Array, dst: Float32Array, height: number, width: number, tol: number): void {
  const k = 1 - tol;
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      const p = i * width + j;
      const d = src[p]!;
      dst[p] = d;
      if (d === 0 || i === 0 || j === 0 || i === height - 1 || j === width - 1) continue;
      const lim = d * k;
      // A neighbour with no surface (0) gives no support either way.
      const l = src[p - 1]!;
      const r = src[p + 1]!;
      const u = src[p - width]!;
      const b = src[p + width]!;
      const ul = src[p - width - 1]!;
      const br = src[p + width + 1]!;
      const ur = src[p - width + 1]!;
      const bl = src[p + width - 1]!;
      if (
        (l > 0 && r > 0 && l < lim && r < lim) ||
        (u > 0 && b > 0 && u < lim && b < lim) ||
        (ul > 0 && br > 0 && ul < lim && br < lim) ||
        (ur > 0 && bl > 0 && ur < lim && bl < lim)
      ) {
        dst[p] = 0;
      }
    }
  }
}
