/**
 * The vector–Jacobian product of reprojection consistency r_geo (src/rewards/reprojection.ts,
 * docs/METHOD.md, Rewards) with respect to the geometry model's depth, world points, confidence
 * and camera-from-world extrinsics, **with visibility held fixed**: which points reach which
 * pixel (the z-buffer winners, the blended splats within the depth band, their tent weights),
 * the pixels the support test drops, the usable-pixel mask (depth validity, confidence mask,
 * dynamic points), the percentile-cap pixel and the worst-k views are those of the current
 * geometry, and only the values flowing through them are differentiated. The rendered depth of
 * a pixel is then D̂ = Σ w_n·z_n / Σ w_n with z_n = R_i[2]·X_n + t_i[2] the depth of point X_n in
 * view i, which is exactly the nearest-point z-buffer's value under a small perturbation
 * (blendTolerance 0) and a first-order model of the blended one. Intrinsics (and so the pose
 * encoding's fovs) act only through visibility: their gradient is zero here.
 *
 * `traceReprojection` records that visibility by replaying DepthSplatter's decisions with its
 * float32 roundings (src/geometry/zbuffer.ts); `frozenReprojection` evaluates the reward for
 * other values under a fixed trace (what finite differences check the VJP against), and
 * `reprojectionVjp` returns the reward and its gradients in float64.
 */
import { check } from '../errors.js';
import { depthFromPoints } from '../geometry/unproject.js';
import { pointCloudFromFrames } from '../geometry/zbuffer.js';
import { medianPixels } from './motion-vjp.js';
import { checkSizes, type ReprojectionOptions, reprojection, usableMask } from './reprojection.js';
import type { GeometrySample } from './types.js';

/** One scored view under fixed visibility. */
interface ViewTrace {
  /** Flat pixel indices p = i·hw + q of the covered, usable pixels. */
  pixels: Int32Array;
  /** [pixels+1] offsets into the contribution arrays. */
  start: Int32Array;
  /** Source pixel (flat index into the points) and tent weight of each contribution. */
  source: Int32Array;
  weight: Float64Array;
  /** Position in `pixels` of the percentile-cap pixel, and which pixels are capped to it (null: no cap). */
  capAt: number;
  capped: Uint8Array | null;
}

/** The fixed visibility of one video's reprojection reward. */
export interface ReprojectionTrace {
  frames: number;
  pixels: number;
  options: ReprojectionOptions;
  /** Set when the reward does not depend on the inputs (non-finite cameras, no valid depth). */
  constant: number | null;
  /** The median pixels of the depth source (scene scale). */
  median: { index: number[]; weight: number[] };
  /** Per view: its trace, or null when it scores uncoveredError. */
  views: (ViewTrace | null)[];
  /** The worst-k views the reward averages. */
  selected: number[];
  useWeight: boolean;
}

/** Values a frozen reprojection reward reads. */
export interface ReprojectionInputs {
  depth: ArrayLike<number>;
  points: ArrayLike<number>;
  extrinsics: ArrayLike<number>;
  confidence?: ArrayLike<number>;
}

export interface ReprojectionGradient {
  reward: number;
  viewErrors: Float64Array;
  /** Gradients of cotangent·r: [F·h·w], [F·h·w·3], [F,3,4], [F·h·w] (null without confidence). */
  depth: Float64Array;
  points: Float64Array;
  extrinsics: Float64Array;
  confidence: Float64Array | null;
}

/**
 * Record the visibility of `geom`'s reprojection reward (see the file comment).
 *
 * @example
 *   const trace = traceReprojection(sample, options);
 */
export function traceReprojection(
  geom: GeometrySample,
  options: Partial<ReprojectionOptions> = {},
): ReprojectionTrace {
  const o = reprojection.parseOptions(options as Record<string, unknown>);
  checkSizes(geom);
  const { frames: F, height: h, width: w } = geom;
  const hw = h * w;
  const n = F * hw;
  const base = {
    frames: F,
    pixels: hw,
    options: o,
    useWeight: o.confidence === 'weight' && !!geom.confidence,
  };
  const none = { median: { index: [], weight: [] }, views: [], selected: [] };
  if (![...geom.extrinsics, ...geom.intrinsics].every(Number.isFinite)) {
    return { ...base, ...none, constant: Number.NaN };
  }
  const depth =
    o.depthSource === 'points' ? depthFromPoints(geom.points, geom.extrinsics, F, hw) : geom.depth;
  const med = medianPixels(depth);
  const scale = med ? med.value : Number.NaN;
  if (!med || !(scale > 0)) {
    return { ...base, ...none, constant: reprojection.compute(geom, o) };
  }
  const usable = usableMask(geom, depth, o, scale);
  const cloud = pointCloudFromFrames(geom.points, geom.extrinsics, geom.intrinsics, F, hw, usable);
  // Source pixel of each cloud point (pointCloudFromFrames keeps usable, finite points in order).
  const source = new Int32Array(cloud.count);
  let c = 0;
  for (let p = 0; p < n; p++) {
    if (!usable[p]) continue;
    if ([0, 1, 2].every((k) => Number.isFinite(geom.points[3 * p + k]!))) source[c++] = p;
  }
  const views: (ViewTrace | null)[] = [];
  for (let i = 0; i < F; i++) {
    const from = o.leaveOneOut ? cloud.frameStart[i]! : 0;
    const to = o.leaveOneOut ? cloud.frameStart[i + 1]! : 0;
    const contrib = splatContributions(cloud, source, geom, i, o, scale, from, to);
    let valid = 0;
    const pixels: number[] = [];
    const start: number[] = [0];
    const src: number[] = [];
    const wt: number[] = [];
    for (let q = 0; q < hw; q++) {
      const p = i * hw + q;
      if (!usable[p]) continue;
      valid++;
      const list = contrib[q];
      if (!list) continue;
      pixels.push(p);
      for (const [s, ww] of list) {
        src.push(s);
        wt.push(ww);
      }
      start.push(src.length);
    }
    const m = pixels.length;
    if (valid === 0 || m / valid < o.minCoverage) {
      views.push(null);
      continue;
    }
    views.push({
      pixels: Int32Array.from(pixels),
      start: Int32Array.from(start),
      source: Int32Array.from(src),
      weight: Float64Array.from(wt),
      capAt: -1,
      capped: null,
    });
  }
  const trace: ReprojectionTrace = {
    ...base,
    constant: null,
    median: { index: med.index, weight: med.weight },
    views,
    selected: [],
  };
  // The cap pixel and the worst views, chosen at the current values.
  const inputs: ReprojectionInputs = {
    depth: geom.depth,
    points: geom.points,
    extrinsics: geom.extrinsics,
    confidence: geom.confidence,
  };
  const sc = scaleOf(trace, inputs);
  views.forEach((v, i) => {
    if (!v || o.percentileCap === null) return;
    const e = pixelErrors(trace, v, i, inputs, sc);
    const m = e.length;
    const k = Math.min(m - 1, Math.max(0, Math.ceil((o.percentileCap / 100) * m) - 1));
    const order = Array.from({ length: m }, (_, j) => j).sort((a, b) => e[a]! - e[b]! || a - b);
    v.capAt = order[k]!;
    v.capped = Uint8Array.from(e, (x) => (x > e[v.capAt]! ? 1 : 0));
  });
  const errors = viewErrorsOf(trace, inputs, sc).errors;
  const k = Math.min(o.worstViews, F);
  trace.selected = Array.from({ length: F }, (_, i) => i)
    .sort((a, b) => errors[a]! - errors[b]! || a - b)
    .slice(F - k);
  return trace;
}

/**
 * DepthSplatter.render's decisions for view i, replayed with its float32 roundings: per pixel
 * the contributing points (source pixel) and their weights, undefined where nothing is drawn
 * or the support test drops the pixel.
 */
function splatContributions(
  cloud: ReturnType<typeof pointCloudFromFrames>,
  source: Int32Array,
  geom: GeometrySample,
  i: number,
  o: ReprojectionOptions,
  scale: number,
  skipFrom: number,
  skipTo: number,
): ([number, number][] | undefined)[] {
  const { height, width } = geom;
  const hw = height * width;
  const E = geom.extrinsics;
  const K = geom.intrinsics;
  const eo = 12 * i;
  const io = 9 * i;
  const [fx, skew, cx, fy, cy] = [K[io]!, K[io + 1]!, K[io + 2]!, K[io + 4]!, K[io + 5]!];
  const half = 0.5 * o.splatScale;
  const near = 1e-6 * scale;
  const zmin = new Float32Array(hw).fill(Number.POSITIVE_INFINITY);
  const winner = new Int32Array(hw).fill(-1);
  const sc = new Float32Array(5 * cloud.count);
  const box = (n: number) => {
    const [u, v, ru, rv] = [sc[5 * n]!, sc[5 * n + 1]!, sc[5 * n + 3]!, sc[5 * n + 4]!];
    return [
      Math.max(0, Math.ceil(u - ru)),
      Math.min(width - 1, Math.floor(u + ru)),
      Math.max(0, Math.ceil(v - rv)),
      Math.min(height - 1, Math.floor(v + rv)),
    ] as const;
  };
  for (let n = 0; n < cloud.count; n++) {
    if (n >= skipFrom && n < skipTo) continue;
    const [x, y, z] = [cloud.xyz[3 * n]!, cloud.xyz[3 * n + 1]!, cloud.xyz[3 * n + 2]!];
    const zc = E[eo + 8]! * x + E[eo + 9]! * y + E[eo + 10]! * z + E[eo + 11]!;
    if (!(zc > near)) continue;
    const xc = E[eo]! * x + E[eo + 1]! * y + E[eo + 2]! * z + E[eo + 3]!;
    const yc = E[eo + 4]! * x + E[eo + 5]! * y + E[eo + 6]! * z + E[eo + 7]!;
    const u = (fx * xc + skew * yc) / zc + cx;
    const v = (fy * yc) / zc + cy;
    const s = (half * cloud.footprint[n]!) / zc;
    const ru = Math.max(0.5, Math.min(o.maxSplatRadius, s * fx));
    const rv = Math.max(0.5, Math.min(o.maxSplatRadius, s * fy));
    // The first pass bounds the footprint with unrounded values, the second with the stored ones.
    const j0 = Math.max(0, Math.ceil(u - ru));
    const j1 = Math.min(width - 1, Math.floor(u + ru));
    const i0 = Math.max(0, Math.ceil(v - rv));
    const i1 = Math.min(height - 1, Math.floor(v + rv));
    if (j0 > j1 || i0 > i1) continue;
    sc.set([u, v, zc, ru, rv], 5 * n);
    for (let r = i0; r <= i1; r++) {
      for (let j = j0; j <= j1; j++) {
        if (zc < zmin[r * width + j]!) {
          zmin[r * width + j] = zc;
          winner[r * width + j] = n;
        }
      }
    }
  }
  const lists: ([number, number][] | undefined)[] = new Array(hw);
  const value = new Float32Array(hw);
  if (o.blendTolerance > 0) {
    const acc = new Float64Array(hw);
    const wsum = new Float64Array(hw);
    const band = 1 + o.blendTolerance;
    for (let n = 0; n < cloud.count; n++) {
      const zc = sc[5 * n + 2]!;
      if (zc === 0 || (n >= skipFrom && n < skipTo)) continue;
      const [u, v, ru, rv] = [sc[5 * n]!, sc[5 * n + 1]!, sc[5 * n + 3]!, sc[5 * n + 4]!];
      const iu = 1 / (ru + 0.5);
      const iv = 1 / (rv + 0.5);
      const [j0, j1, i0, i1] = box(n);
      for (let r = i0; r <= i1; r++) {
        const wv = 1 - Math.abs(r - v) * iv;
        for (let j = j0; j <= j1; j++) {
          const p = r * width + j;
          if (zc <= zmin[p]! * band) {
            const ww = wv * (1 - Math.abs(j - u) * iu);
            acc[p]! += ww * zc;
            wsum[p]! += ww;
            (lists[p] ??= []).push([source[n]!, ww]);
          }
        }
      }
    }
    for (let p = 0; p < hw; p++) value[p] = wsum[p]! > 0 ? acc[p]! / wsum[p]! : 0;
  } else {
    for (let p = 0; p < hw; p++) {
      if (winner[p]! >= 0) {
        value[p] = zmin[p]!;
        lists[p] = [[source[winner[p]!]!, 1]];
      }
    }
  }
  if (o.holeTolerance > 0) {
    for (const p of supportDropped(value, height, width, o.holeTolerance)) lists[p] = undefined;
  }
  for (let p = 0; p < hw; p++) if (value[p] === 0) lists[p] = undefined;
  return lists;
}

/** Pixels the z-buffer's support test zeroes (src/geometry/zbuffer.ts, supportTest). */
function supportDropped(src: Float32Array, height: number, width: number, tol: number): number[] {
  const k = 1 - tol;
  const out: number[] = [];
  const behind = (a: number, b: number, lim: number) => a > 0 && b > 0 && a < lim && b < lim;
  for (let i = 1; i < height - 1; i++) {
    for (let j = 1; j < width - 1; j++) {
      const p = i * width + j;
      const d = src[p]!;
      if (d === 0) continue;
      const lim = d * k;
      if (
        behind(src[p - 1]!, src[p + 1]!, lim) ||
        behind(src[p - width]!, src[p + width]!, lim) ||
        behind(src[p - width - 1]!, src[p + width + 1]!, lim) ||
        behind(src[p - width + 1]!, src[p + width - 1]!, lim)
      )
        out.push(p);
    }
  }
  return out;
}

/** D_p of the depth source at flat pixel p. */
function sourceDepth(t: ReprojectionTrace, x: ReprojectionInputs, p: number): number {
  if (t.options.depthSource === 'depth') return x.depth[p]!;
  const e = 12 * Math.floor(p / t.pixels);
  const E = x.extrinsics;
  const P = x.points;
  return E[e + 8]! * P[3 * p]! + E[e + 9]! * P[3 * p + 1]! + E[e + 10]! * P[3 * p + 2]! + E[e + 11]!;
}

function scaleOf(t: ReprojectionTrace, x: ReprojectionInputs): number {
  let s = 0;
  t.median.index.forEach((p, m) => {
    s += t.median.weight[m]! * sourceDepth(t, x, p);
  });
  return s;
}

/** Depth of the point from source pixel sp in view i. */
function viewDepth(x: ReprojectionInputs, i: number, sp: number): number {
  const E = x.extrinsics;
  const P = x.points;
  const e = 12 * i;
  return E[e + 8]! * P[3 * sp]! + E[e + 9]! * P[3 * sp + 1]! + E[e + 10]! * P[3 * sp + 2]! + E[e + 11]!;
}

function rendered(v: ViewTrace, j: number, x: ReprojectionInputs, i: number): { r: number; wsum: number } {
  let acc = 0;
  let ws = 0;
  for (let c = v.start[j]!; c < v.start[j + 1]!; c++) {
    acc += v.weight[c]! * viewDepth(x, i, v.source[c]!);
    ws += v.weight[c]!;
  }
  return { r: acc / ws, wsum: ws };
}

/** Per covered pixel of view i, |D̂ − D| over D (relative) or the scene scale, before the cap. */
function pixelErrors(
  t: ReprojectionTrace,
  v: ViewTrace,
  i: number,
  x: ReprojectionInputs,
  scale: number,
): Float64Array {
  const e = new Float64Array(v.pixels.length);
  for (let j = 0; j < v.pixels.length; j++) {
    const d = sourceDepth(t, x, v.pixels[j]!);
    e[j] = Math.abs(rendered(v, j, x, i).r - d) / (t.options.error === 'relative' ? d : scale);
  }
  return e;
}

function viewErrorsOf(
  t: ReprojectionTrace,
  x: ReprojectionInputs,
  scale: number,
): { errors: Float64Array; pixel: (Float64Array | null)[]; wsum: Float64Array } {
  const F = t.frames;
  const errors = new Float64Array(F);
  const pixel: (Float64Array | null)[] = [];
  const wsum = new Float64Array(F);
  for (let i = 0; i < F; i++) {
    const v = t.views[i];
    if (!v) {
      errors[i] = t.options.uncoveredError;
      pixel.push(null);
      continue;
    }
    const e = pixelErrors(t, v, i, x, scale);
    if (v.capped) {
      const cap = e[v.capAt]!;
      for (let j = 0; j < e.length; j++) if (v.capped[j]) e[j] = cap;
    }
    let se = 0;
    let sw = 0;
    for (let j = 0; j < e.length; j++) {
      const w = t.useWeight ? Math.max(0, x.confidence![v.pixels[j]!]!) : 1;
      se += w * e[j]!;
      sw += w;
    }
    errors[i] = sw > 0 ? se / sw : t.options.uncoveredError;
    pixel.push(e);
    wsum[i] = sw;
  }
  return { errors, pixel, wsum };
}

function form(t: ReprojectionTrace, errors: Float64Array): { reward: number; dMean: number } {
  const k = t.selected.length;
  const mean = k > 0 ? t.selected.reduce((a, i) => a + errors[i]!, 0) / k : 0;
  return t.options.form === 'inverse'
    ? { reward: 1 / (1 + mean), dMean: -1 / (1 + mean) ** 2 }
    : { reward: -mean, dMean: -1 };
}

/**
 * The reward of `x` under the fixed visibility `t` (float64).
 *
 * @example
 *   frozenReprojection(traceReprojection(sample), sample); // ≈ reprojection.compute(sample)
 */
export function frozenReprojection(t: ReprojectionTrace, x: ReprojectionInputs): number {
  if (t.constant !== null) return t.constant;
  return form(t, viewErrorsOf(t, x, scaleOf(t, x)).errors).reward;
}

/**
 * r_geo of one video and its gradients (times `cotangent`) w.r.t. depth, world points,
 * extrinsics and confidence, visibility held fixed (see the file comment).
 *
 * @example
 *   const g = reprojectionVjp(sample); // g.reward, g.depth, g.points, g.extrinsics
 */
export function reprojectionVjp(
  geom: GeometrySample,
  options: Partial<ReprojectionOptions> = {},
  cotangent = 1,
): ReprojectionGradient {
  return reprojectionBackward(traceReprojection(geom, options), geom, cotangent);
}

/** The VJP at `x` under a given trace (exact derivative of frozenReprojection). */
export function reprojectionBackward(
  t: ReprojectionTrace,
  x: ReprojectionInputs,
  cotangent = 1,
): ReprojectionGradient {
  const F = t.frames;
  const n = F * t.pixels;
  check(x.depth.length === n, 'reprojectionVjp', `depth has ${x.depth.length} values, expected ${n}`);
  const g: ReprojectionGradient = {
    reward: 0,
    viewErrors: new Float64Array(F),
    depth: new Float64Array(n),
    points: new Float64Array(3 * n),
    extrinsics: new Float64Array(12 * F),
    confidence: x.confidence ? new Float64Array(n) : null,
  };
  if (t.constant !== null) {
    g.reward = t.constant;
    g.viewErrors.fill(t.constant);
    return g;
  }
  const o = t.options;
  const scale = scaleOf(t, x);
  const { errors, pixel, wsum } = viewErrorsOf(t, x, scale);
  const { reward, dMean } = form(t, errors);
  g.reward = reward;
  g.viewErrors = errors;
  const gD = new Float64Array(n); // cotangent of the depth source
  let gScale = 0;
  const gE = (cotangent * dMean) / Math.max(1, t.selected.length);
  for (const i of t.selected) {
    const v = t.views[i];
    const e = pixel[i];
    if (!v || !e || !(wsum[i]! > 0)) continue;
    const m = v.pixels.length;
    const ge = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      const p = v.pixels[j]!;
      const w = t.useWeight ? Math.max(0, x.confidence![p]!) : 1;
      const ej = (gE * w) / wsum[i]!;
      if (v.capped?.[j]) ge[v.capAt]! += ej;
      else ge[j]! += ej;
      // E = Σ c·e / Σ c: ∂E/∂c = (e − E)/Σ c where c > 0.
      if (t.useWeight && x.confidence![p]! > 0) g.confidence![p]! += (gE * (e[j]! - errors[i]!)) / wsum[i]!;
    }
    for (let j = 0; j < m; j++) {
      if (ge[j] === 0) continue;
      const p = v.pixels[j]!;
      const d = sourceDepth(t, x, p);
      const { r, wsum: ws } = rendered(v, j, x, i);
      const den = o.error === 'relative' ? d : scale;
      const sg = Math.sign(r - d);
      // e = |r − d|/den.
      const gr = (ge[j]! * sg) / den;
      gD[p]! += -gr - (o.error === 'relative' ? (ge[j]! * Math.abs(r - d)) / (d * d) : 0);
      if (o.error === 'absolute') gScale -= (ge[j]! * Math.abs(r - d)) / (scale * scale);
      // r = Σ w·z_n / Σ w, z_n = R_i[2]·X_n + t_i[2].
      for (let c = v.start[j]!; c < v.start[j + 1]!; c++) {
        addDepthVjp(x, i, v.source[c]!, (gr * v.weight[c]!) / ws, g);
      }
    }
  }
  t.median.index.forEach((p, m) => {
    gD[p]! += gScale * t.median.weight[m]!;
  });
  if (o.depthSource === 'depth') g.depth.set(gD);
  else for (let p = 0; p < n; p++) if (gD[p] !== 0) addDepthVjp(x, Math.floor(p / t.pixels), p, gD[p]!, g);
  return g;
}

/** Cotangent gz on z = R_i[2]·X_sp + t_i[2] → points and extrinsics. */
function addDepthVjp(
  x: ReprojectionInputs,
  i: number,
  sp: number,
  gz: number,
  g: ReprojectionGradient,
): void {
  const E = x.extrinsics;
  const e = 12 * i;
  for (let k = 0; k < 3; k++) {
    g.points[3 * sp + k]! += gz * E[e + 8 + k]!;
    g.extrinsics[e + 8 + k]! += gz * x.points[3 * sp + k]!;
  }
  g.extrinsics[e + 11]! += gz;
}
