/**
 * `decode-geometry`: the latent geometry model on final latents → geometry shards in one
 * internal form (camera-from-world extrinsics, pixel intrinsics), whatever the model's camera
 * convention (`lgm_outputs.*`).
 */
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import {
  cameraToWorldToExtrinsics,
  intrinsicsFromParams,
  poseEncodingToCameras,
} from '../geometry/cameras.js';
import { runtimeOptions } from '../rl/policy.js';
import { checkFeedShape } from '../runtime/contract.js';
import { ModelSession } from '../runtime/session.js';
import { nonfiniteMask, nonfiniteSamples } from '../shards/finite.js';
import { defaultOutDir, readShard, type Shard, writeShard } from '../shards/shard.js';
import { f32, type Tensor, tensor } from '../shards/tensor.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface DecodeGeometryResult {
  shards: string[];
  samples: number;
  warnings: string[];
}

export interface GeometryBatch {
  depth: Tensor;
  points: Tensor;
  confidence: Tensor;
  extrinsics: Tensor;
  intrinsics: Tensor;
  scene_flow?: Tensor;
  warnings: string[];
}

/** Batch size for the LGM; memory grows with it, results do not depend on it. */
const LGM_BATCH = 8;

export async function openLgm(config: Config): Promise<ModelSession> {
  const path = config.models.lgm;
  if (!path) throw new InputError('config', 'models.lgm is not set (give --lgm or models.lgm in --config)');
  const s = await ModelSession.open(path, runtimeOptions(config));
  const o = config.lgm_outputs;
  if (!s.inputNames.includes(o.latents_input)) {
    throw new InputError(
      path,
      `geometry model has no input '${o.latents_input}' (lgm_outputs.latents_input)`,
    );
  }
  for (const [key, name] of Object.entries({
    depth: o.depth,
    points: o.points,
    confidence: o.confidence,
    cameras: o.cameras,
  })) {
    if (!s.outputNames.includes(name)) {
      throw new InputError(
        path,
        `geometry model has no output '${name}' (lgm_outputs.${key}); it has ${s.outputNames.join(', ')}`,
      );
    }
  }
  return s;
}

/**
 * Run the LGM on latents [B, C, F, H, W] and map its outputs to the geometry-shard form.
 *
 * @example
 *   const g = await decodeLatents(lgm, config, finalLatents);
 */
export async function decodeLatents(
  lgm: ModelSession,
  config: Config,
  latents: Tensor,
): Promise<GeometryBatch> {
  const o = config.lgm_outputs;
  const [B, ...rest] = latents.shape as [number, ...number[]];
  const per = rest.reduce((a, b) => a * b, 1);
  const parts: Record<string, Tensor>[] = [];
  const fetch = [o.depth, o.points, o.confidence, o.cameras];
  const hasFlow = o.scene_flow !== null && lgm.outputNames.includes(o.scene_flow);
  if (hasFlow) fetch.push(o.scene_flow!);
  for (let b0 = 0; b0 < B; b0 += LGM_BATCH) {
    const nb = Math.min(LGM_BATCH, B - b0);
    const x = f32([nb, ...rest], (latents.data as Float32Array).subarray(b0 * per, (b0 + nb) * per));
    parts.push(await lgm.run({ [o.latents_input]: x }, fetch));
  }
  const cat = (name: string): Tensor =>
    concatBatch(
      parts.map((p) => p[name]!),
      lgm.source,
      name,
    );
  const depth = cat(o.depth);
  const points = cat(o.points);
  const confidence = cat(o.confidence);
  const cams = cat(o.cameras);
  if (depth.shape.length !== 4)
    throw new InputError(lgm.source, `output '${o.depth}' must be [B, F, h, w], got [${depth.shape}]`);
  const [, Fp, h, w] = depth.shape as [number, number, number, number];
  expectShape(lgm.source, o.points, points, [B, Fp, h, w, 3]);
  expectShape(lgm.source, o.confidence, confidence, [B, Fp, h, w]);
  const extr = new Float32Array(B * Fp * 12);
  const intr = new Float32Array(B * Fp * 9);
  const warnings: string[] = [];
  const camData = cams.data as Float32Array;
  for (let b = 0; b < B; b++) {
    try {
      if (o.camera_convention === 'vggt') {
        expectShape(lgm.source, o.cameras, cams, [B, Fp, 9]);
        const c = poseEncodingToCameras(camData.subarray(b * Fp * 9, (b + 1) * Fp * 9), h, w);
        extr.set(c.extrinsics, b * Fp * 12);
        intr.set(c.intrinsics, b * Fp * 9);
      } else {
        if (!o.intrinsics)
          throw new InputError(
            'config',
            `lgm_outputs.intrinsics [fx, fy, cx, cy] is required with camera_convention ${o.camera_convention}`,
          );
        intr.set(intrinsicsFromParams(o.intrinsics, Fp), b * Fp * 9);
        if (o.camera_convention === 'c2w') {
          expectShape(lgm.source, o.cameras, cams, [B, Fp, 4, 4]);
          extr.set(cameraToWorldToExtrinsics(camData.subarray(b * Fp * 16, (b + 1) * Fp * 16)), b * Fp * 12);
        } else {
          expectShape(lgm.source, o.cameras, cams, [B, Fp, 3, 4]);
          extr.set(camData.subarray(b * Fp * 12, (b + 1) * Fp * 12), b * Fp * 12);
        }
      }
    } catch (err) {
      if (!(err instanceof InputError) || !/quaternion|non-finite/.test(err.message)) throw err;
      // A degenerate camera from a bad sample: keep the sample, mark its cameras non-finite.
      extr.fill(Number.NaN, b * Fp * 12, (b + 1) * Fp * 12);
      intr.fill(Number.NaN, b * Fp * 9, (b + 1) * Fp * 9);
      warnings.push(`sample ${b}: ${err.fault}`);
    }
  }
  let scene_flow: Tensor | undefined;
  if (hasFlow) {
    scene_flow = cat(o.scene_flow!);
    expectShape(lgm.source, o.scene_flow!, scene_flow, [B, Fp, h, w, 3]);
  }
  return {
    depth,
    points,
    confidence,
    extrinsics: f32([B, Fp, 3, 4], extr),
    intrinsics: f32([B, Fp, 3, 3], intr),
    scene_flow,
    warnings,
  };
}

/**
 * The samples to carry as non-finite: those the trajectory already marked, and those whose
 * geometry came out non-finite here (a per-sample warning, src/shards/finite.ts).
 */
function markNonfinite(traj: Shard, out: Record<string, Tensor>, warn: (w: string) => void): Tensor {
  const B = traj.dims.B ?? 0;
  const mask = nonfiniteMask(traj.tensors, B);
  for (const name of ['depth', 'points', 'confidence', 'extrinsics', 'intrinsics', 'scene_flow']) {
    const t = out[name];
    if (!t) continue;
    const bad = nonfiniteSamples(t.data as Float32Array, B);
    bad.forEach((v, b) => {
      if (v && !mask[b]) {
        mask[b] = 1;
        warn(`sample ${b}: non-finite '${name}' from the geometry model; it will score the group minimum`);
      }
    });
  }
  return tensor('U8', [B], mask);
}

function expectShape(model: string, name: string, t: Tensor, want: number[]): void {
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

export async function runDecodeGeometry(
  inputs: AsyncIterable<string>,
  opts: { out?: string; render?: string },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<DecodeGeometryResult> {
  const shards: string[] = [];
  const warnings: string[] = [];
  let samples = 0;
  let lgm: ModelSession | undefined;
  let lgmKey = '';
  try {
    for await (const input of inputs) {
      // A trajectory shard, or a ground-truth world shard (geometry with final_latents).
      const traj = readShard(input, ['trajectory', 'geometry']);
      if (!traj.tensors.has('final_latents')) {
        throw new InputError(
          input,
          "has no 'final_latents' tensor (a trajectory shard or a `vggrpo world` shard is expected)",
        );
      }
      const config = resolveConfig(traj.config, input);
      const key = JSON.stringify([config.models.lgm, config.runtime]);
      if (!lgm || key !== lgmKey) {
        await lgm?.release();
        lgm = await openLgm(config);
        lgmKey = key;
      }
      const finals = traj.tensors.get('final_latents')!;
      checkFeedShape(
        lgm.inputs,
        lgm.source,
        config.lgm_outputs.latents_input,
        finals.shape,
        input,
        'final_latents',
      );
      const g = await decodeLatents(lgm, config, finals);
      for (const w of g.warnings) {
        warnings.push(`${input}: ${w}`);
        io.note(`warning: ${input}: ${w}`);
      }
      const out = join(resolve(opts.out ?? defaultOutDir(input, 'geometry')), basename(input));
      const tensors: Record<string, Tensor> = {
        group_index: traj.tensors.get('group_index')!,
        prompt_index: traj.tensors.get('prompt_index')!,
        depth: g.depth,
        points: g.points,
        confidence: g.confidence,
        extrinsics: g.extrinsics,
        intrinsics: g.intrinsics,
      };
      if (g.scene_flow) tensors.scene_flow = g.scene_flow;
      tensors.nonfinite = markNonfinite(traj, tensors, (w) => {
        warnings.push(`${input}: ${w}`);
        io.note(`warning: ${input}: ${w}`);
      });
      if (traj.kind === 'geometry') {
        // Ground truth travels along, so `eval` can measure the geometry model against it.
        for (const k of ['depth', 'extrinsics', 'intrinsics']) tensors[`gt_${k}`] = traj.tensors.get(k)!;
      }
      writeShard(out, 'geometry', tensors, {
        config,
        inputs: [input],
        place: traj.place,
        extra: traj.metadata['vggrpo.prompts'] ? { 'vggrpo.prompts': traj.metadata['vggrpo.prompts'] } : {},
      });
      if (opts.render) {
        const { renderGeometry } = await import('./render-geometry.js');
        await renderGeometry(out, opts.render);
      }
      samples += finals.shape[0]!;
      shards.push(out);
      io.emit(out);
      io.note(`decode-geometry: ${basename(input)} → ${out} (${finals.shape[0]} samples)`);
    }
  } finally {
    await lgm?.release();
  }
  return { shards, samples, warnings };
}
