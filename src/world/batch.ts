/**
 * Stack several videos' geometry into the batched arrays of a geometry shard ([B, F′, h, w], …),
 * the form `score` reads — for fixtures and the toy experiment.
 */
import { InputError } from '../errors.js';
import type { GeometrySample } from '../rewards/types.js';

export interface GeometryBatch {
  batch: number;
  frames: number;
  height: number;
  width: number;
  /** [B,F,h,w] */
  depth: Float32Array;
  /** [B,F,h,w,3] */
  points: Float32Array;
  /** [B,F,h,w] (ones where a video has none) */
  confidence: Float32Array;
  /** [B,F,3,4] */
  extrinsics: Float32Array;
  /** [B,F,3,3] */
  intrinsics: Float32Array;
  /** [B,F,h,w,3] (zeros where a video has none) */
  sceneFlow: Float32Array;
}

/**
 * @example
 *   const b = batchGeometry([renderVideo(s, t1), renderVideo(s, t2)]);
 *   b.depth; // Float32Array [2, F, h, w]
 */
export function batchGeometry(videos: readonly GeometrySample[]): GeometryBatch {
  if (videos.length === 0) throw new InputError('videos', 'no video to batch');
  const { frames, height, width } = videos[0]!;
  const n = frames * height * width;
  const B = videos.length;
  const out: GeometryBatch = {
    batch: B,
    frames,
    height,
    width,
    depth: new Float32Array(B * n),
    points: new Float32Array(B * n * 3),
    confidence: new Float32Array(B * n).fill(1),
    extrinsics: new Float32Array(B * frames * 12),
    intrinsics: new Float32Array(B * frames * 9),
    sceneFlow: new Float32Array(B * n * 3),
  };
  videos.forEach((v, b) => {
    if (v.frames !== frames || v.height !== height || v.width !== width) {
      throw new InputError(
        `videos[${b}]`,
        `${v.frames}×${v.height}×${v.width}, expected ${frames}×${height}×${width}`,
      );
    }
    out.depth.set(v.depth, b * n);
    out.points.set(v.points, 3 * b * n);
    if (v.confidence) out.confidence.set(v.confidence, b * n);
    out.extrinsics.set(v.extrinsics, 12 * b * frames);
    out.intrinsics.set(v.intrinsics, 9 * b * frames);
    if (v.sceneFlow) out.sceneFlow.set(v.sceneFlow, 3 * b * n);
  });
  return out;
}
