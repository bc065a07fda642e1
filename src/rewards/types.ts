/**
 * What every reward reads and how it is declared. A reward is a named pure function of ONE
 * video's geometry (the geometry model's outputs for that sample) with typed options and defaults.
 */

/**
 * One video's geometry in the geometry-shard layout (one batch entry): F frames of h×w outputs.
 * Arrays may be subarray views into a shard's buffers.
 */
export interface GeometrySample {
  frames: number;
  height: number;
  width: number;
  /** [F,h,w] depth along each camera's optical axis. */
  depth: Float32Array;
  /** [F,h,w,3] world points. */
  points: Float32Array;
  /** [F,h,w] confidence (higher = more confident); absent = all equally confident. */
  confidence?: Float32Array;
  /** [F,3,4] camera-from-world [R|t], OpenCV axes. */
  extrinsics: Float32Array | Float64Array;
  /** [F,3,3] pixel intrinsics of the h×w output. */
  intrinsics: Float32Array | Float64Array;
  /** [F,h,w,3] world displacement of each point to the next frame; absent = static scene. */
  sceneFlow?: Float32Array;
  /** [F,h,w] in [0, 1], 1 where the model sees moving content (a dynamic-mask output); absent = none. */
  dynamicMask?: Float32Array | Uint8Array;
}

/**
 * A reward: `compute` maps one video's geometry to a number (higher is better). `parseOptions`
 * turns the config's free-form `rewards.<name>.options` into typed options, naming the bad key.
 *
 * @example
 *   const r = motion.compute(sample, { eps: 1e-3 });
 */
export interface Reward<O extends object = object> {
  name: string;
  /** One line for `--help` and reports. */
  description: string;
  defaults: Readonly<O>;
  parseOptions(raw: Record<string, unknown> | undefined, where?: string): O;
  compute(geom: GeometrySample, options?: Partial<O>): number;
}

/** Batched geometry arrays, as geometry shards name them ([B, F, h, w, …] each). */
export interface GeometryArrays {
  depth: Float32Array;
  points: Float32Array;
  confidence?: Float32Array;
  extrinsics: Float32Array;
  intrinsics: Float32Array;
  sceneFlow?: Float32Array;
  dynamicMask?: Float32Array | Uint8Array;
}

/**
 * The arrays of a geometry batch by their shard tensor names (a shard's tensors, or a model's
 * outputs read into that form) — what `sliceGeometry` takes.
 *
 * @example
 *   const arrays = geometryArrays((k) => shard.tensors.get(k));
 */
export function geometryArrays(get: (name: string) => { data: unknown } | undefined): GeometryArrays {
  const need = (k: string) => {
    const t = get(k);
    if (!t) throw new Error(`geometry tensor '${k}' missing`);
    return t.data as Float32Array;
  };
  return {
    depth: need('depth'),
    points: need('points'),
    confidence: get('confidence')?.data as Float32Array | undefined,
    extrinsics: need('extrinsics'),
    intrinsics: need('intrinsics'),
    sceneFlow: get('scene_flow')?.data as Float32Array | undefined,
    dynamicMask: get('dynamic_mask')?.data as Float32Array | undefined,
  };
}

/**
 * Views of batch entry `b` of geometry-shard arrays (no copies).
 *
 * @example
 *   const g = sliceGeometry({ depth, points, extrinsics, intrinsics }, 2, 8, 32, 32);
 */
export function sliceGeometry(
  batch: GeometryArrays,
  b: number,
  frames: number,
  height: number,
  width: number,
): GeometrySample {
  const n = frames * height * width;
  return {
    frames,
    height,
    width,
    depth: batch.depth.subarray(b * n, (b + 1) * n),
    points: batch.points.subarray(3 * b * n, 3 * (b + 1) * n),
    confidence: batch.confidence?.subarray(b * n, (b + 1) * n),
    extrinsics: batch.extrinsics.subarray(12 * b * frames, 12 * (b + 1) * frames),
    intrinsics: batch.intrinsics.subarray(9 * b * frames, 9 * (b + 1) * frames),
    sceneFlow: batch.sceneFlow?.subarray(3 * b * n, 3 * (b + 1) * n),
    dynamicMask: batch.dynamicMask?.subarray(b * n, (b + 1) * n),
  };
}
