/**
 * Reading a geometry model's outputs into the geometry-shard form (camera-from-world extrinsics,
 * pixel intrinsics of the h×w output), one code path for both geometry models: the latent
 * geometry model (`lgm_outputs.*`, latents in) and the RGB model Φ (`geometry_outputs.*`, frames
 * in). The two mappings share one field set (src/config/schema.ts), so `decode-geometry` writes
 * the same shards whichever path made them.
 */
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import {
  cameraToWorldToExtrinsics,
  intrinsicsFromParams,
  poseEncodingToCameras,
} from '../geometry/cameras.js';
import { type GeometryArrays, geometryArrays } from '../rewards/types.js';
import type { ModelSession } from '../runtime/session.js';
import { f32, type Tensor } from '../shards/tensor.js';

/** The shared output mapping (either `lgm_outputs` or `geometry_outputs`, less its input name). */
export type GeometryOutputMapping = Omit<Config['lgm_outputs'], 'latents_input'>;
/** Which config section the mapping came from, for messages. */
export type MappingKey = 'lgm_outputs' | 'geometry_outputs' | 'eval.judge_outputs';

export interface GeometryBatch {
  depth: Tensor;
  points: Tensor;
  confidence: Tensor;
  extrinsics: Tensor;
  intrinsics: Tensor;
  scene_flow?: Tensor;
  /** [B, F, h, w] in [0, 1]: 1 where the model sees moving content (`*.dynamic_mask`). */
  dynamic_mask?: Tensor;
  warnings: string[];
}

/** Batch size for a geometry model; memory grows with it, results do not depend on it. */
/**
 * A batch's arrays in the form rewards and `sliceGeometry` take.
 *
 * @example
 *   const g = sliceGeometry(batchArrays(readGeometryOutputs(outs, o, key, src)), 0, F, h, w);
 */
export function batchArrays(g: GeometryBatch): GeometryArrays {
  const byName: Record<string, Tensor | undefined> = {
    depth: g.depth,
    points: g.points,
    confidence: g.confidence,
    extrinsics: g.extrinsics,
    intrinsics: g.intrinsics,
    scene_flow: g.scene_flow,
    dynamic_mask: g.dynamic_mask,
  };
  return geometryArrays((k) => byName[k]);
}

export const GEOMETRY_BATCH = 8;

/**
 * Check that the model has every output the mapping names (the optional ones when set): exit 2
 * naming the model and the key before any work.
 *
 * @example
 *   checkGeometryOutputs(lgm, config.lgm_outputs, 'lgm_outputs');
 */
export function checkGeometryOutputs(s: ModelSession, o: GeometryOutputMapping, key: MappingKey): void {
  const named: [string, string | null][] = [
    ['depth', o.depth],
    ['points', o.points],
    ['confidence', o.confidence],
    ['cameras', o.cameras],
    ['intrinsics_output', o.intrinsics_output],
    ['dynamic_mask', o.dynamic_mask],
  ];
  for (const [field, name] of named) {
    if (name !== null && !s.outputNames.includes(name)) {
      throw new InputError(
        s.source,
        `geometry model has no output '${name}' (${key}.${field}); it has ${s.outputNames.join(', ')}`,
      );
    }
  }
  if (o.camera_convention !== 'vggt' && !o.intrinsics && o.intrinsics_output === null)
    throw new InputError(
      'config',
      `${key}.intrinsics [fx, fy, cx, cy] or ${key}.intrinsics_output is required with camera_convention ${o.camera_convention}`,
    );
}

/**
 * The output names to fetch for a mapping: the four required ones, then scene flow, intrinsics
 * and the dynamic mask when the mapping names them and the model has them.
 *
 * @example
 *   const names = geometryFetch(lgm, config.lgm_outputs);
 */
export function geometryFetch(s: ModelSession, o: GeometryOutputMapping): string[] {
  const fetch = [o.depth, o.points, o.confidence, o.cameras];
  // Scene flow is optional in the default mapping, so a model without it is not an error.
  if (o.scene_flow !== null && s.outputNames.includes(o.scene_flow)) fetch.push(o.scene_flow);
  if (o.intrinsics_output !== null) fetch.push(o.intrinsics_output);
  if (o.dynamic_mask !== null) fetch.push(o.dynamic_mask);
  return fetch;
}

/**
 * Concatenated model outputs (batch-major) → the geometry-shard form, per the mapping.
 *
 * @example
 *   const g = readGeometryOutputs(outs, config.lgm_outputs, 'lgm_outputs', lgm.source);
 */
export function readGeometryOutputs(
  outs: Record<string, Tensor>,
  o: GeometryOutputMapping,
  key: MappingKey,
  source: string,
): GeometryBatch {
  const get = (name: string): Tensor => {
    const t = outs[name];
    if (!t) throw new InputError(source, `missing output '${name}'`);
    return t;
  };
  const depth = get(o.depth);
  const points = get(o.points);
  const confidence = get(o.confidence);
  const cams = get(o.cameras);
  if (depth.shape.length !== 4)
    throw new InputError(source, `output '${o.depth}' must be [B, F, h, w], got [${depth.shape}]`);
  const [B, Fp, h, w] = depth.shape as [number, number, number, number];
  expectShape(source, o.points, points, [B, Fp, h, w, 3]);
  expectShape(source, o.confidence, confidence, [B, Fp, h, w]);
  const perFrameK =
    o.intrinsics_output !== null ? intrinsicsPerFrame(get(o.intrinsics_output), B, Fp, source) : null;
  const extr = new Float32Array(B * Fp * 12);
  const intr = new Float32Array(B * Fp * 9);
  const warnings: string[] = [];
  const camData = cams.data as Float32Array;
  for (let b = 0; b < B; b++) {
    try {
      if (o.camera_convention === 'vggt') {
        expectShape(source, o.cameras, cams, [B, Fp, 9]);
        const c = poseEncodingToCameras(camData.subarray(b * Fp * 9, (b + 1) * Fp * 9), h, w);
        extr.set(c.extrinsics, b * Fp * 12);
        intr.set(c.intrinsics, b * Fp * 9);
      } else {
        if (!perFrameK) {
          if (!o.intrinsics)
            throw new InputError(
              'config',
              `${key}.intrinsics [fx, fy, cx, cy] is required with camera_convention ${o.camera_convention}`,
            );
          intr.set(intrinsicsFromParams(o.intrinsics, Fp), b * Fp * 9);
        }
        if (o.camera_convention === 'c2w') {
          expectShape(source, o.cameras, cams, [B, Fp, 4, 4]);
          extr.set(cameraToWorldToExtrinsics(camData.subarray(b * Fp * 16, (b + 1) * Fp * 16)), b * Fp * 12);
        } else {
          expectShape(source, o.cameras, cams, [B, Fp, 3, 4]);
          extr.set(camData.subarray(b * Fp * 12, (b + 1) * Fp * 12), b * Fp * 12);
        }
      }
    } catch (err) {
      if (!(err instanceof InputError) || !/quaternion|non-finite/.test(err.message)) throw err;
      // A degenerate camera from a bad sample: keep the sample, mark its cameras non-finite.
      extr.fill(Number.NaN, b * Fp * 12, (b + 1) * Fp * 12);
      intr.fill(Number.NaN, b * Fp * 9, (b + 1) * Fp * 9);
      warnings.push(`sample ${b}: ${err.fault}`);
      continue;
    }
    // The model's own per-frame intrinsics replace the fixed ones (or the pose encoding's fov).
    if (perFrameK) intr.set(perFrameK.subarray(b * Fp * 9, (b + 1) * Fp * 9), b * Fp * 9);
  }
  const g: GeometryBatch = {
    depth,
    points,
    confidence,
    extrinsics: f32([B, Fp, 3, 4], extr),
    intrinsics: f32([B, Fp, 3, 3], intr),
    warnings,
  };
  if (o.scene_flow !== null && outs[o.scene_flow]) {
    g.scene_flow = outs[o.scene_flow]!;
    expectShape(source, o.scene_flow, g.scene_flow, [B, Fp, h, w, 3]);
  }
  if (o.dynamic_mask !== null) {
    g.dynamic_mask = get(o.dynamic_mask);
    expectShape(source, o.dynamic_mask, g.dynamic_mask, [B, Fp, h, w]);
  }
  return g;
}

/**
 * A per-frame intrinsics output [B, F, 3, 3] or [B, F, 4] (fx, fy, cx, cy, pixels of the h×w
 * output, as `*.intrinsics`) → K [B·F·9].
 */
function intrinsicsPerFrame(t: Tensor, B: number, F: number, source: string): Float32Array {
  const d = t.data as Float32Array;
  const s = t.shape;
  if (s.length === 4 && s[0] === B && s[1] === F && s[2] === 3 && s[3] === 3) return d;
  if (s.length === 3 && s[0] === B && s[1] === F && s[2] === 4) return intrinsicsFromParamsPerFrame(d, B * F);
  throw new InputError(
    source,
    `intrinsics output is [${s.join(', ')}], expected [${B}, ${F}, 3, 3] or [${B}, ${F}, 4] (fx, fy, cx, cy)`,
  );
}

function intrinsicsFromParamsPerFrame(p: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * 9);
  for (let k = 0; k < n; k++) out.set(intrinsicsFromParams(p.subarray(4 * k, 4 * k + 4), 1), 9 * k);
  return out;
}

/**
 * Run a model on `x` in micro-batches of `batch` along the first axis, `prepare` turning each
 * slice into the model's feed (a VAE decode, say); the fetched outputs concatenated back.
 *
 * @example
 *   const outs = await runBatched(x, 8, (xb) => lgm.run({ latents: xb }, fetch), fetch, lgm.source);
 */
export async function runBatched(
  x: Tensor,
  batch: number,
  run: (xb: Tensor) => Promise<Record<string, Tensor>>,
  fetch: readonly string[],
  source: string,
): Promise<Record<string, Tensor>> {
  const [B, ...rest] = x.shape as [number, ...number[]];
  const per = rest.reduce((a, b) => a * b, 1);
  const parts: Record<string, Tensor>[] = [];
  for (let b0 = 0; b0 < B; b0 += batch) {
    const nb = Math.min(batch, B - b0);
    parts.push(await run(f32([nb, ...rest], (x.data as Float32Array).subarray(b0 * per, (b0 + nb) * per))));
  }
  const out: Record<string, Tensor> = {};
  for (const name of fetch)
    out[name] = concatBatch(
      parts.map((p) => p[name]!),
      source,
      name,
    );
  return out;
}

export function expectShape(model: string, name: string, t: Tensor, want: number[]): void {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new InputError(
      model,
      `output '${name}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}]`,
    );
  }
}

function concatBatch(parts: Tensor[], model: string, name: string): Tensor {
  if (parts.some((p) => !p)) throw new InputError(model, `missing output '${name}'`);
  if (parts.length === 1) return { ...parts[0]!, data: (parts[0]!.data as Float32Array).slice() };
  const total = parts.reduce((a, p) => a + p.data.length, 0);
  const data = new Float32Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p.data as Float32Array, off);
    off += p.data.length;
  }
  const B = parts.reduce((a, p) => a + p.shape[0]!, 0);
  return f32([B, ...parts[0]!.shape.slice(1)], data);
}
