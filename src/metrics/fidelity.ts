/**
 * Fidelity of a geometry model where ground truth exists: held-out toy videos
 * (`heldOutGroups` of src/toy/videos.ts — one scene, one camera family, jitter rising from the
 * smooth member). Used for the RGB model Φ and for the stitched LGM alike: the model enters as a
 * `GeometryPredictor`, a function from a batch of videos to their predicted geometry
 * (`sessionPredictor` wraps an ONNX session with Φ's outputs).
 *
 * Figures (docs/METHOD.md, the LGM; all also per camera family):
 * - depth: median of |d̂ − d|/d over every cell of every video;
 * - cameras, between every frame pair (i, j): the relative rotation error
 *   ∠(R̂_j R̂_iᵀ, R_j R_iᵀ) and the relative translation-direction error ∠(t̂_ij, t_ij),
 *   t_ij = t_j − R_j R_iᵀ t_i, in degrees. Both compare relative poses, so any world frame (Φ's
 *   first-camera frame, the renderer's room frame) gives the same numbers; direction ignores the
 *   metric scale. Pairs whose true relative translation is below 1e-3 (a smooth pan turns in
 *   place) have no direction and are skipped;
 * - the reward: the Spearman rank correlation of r_motion (src/rewards/motion.ts) from predicted
 *   cameras with r_motion from exact cameras over all videos; per group the Spearman correlation
 *   of r_motion with −jitter (mean over groups); and the fraction of groups whose smooth member
 *   scores above the least jittered other member.
 *
 * @example
 *   const groups = heldOutGroups(48, 4);
 *   const report = await measureFidelity(sessionPredictor(session), groups);
 *   report.overall.motionSpearman; // ≥ 0.75 is the target
 */
import { cameraCentres, cameraRotation, poseEncodingToCameras } from '../geometry/cameras.js';
import { matMul3, matMulT3 } from '../geometry/mat3.js';
import { expSO3, geodesicAngle } from '../geometry/so3.js';
import { type MotionOptions, motion } from '../rewards/motion.js';
import { sceneScale } from '../rewards/scale.js';
import type { GeometrySample } from '../rewards/types.js';
import type { ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';
import type { ToyVideo } from '../toy/videos.js';
import type { TrajectoryFamily } from '../world/index.js';
import { Rng } from '../world/index.js';

/** Predicted geometry of one video (the geometry-shard layout of one batch entry). */
export type PredictedGeometry = GeometrySample;

/** A geometry model under test: videos in, one prediction per video out (same order). */
export type GeometryPredictor = (videos: ToyVideo[]) => Promise<PredictedGeometry[]>;

export interface FidelityFigures {
  videos: number;
  groups: number;
  /** Median |d̂ − d|/d. */
  depthRelErr: number;
  /** Mean relative rotation error over frame pairs, degrees. */
  rotErrDeg: number;
  /** Mean relative translation-direction error over frame pairs with a direction, degrees. */
  transDirErrDeg: number;
  /** Spearman of r_motion (predicted cameras) with r_motion (exact cameras) over all videos. */
  motionSpearman: number;
  /** Mean over groups of the Spearman correlation of r_motion with −jitter. */
  withinGroupSpearman: number;
  /** Fraction of groups whose smooth member's r_motion beats the least jittered other member's. */
  smoothAbove: number;
  /**
   * The model's per-frame pose noise, std per component, as r_motion's poseNoise option reads it
   * (src/rewards/motion.ts): translation in scene-scale units (from the error of each
   * frame-to-frame step of the camera centres, in the first camera's axes), rotation in radians
   * (from the mean relative rotation error). Two frames' independent 3-D errors of std σ per
   * component differ by a vector of std √2σ per component, whose norm has mean √2σ·1.596 (a chi
   * distribution with 3 degrees of freedom); so σ = mean error / (√2·1.596).
   */
  poseNoise: { translation: number; rotation: number };
  /** Mean predicted r_motion of each member position (smooth first, then rising jitter). */
  motionByMember: number[];
}

export interface FidelityReport {
  overall: FidelityFigures;
  perFamily: Partial<Record<TrajectoryFamily, FidelityFigures>>;
}

export interface FidelityOptions {
  /** Options of r_motion (its defaults when absent), for predicted and exact cameras alike. */
  motion?: Partial<MotionOptions>;
  /** Videos per predictor call. */
  batch?: number;
}

/**
 * Ranks (1-based) with ties averaged.
 *
 * @example
 *   ranks([3, 1, 3]); // [2.5, 1, 2.5]
 */
export function ranks(xs: readonly number[]): number[] {
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && xs[idx[j + 1]!] === xs[idx[i]!]) j++;
    for (let k = i; k <= j; k++) r[idx[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/**
 * Spearman rank correlation (Pearson correlation of the tie-averaged ranks); NaN when either
 * side is constant.
 *
 * @example
 *   spearman([1, 2, 3], [10, 20, 15]); // 0.5
 */
export function spearman(a: readonly number[], b: readonly number[]): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = ra.length;
  const ma = ra.reduce((s, x) => s + x, 0) / n;
  const mb = rb.reduce((s, x) => s + x, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i]! - ma) * (rb[i]! - mb);
    saa += (ra[i]! - ma) ** 2;
    sbb += (rb[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** The exact geometry of a toy video at the geometry resolution (what a perfect model outputs). */
export function exactGeometry(v: ToyVideo): PredictedGeometry {
  const g = v.geometry;
  return {
    frames: g.frames,
    height: g.height,
    width: g.width,
    depth: g.depth,
    points: g.points,
    extrinsics: g.extrinsics,
    intrinsics: g.intrinsics,
    sceneFlow: g.sceneFlow,
  };
}

/**
 * The perfect predictor: ground truth in, ground truth out (the reference the figures are read
 * against, and the fidelity test's check).
 *
 * @example
 *   await measureFidelity(exactPredictor, heldOutGroups(8, 4)); // errors 0, Spearman 1
 */
export const exactPredictor: GeometryPredictor = async (videos) => videos.map(exactGeometry);

/**
 * Camera-from-world extrinsics [F,3,4] with each camera turned by exp(ω), ω ~ N(0, σ²) per axis,
 * about its own centre (the centre stays put): the pose noise of an imperfect geometry model.
 *
 * @example
 *   perturbRotations(ext, (0.1 * Math.PI) / 180, new Rng(0));
 */
export function perturbRotations(extrinsics: ArrayLike<number>, sigma: number, rng: Rng): Float64Array {
  const frames = extrinsics.length / 12;
  const out = new Float64Array(extrinsics.length);
  const r = new Float64Array(9);
  const j = new Float64Array(9);
  const r2 = new Float64Array(9);
  for (let f = 0; f < frames; f++) {
    cameraRotation(extrinsics, f, r);
    const o = 12 * f;
    // centre c = −Rᵀt, kept: t' = −R'c
    const c = [0, 1, 2].map(
      (k) => -(r[k]! * extrinsics[o + 3]! + r[3 + k]! * extrinsics[o + 7]! + r[6 + k]! * extrinsics[o + 11]!),
    );
    expSO3([sigma * rng.normal(), sigma * rng.normal(), sigma * rng.normal()], j);
    matMul3(j, r, r2);
    for (let row = 0; row < 3; row++) {
      let t = 0;
      for (let k = 0; k < 3; k++) {
        out[o + 4 * row + k] = r2[3 * row + k]!;
        t -= r2[3 * row + k]! * c[k]!;
      }
      out[o + 4 * row + 3] = t;
    }
  }
  return out;
}

/**
 * A predictor whose cameras are `base`'s with rotation noise σ (radians per axis) added,
 * deterministic in `seed` and the order of calls.
 *
 * @example
 *   const noisy = noisyPredictor(exactPredictor, (0.1 * Math.PI) / 180, 0);
 */
export function noisyPredictor(base: GeometryPredictor, sigma: number, seed: number): GeometryPredictor {
  const rng = new Rng(seed * 31 + 5);
  return async (videos) =>
    (await base(videos)).map((g) => ({ ...g, extrinsics: perturbRotations(g.extrinsics, sigma, rng) }));
}

export interface SessionPredictorOptions {
  /** Feeds of a batch (default: `frames` [B, F, 3, H, W] from the videos' RGB). */
  feeds?: (videos: ToyVideo[]) => Promise<Record<string, Tensor>> | Record<string, Tensor>;
  /** Output names (default Φ's and the LGM's: depth, world_points, pose_enc). */
  outputs?: { depth: string; points: string; poseEnc: string };
}

/** `frames` [B, F, 3, H, W] of a batch of toy videos. */
export function framesFeed(videos: ToyVideo[]): Record<string, Tensor> {
  const n = videos[0]!.frames.length;
  const data = new Float32Array(videos.length * n);
  for (let b = 0; b < videos.length; b++) data.set(videos[b]!.frames, b * n);
  const { frames: F, height: H, width: W } = videos[0]!.video;
  return { frames: f32([videos.length, F, 3, H, W], data) };
}

/**
 * A predictor that runs an ONNX geometry model (Φ, or the LGM with latents fed by `feeds`) and
 * reads depth, world points and the VGGT pose encoding.
 *
 * @example
 *   const predict = sessionPredictor(await ModelSession.open('onnx/fixtures/geometry_rgb.onnx', { threads: 1 }));
 */
export function sessionPredictor(
  session: ModelSession,
  opts: SessionPredictorOptions = {},
): GeometryPredictor {
  const names = opts.outputs ?? { depth: 'depth', points: 'world_points', poseEnc: 'pose_enc' };
  return async (videos) => {
    const feeds = await (opts.feeds ?? framesFeed)(videos);
    const out = await session.run(feeds, [names.depth, names.points, names.poseEnc]);
    const depth = out[names.depth]!;
    const [, F, h, w] = depth.shape as [number, number, number, number];
    const d = depth.data as Float32Array;
    const p = out[names.points]!.data as Float32Array;
    const pose = out[names.poseEnc]!.data as Float32Array;
    const n = F * h * w;
    return videos.map((_, b) => ({
      frames: F,
      height: h,
      width: w,
      depth: d.slice(b * n, (b + 1) * n),
      points: p.slice(3 * b * n, 3 * (b + 1) * n),
      ...poseEncodingToCameras(pose.subarray(9 * b * F, 9 * (b + 1) * F), h, w),
    }));
  };
}

/** Per-video raw measurements the figures are made of. */
interface VideoScore {
  family: TrajectoryFamily;
  depthRel: number[];
  rotErr: number[];
  transDirErr: number[];
  /** ‖error‖ of each frame-to-frame step of the camera centre, scene-scale units. */
  stepErr: number[];
  predicted: number;
  exact: number;
}

const DEG = 180 / Math.PI;

/** Relative pose (R_j R_iᵀ, t_j − R_j R_iᵀ t_i) of frames i → j. */
function relativePose(ext: ArrayLike<number>, i: number, j: number): { r: Float64Array; t: number[] } {
  const r = matMulT3(cameraRotation(ext, j), cameraRotation(ext, i));
  const t = [0, 1, 2].map((row) => {
    let s = ext[12 * j + 4 * row + 3]!;
    for (let k = 0; k < 3; k++) s -= r[3 * row + k]! * ext[12 * i + 4 * k + 3]!;
    return s;
  });
  return { r, t };
}

/** Frame-to-frame steps of the camera centres in the first camera's axes, divided by `scale`. */
function centreSteps(ext: ArrayLike<number>, scale: number): number[][] {
  const r0 = cameraRotation(ext, 0);
  const c = cameraCentres(ext);
  return Array.from({ length: c.length / 3 - 1 }, (_, f) =>
    [0, 1, 2].map((row) => {
      let s = 0;
      for (let k = 0; k < 3; k++) s += r0[3 * row + k]! * (c[3 * (f + 1) + k]! - c[3 * f + k]!);
      return s / scale;
    }),
  );
}

/** Per-frame noise std from a mean error between two frames (see FidelityFigures.poseNoise). */
const CHI3_PAIR = Math.SQRT2 * 1.596;

/**
 * Per-frame, per-component rotation noise std (radians) from a mean relative rotation error
 * over frame pairs (degrees).
 *
 * @example
 *   rotationNoise(1.57); // ≈ 0.0121
 */
export function rotationNoise(rotErrDeg: number): number {
  return rotErrDeg / DEG / CHI3_PAIR;
}

function angleDeg(a: number[], b: number[]): number {
  const na = Math.hypot(a[0]!, a[1]!, a[2]!);
  const nb = Math.hypot(b[0]!, b[1]!, b[2]!);
  const c = (a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!) / (na * nb);
  return Math.acos(Math.max(-1, Math.min(1, c))) * DEG;
}

function scoreVideo(
  v: ToyVideo,
  pred: PredictedGeometry,
  motionOptions?: Partial<MotionOptions>,
): VideoScore {
  const gt = exactGeometry(v);
  const depthRel: number[] = [];
  for (let k = 0; k < gt.depth.length; k++)
    depthRel.push(Math.abs(pred.depth[k]! - gt.depth[k]!) / gt.depth[k]!);
  const rotErr: number[] = [];
  const transDirErr: number[] = [];
  for (let i = 0; i < gt.frames; i++) {
    for (let j = i + 1; j < gt.frames; j++) {
      const a = relativePose(pred.extrinsics, i, j);
      const b = relativePose(gt.extrinsics, i, j);
      rotErr.push(geodesicAngle(a.r, b.r) * DEG);
      if (Math.hypot(b.t[0]!, b.t[1]!, b.t[2]!) >= 1e-3) transDirErr.push(angleDeg(a.t, b.t));
    }
  }
  const stepsPred = centreSteps(pred.extrinsics, sceneScale(pred.depth));
  const stepsTrue = centreSteps(gt.extrinsics, sceneScale(gt.depth));
  const stepErr = stepsPred.map((a, f) => Math.hypot(...a.map((x, k) => x - stepsTrue[f]![k]!)));
  return {
    family: v.family,
    depthRel,
    rotErr,
    transDirErr,
    stepErr,
    predicted: motion.compute(pred, motionOptions),
    exact: motion.compute(gt, motionOptions),
  };
}

function median(xs: number[]): number {
  const s = Float64Array.from(xs).sort();
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : 0.5 * (s[n / 2 - 1]! + s[n / 2]!);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Figures of a set of groups of scored videos. */
function figures(groups: VideoScore[][]): FidelityFigures {
  const all = groups.flat();
  const within = groups.map((g) =>
    spearman(
      g.map((s) => s.predicted),
      g.map((_, m) => -m),
    ),
  );
  const rotErrDeg = mean(all.flatMap((s) => s.rotErr));
  return {
    videos: all.length,
    groups: groups.length,
    depthRelErr: median(all.flatMap((s) => s.depthRel)),
    rotErrDeg,
    transDirErrDeg: mean(all.flatMap((s) => s.transDirErr)),
    motionSpearman: spearman(
      all.map((s) => s.predicted),
      all.map((s) => s.exact),
    ),
    // a group whose rewards are all equal ranks nothing: it counts as 0
    withinGroupSpearman: mean(within.map((r) => (Number.isFinite(r) ? r : 0))),
    smoothAbove: mean(groups.map((g) => (g[0]!.predicted > g[1]!.predicted ? 1 : 0))),
    poseNoise: {
      translation: mean(all.flatMap((s) => s.stepErr)) / CHI3_PAIR,
      rotation: rotationNoise(rotErrDeg),
    },
    motionByMember: (groups[0] ?? []).map((_, m) => mean(groups.map((g) => g[m]!.predicted))),
  };
}

/**
 * Run `predict` on every member of every group (members ordered by rising jitter, the first
 * smooth, as `heldOutGroups` makes them) and measure the fidelity figures, overall and per family.
 *
 * @example
 *   const { overall, perFamily } = await measureFidelity(exactPredictor, heldOutGroups(48, 4));
 *   overall.withinGroupSpearman; // ≈ 0.975 for exact geometry
 */
export async function measureFidelity(
  predict: GeometryPredictor,
  groups: ToyVideo[][],
  opts: FidelityOptions = {},
): Promise<FidelityReport> {
  const videos = groups.flat();
  const batch = opts.batch ?? 16;
  const preds: PredictedGeometry[] = [];
  for (let i = 0; i < videos.length; i += batch) preds.push(...(await predict(videos.slice(i, i + batch))));
  let k = 0;
  const scored = groups.map((g) => g.map((v) => scoreVideo(v, preds[k++]!, opts.motion)));
  const perFamily: Partial<Record<TrajectoryFamily, FidelityFigures>> = {};
  for (const fam of new Set(scored.map((g) => g[0]!.family))) {
    perFamily[fam] = figures(scored.filter((g) => g[0]!.family === fam));
  }
  return { overall: figures(scored), perFamily };
}

/**
 * A markdown table of labelled fidelity figures (the tables of onnx/fixtures/README.md).
 *
 * @example
 *   console.log(fidelityTable([['Φ', report.overall]]));
 */
export function fidelityTable(rows: readonly [string, FidelityFigures][]): string {
  const lines = [
    '| model | depth rel. err | rot. err (°) | transl. dir. err (°) | Spearman | within-group | smooth above |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [n, f] of rows)
    lines.push(
      `| ${n} | ${f.depthRelErr.toFixed(3)} | ${f.rotErrDeg.toFixed(2)} | ${f.transDirErrDeg.toFixed(1)} | ${f.motionSpearman.toFixed(3)} | ${f.withinGroupSpearman.toFixed(3)} | ${(100 * f.smoothAbove).toFixed(0)}% |`,
    );
  return lines.join('\n');
}
