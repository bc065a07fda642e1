/**
 * `decode-geometry`: the latent geometry model on final latents (`--via latent`, default) or
 * VAE decode + the RGB geometry model Φ on the frames (`--via rgb`, src/stages/rgb-path.ts) →
 * geometry shards in one internal form (camera-from-world extrinsics, pixel intrinsics),
 * whatever the model's camera convention (`lgm_outputs.*` / `geometry_outputs.*`). The header
 * field `vggrpo.geometry_path` says which path made a shard.
 */
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { runtimeOptions } from '../rl/policy.js';
import { checkFeedShape } from '../runtime/contract.js';
import { ModelSession } from '../runtime/session.js';
import { nonfiniteMask, nonfiniteSamples } from '../shards/finite.js';
import { defaultOutDir, readShard, type Shard, writeShard } from '../shards/shard.js';
import { type Tensor, tensor } from '../shards/tensor.js';
import {
  checkGeometryOutputs,
  GEOMETRY_BATCH,
  type GeometryBatch,
  geometryFetch,
  readGeometryOutputs,
  runBatched,
} from './geometry-outputs.js';
import { decodeViaRgb, openRgbPath } from './rgb-path.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface DecodeGeometryResult {
  shards: string[];
  samples: number;
  warnings: string[];
}

export type { GeometryBatch } from './geometry-outputs.js';

/** Which reward path makes the geometry: the LGM on latents, or VAE decode + Φ on frames. */
export type GeometryPath = 'latent' | 'rgb';

/**
 * Open the LGM, checking its latents input and every output `lgm_outputs` maps (exit 2 naming
 * the model and key before any work).
 *
 * @example
 *   const lgm = await openLgm(config);
 */
export async function openLgm(config: Config): Promise<ModelSession> {
  const path = config.models.lgm;
  if (!path) throw new InputError('config', 'models.lgm is not set (give --lgm or models.lgm in --config)');
  const s = await ModelSession.open(path, runtimeOptions(config));
  try {
    const o = config.lgm_outputs;
    if (!s.inputNames.includes(o.latents_input)) {
      throw new InputError(
        path,
        `geometry model has no input '${o.latents_input}' (lgm_outputs.latents_input)`,
      );
    }
    checkGeometryOutputs(s, o, 'lgm_outputs');
  } catch (err) {
    await s.release();
    throw err;
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
  batch = GEOMETRY_BATCH,
): Promise<GeometryBatch> {
  const o = config.lgm_outputs;
  const fetch = geometryFetch(lgm, o);
  const outs = await runBatched(
    latents,
    batch,
    (x) => lgm.run({ [o.latents_input]: x }, fetch),
    fetch,
    lgm.source,
  );
  return readGeometryOutputs(outs, o, 'lgm_outputs', lgm.source);
}

/** The geometry models of one path, opened once per distinct config. */
interface PathModels {
  decode(latents: Tensor, from: string): Promise<GeometryBatch>;
  release(): Promise<void>;
}

async function openPath(via: GeometryPath, config: Config): Promise<PathModels> {
  if (via === 'rgb') {
    const rgb = await openRgbPath(config);
    return { decode: (x, from) => decodeViaRgb(rgb, config, x, from), release: () => rgb.release() };
  }
  const lgm = await openLgm(config);
  return {
    decode: (x, from) => {
      checkFeedShape(
        lgm.inputs,
        lgm.source,
        config.lgm_outputs.latents_input,
        x.shape,
        from,
        'final_latents',
      );
      return decodeLatents(lgm, config, x);
    },
    release: () => lgm.release(),
  };
}

/**
 * The samples to carry as non-finite: those the trajectory already marked, and those whose
 * geometry came out non-finite here (a per-sample warning, src/shards/finite.ts).
 */
function markNonfinite(traj: Shard, out: Record<string, Tensor>, warn: (w: string) => void): Tensor {
  const B = traj.dims.B ?? 0;
  const mask = nonfiniteMask(traj.tensors, B);
  for (const name of [
    'depth',
    'points',
    'confidence',
    'extrinsics',
    'intrinsics',
    'scene_flow',
    'dynamic_mask',
  ]) {
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

export async function runDecodeGeometry(
  inputs: AsyncIterable<string>,
  opts: { out?: string; render?: string; via?: GeometryPath },
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<DecodeGeometryResult> {
  const shards: string[] = [];
  const warnings: string[] = [];
  let samples = 0;
  const via = opts.via ?? 'latent';
  let models: PathModels | undefined;
  let modelsKey = '';
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
      const key = JSON.stringify(
        via === 'rgb'
          ? [
              config.models.vae_decoder,
              config.models.geometry,
              config.vae,
              config.geometry_outputs,
              config.runtime,
            ]
          : [config.models.lgm, config.lgm_outputs, config.runtime],
      );
      if (!models || key !== modelsKey) {
        await models?.release();
        models = undefined;
        models = await openPath(via, config);
        modelsKey = key;
      }
      const finals = traj.tensors.get('final_latents')!;
      const g = await models.decode(finals, input);
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
      if (g.dynamic_mask) tensors.dynamic_mask = g.dynamic_mask;
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
        extra: {
          // Which reward path made the geometry (score/eval/grpo-step read either alike).
          'vggrpo.geometry_path': via,
          ...(traj.metadata['vggrpo.prompts'] ? { 'vggrpo.prompts': traj.metadata['vggrpo.prompts'] } : {}),
        },
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
    await models?.release();
  }
  return { shards, samples, warnings };
}
