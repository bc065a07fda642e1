/**
 * Feature matching for the epipolar metric through opencv.js (`@techstark/opencv-js`): ORB or
 * AKAZE keypoints with binary descriptors, brute-force Hamming k-NN and Lowe's ratio test.
 * The paper uses SIFT, which this opencv.js build does not include; the report names the
 * detector so numbers are never compared across detectors unknowingly.
 */
import { createRequire } from 'node:module';
import { RuntimeFailure } from '../errors.js';

export type Detector = 'ORB' | 'AKAZE';

// opencv.js comes without usable types here (its `mirada` typings are not installed).
type Cv = any;

let loading: Promise<{ cv: Cv }> | undefined;

/**
 * Load opencv.js once per process (≈ 0.3 s, 8 MB of asm/wasm). Resolves to a wrapper object:
 * the emscripten module is itself a thenable, and awaiting it directly never settles.
 *
 * @example
 *   const { cv } = await loadOpenCv();
 */
export function loadOpenCv(): Promise<{ cv: Cv }> {
  loading ??= new Promise((resolve, reject) => {
    try {
      const require = createRequire(import.meta.url);
      // Emscripten's Node glue hooks process-wide error events (rethrow / abort); the CLI owns those,
      // so the hooks it adds are taken off again.
      const hadException = new Set(process.listeners('uncaughtException'));
      const hadRejection = new Set(process.listeners('unhandledRejection'));
      const cv = require('@techstark/opencv-js');
      for (const l of process.listeners('uncaughtException')) {
        if (!hadException.has(l)) process.removeListener('uncaughtException', l);
      }
      for (const l of process.listeners('unhandledRejection')) {
        if (!hadRejection.has(l)) process.removeListener('unhandledRejection', l);
      }
      if (cv.Mat) {
        resolve({ cv });
        return;
      }
      const timer = setTimeout(
        () => reject(new RuntimeFailure('opencv.js did not initialise in 60 s')),
        60_000,
      );
      cv.onRuntimeInitialized = () => {
        clearTimeout(timer);
        resolve({ cv });
      };
    } catch (err) {
      reject(new RuntimeFailure(`opencv.js failed to load: ${(err as Error).message}`));
    }
  });
  return loading;
}

/** One grey image, row-major bytes. */
export interface GreyImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Rec. 601 luma of an RGB frame [H, W, 3] at byte offset `offset` of `rgb`. */
export function rgbToGrey(rgb: Uint8Array, width: number, height: number, offset = 0): GreyImage {
  const data = new Uint8Array(width * height);
  for (let i = 0, o = offset; i < data.length; i++, o += 3) {
    data[i] = Math.round(0.299 * rgb[o]! + 0.587 * rgb[o + 1]! + 0.114 * rgb[o + 2]!);
  }
  return { width, height, data };
}

export interface MatchOptions {
  detector?: Detector;
  /** Lowe's ratio: keep a match when best < ratio · second best. Default 0.75 (the paper's). */
  ratio?: number;
  /** Upsample so the shorter side is at least this many pixels before detecting. Default 256. */
  minSide?: number;
  /** ORB's feature budget. Default 2000. */
  maxFeatures?: number;
}

export interface Matches {
  /** [N, 2] pixel coordinates in the original (not upsampled) frames, pixel centres at integers. */
  p1: Float64Array;
  p2: Float64Array;
  count: number;
  keypoints: [number, number];
  /** The factor the frames were upsampled by before detection (1 when big enough). */
  upsample: number;
}

/**
 * Ratio-test matches between two grey images. Small frames (toy videos) are upsampled first,
 * since ORB's 31-pixel patches and pyramid leave little of a 64-pixel frame; keypoints are
 * mapped back to the original pixel grid so distances are in original pixels.
 *
 * @example
 *   const { cv } = await loadOpenCv();
 *   const m = matchFeatures(cv, a, b, { detector: 'ORB' });
 */
export function matchFeatures(cv: Cv, a: GreyImage, b: GreyImage, opts: MatchOptions = {}): Matches {
  const ratio = opts.ratio ?? 0.75;
  const minSide = opts.minSide ?? 256;
  const upsample = Math.max(1, minSide / Math.min(a.width, a.height));
  const owned: { delete(): void }[] = [];
  const own = <T extends { delete(): void }>(x: T): T => {
    owned.push(x);
    return x;
  };
  try {
    const detector =
      (opts.detector ?? 'ORB') === 'ORB' ? own(new cv.ORB(opts.maxFeatures ?? 2000)) : own(new cv.AKAZE());
    const describe = (img: GreyImage) => {
      const mat = own(new cv.Mat(img.height, img.width, cv.CV_8UC1));
      mat.data.set(img.data);
      let src = mat;
      let sx = 1;
      let sy = 1;
      if (upsample > 1) {
        const w = Math.round(img.width * upsample);
        const h = Math.round(img.height * upsample);
        src = own(new cv.Mat());
        cv.resize(mat, src, new cv.Size(w, h), 0, 0, cv.INTER_CUBIC);
        sx = w / img.width;
        sy = h / img.height;
      }
      const kp = own(new cv.KeyPointVector());
      const des = own(new cv.Mat());
      const mask = own(new cv.Mat());
      detector.detectAndCompute(src, mask, kp, des);
      // resize aligns pixel centres: x_orig = (x_up + 0.5)/s − 0.5.
      const n = kp.size();
      const pts = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        const p = kp.get(i).pt;
        pts[2 * i] = (p.x + 0.5) / sx - 0.5;
        pts[2 * i + 1] = (p.y + 0.5) / sy - 0.5;
      }
      return { pts, des, n };
    };
    const da = describe(a);
    const db = describe(b);
    const p1: number[] = [];
    const p2: number[] = [];
    if (da.n >= 2 && db.n >= 2) {
      const matcher = own(new cv.BFMatcher(cv.NORM_HAMMING, false));
      const knn = own(new cv.DMatchVectorVector());
      matcher.knnMatch(da.des, db.des, knn, 2);
      for (let i = 0; i < knn.size(); i++) {
        const pair = knn.get(i);
        const size = pair.size();
        const m0 = size >= 2 ? pair.get(0) : undefined;
        const m1 = size >= 2 ? pair.get(1) : undefined;
        pair.delete();
        if (m0 && m1 && m0.distance < ratio * m1.distance) {
          p1.push(da.pts[2 * m0.queryIdx]!, da.pts[2 * m0.queryIdx + 1]!);
          p2.push(db.pts[2 * m0.trainIdx]!, db.pts[2 * m0.trainIdx + 1]!);
        }
      }
    }
    return {
      p1: Float64Array.from(p1),
      p2: Float64Array.from(p2),
      count: p1.length / 2,
      keypoints: [da.n, db.n],
      upsample,
    };
  } finally {
    for (const o of owned.reverse()) o.delete();
  }
}
