/**
 * `world`: the toy world's ground truth as shards. Each group is one scene and one camera-path
 * family seen with increasing camera jitter (the first member smooth), so `score` on it must
 * rank smooth above jittery. Each shard also carries the RGB frames and their latents:
 * - with `models.vae_encoder` set (the learned toy world, examples/toy/config.yaml): 64×64 frames
 *   and the VAE encoder's latents — what the encoder learned, no geometry channels;
 * - without it: the analytic toy latents of src/toy/latent.ts (what a perfect toy encoder gives,
 *   camera channels included) and 16×16 frames — the exact-reference world.
 */
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { VaeEncoder } from '../media/vae.js';
import { runId } from '../shards/completeness.js';
import { writeShard } from '../shards/shard.js';
import { f32, i64, type Tensor, tensor } from '../shards/tensor.js';
import { encodeScene } from '../toy/encoder.js';
import { LATENT_SHAPE } from '../toy/latent.js';
import { GEOMETRY, VIDEO } from '../toy/spaces.js';
import { renderToyVideo } from '../toy/videos.js';
import { makeScene, makeTrajectory, TRAJECTORY_FAMILIES, type TrajectoryFamily } from '../world/index.js';
import type { RenderedVideo } from '../world/render.js';

export interface WorldOptions {
  out: string;
  scenes: number;
  groupSize: number;
  /** Largest jitter: position std (world units) and rotation std (radians) of the last member. */
  jitterPos: number;
  jitterRot: number;
  dynamic: boolean;
  seed: number;
  families: TrajectoryFamily[];
  perShard: number;
  /** The resolved experiment config, recorded so later stages in a pipe inherit it. */
  config: Config;
}

export interface WorldResult {
  shards: string[];
  samples: number;
}

export async function runWorld(o: WorldOptions, emit: (p: string) => void): Promise<WorldResult> {
  if (o.groupSize < 2) throw new InputError('--group-size', 'a group needs at least 2 members');
  for (const f of o.families) {
    if (!TRAJECTORY_FAMILIES.includes(f))
      throw new InputError('--families', `unknown family '${f}' (${TRAJECTORY_FAMILIES.join(', ')})`);
  }
  const encoder = o.config.models.vae_encoder ? await VaeEncoder.open(o.config) : undefined;
  try {
    const shards: string[] = [];
    const groups = Array.from({ length: o.scenes }, (_, g) => g);
    const count = Math.ceil(groups.length / o.perShard);
    const run = runId({ world: { ...o, out: undefined } });
    for (let first = 0, n = 0; first < groups.length; first += o.perShard, n++) {
      const videos = groups.slice(first, first + o.perShard).flatMap((g) => groupVideos(o, g, !!encoder));
      const tensors = await shardTensors(videos, encoder);
      const path = join(resolve(o.out), `world-${String(n).padStart(4, '0')}.safetensors`);
      writeShard(path, 'geometry', tensors, {
        config: o.config,
        place: { run, index: n, count },
        extra: {
          'vggrpo.ground_truth': 'true',
          'vggrpo.world': JSON.stringify({ ...o, out: undefined, config: undefined }),
          'vggrpo.prompts': JSON.stringify(TRAJECTORY_FAMILIES),
        },
      });
      shards.push(path);
      emit(path);
    }
    return { shards, samples: o.scenes * o.groupSize };
  } finally {
    await encoder?.release();
  }
}

interface WorldVideo {
  group: number;
  family: TrajectoryFamily;
  /** Jitter level of the member: 0 (smooth) … 1 (the largest). */
  level: number;
  /** Ground truth at the geometry resolution 8×8. */
  geometry: RenderedVideo;
  /** The RGB render the latents are made from (64×64 learned, 16×16 analytic). */
  video: RenderedVideo;
  /** Frames [F, 3, H, W] in [0, 1] (learned world: the VAE encoder's input). */
  frames?: Float32Array;
  /** Analytic toy latents [C, F, H, W] (analytic world only). */
  latents?: Float32Array;
}

/** Group g: one scene, one family, jitter rising from 0 to the largest over the members. */
function groupVideos(o: WorldOptions, g: number, learned: boolean): WorldVideo[] {
  const scene = makeScene(o.seed * 1000 + g, { dynamic: o.dynamic });
  const family = o.families[g % o.families.length]!;
  return Array.from({ length: o.groupSize }, (_, m) => {
    const level = m / (o.groupSize - 1);
    const jitter = { pos: level * o.jitterPos, rot: level * o.jitterRot };
    const traj = makeTrajectory(family, {
      frames: VIDEO.frames,
      jitterPos: jitter.pos,
      jitterRot: jitter.rot,
      seed: o.seed * 7919 + g * 31 + m,
    });
    const base = { group: g, family, level };
    if (!learned) {
      const enc = encodeScene(scene, traj);
      return { ...base, geometry: enc.geometry, video: enc.colour, latents: enc.latents };
    }
    const v = renderToyVideo(scene, traj, jitter, o.dynamic);
    if (!v)
      throw new InputError(
        '--jitter-pos',
        `group ${g} member ${m}: the jittered camera leaves the room (lower --jitter-pos/--jitter-rot)`,
      );
    return { ...base, geometry: v.geometry, video: v.video, frames: v.frames };
  });
}

/** Ground truth at 8×8, the frames and their latents, batched over the shard's videos. */
async function shardTensors(
  videos: WorldVideo[],
  encoder: VaeEncoder | undefined,
): Promise<Record<string, Tensor>> {
  const B = videos.length;
  const F = VIDEO.frames;
  const { height: h, width: w } = GEOMETRY;
  const { height: H, width: W } = videos[0]!.video;
  const cat = <T extends Float32Array | Uint8Array>(
    make: (n: number) => T,
    pick: (v: WorldVideo) => T,
  ): T => {
    const parts = videos.map(pick);
    const out = make(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const f32s = (pick: (v: WorldVideo) => Float32Array) => cat((n) => new Float32Array(n), pick);
  const { latents, shape } = encoder
    ? await encoder.encode(
        f32s((v) => v.frames!),
        [B, F, H, W],
      )
    : { latents: f32s((v) => v.latents!), shape: [B, ...LATENT_SHAPE] };
  return {
    group_index: i64(
      [B],
      videos.map((v) => v.group),
    ),
    prompt_index: i64(
      [B],
      videos.map((v) => TRAJECTORY_FAMILIES.indexOf(v.family)),
    ),
    depth: f32(
      [B, F, h, w],
      f32s((v) => v.geometry.depth),
    ),
    points: f32(
      [B, F, h, w, 3],
      f32s((v) => v.geometry.points),
    ),
    confidence: f32(
      [B, F, h, w],
      f32s((v) => v.geometry.confidence),
    ),
    extrinsics: f32(
      [B, F, 3, 4],
      f32s((v) => v.geometry.extrinsics),
    ),
    intrinsics: f32(
      [B, F, 3, 3],
      f32s((v) => v.geometry.intrinsics),
    ),
    scene_flow: f32(
      [B, F, h, w, 3],
      f32s((v) => v.geometry.sceneFlow),
    ),
    final_latents: f32(shape, latents),
    rgb: tensor(
      'U8',
      [B, F, H, W, 3],
      cat(
        (n) => new Uint8Array(n),
        (v) => v.video.rgb,
      ),
    ),
    jitter: f32(
      [B],
      videos.map((v) => v.level),
    ),
  };
}
