/**
 * `world`: the toy world's ground truth as shards. Each group is one scene and one camera-path
 * family seen with increasing camera jitter (the first member smooth), so `score` on it must
 * rank smooth above jittery; each shard also carries the toy latents (what a perfect toy VAE
 * encoder gives) and the RGB frames.
 */
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { runId } from '../shards/completeness.js';
import { writeShard } from '../shards/shard.js';
import { f32, i64, type Tensor, tensor } from '../shards/tensor.js';
import { encodeScene } from '../toy/encoder.js';
import { LATENT_SHAPE, LATENT_SIZE, TOY } from '../toy/latent.js';
import { makeScene, makeTrajectory, TRAJECTORY_FAMILIES, type TrajectoryFamily } from '../world/index.js';

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

export function runWorld(o: WorldOptions, emit: (p: string) => void): WorldResult {
  if (o.groupSize < 2) throw new InputError('--group-size', 'a group needs at least 2 members');
  for (const f of o.families) {
    if (!TRAJECTORY_FAMILIES.includes(f))
      throw new InputError('--families', `unknown family '${f}' (${TRAJECTORY_FAMILIES.join(', ')})`);
  }
  const G = o.groupSize;
  const F = TOY.frames;
  const h = TOY.geoHeight;
  const w = TOY.geoWidth;
  const Hc = TOY.height;
  const Wc = TOY.width;
  const shards: string[] = [];
  const groups = Array.from({ length: o.scenes }, (_, g) => g);
  const count = Math.ceil(groups.length / o.perShard);
  const run = runId({ world: { ...o, out: undefined } });
  for (let first = 0, n = 0; first < groups.length; first += o.perShard, n++) {
    const ids = groups.slice(first, first + o.perShard);
    const B = ids.length * G;
    const depth = new Float32Array(B * F * h * w);
    const points = new Float32Array(B * F * h * w * 3);
    const confidence = new Float32Array(B * F * h * w);
    const extrinsics = new Float32Array(B * F * 12);
    const intrinsics = new Float32Array(B * F * 9);
    const flow = new Float32Array(B * F * h * w * 3);
    const latents = new Float32Array(B * LATENT_SIZE);
    const rgb = new Uint8Array(B * F * Hc * Wc * 3);
    const jitter = new Float32Array(B);
    const family: number[] = [];
    ids.forEach((g, k) => {
      const scene = makeScene(o.seed * 1000 + g, { dynamic: o.dynamic });
      const fam = o.families[g % o.families.length]!;
      for (let m = 0; m < G; m++) {
        const b = k * G + m;
        const level = m / (G - 1);
        const traj = makeTrajectory(fam, {
          frames: F,
          jitterPos: level * o.jitterPos,
          jitterRot: level * o.jitterRot,
          seed: o.seed * 7919 + g * 31 + m,
        });
        const enc = encodeScene(scene, traj);
        const geo = enc.geometry;
        depth.set(geo.depth, b * F * h * w);
        points.set(geo.points, b * F * h * w * 3);
        confidence.set(geo.confidence, b * F * h * w);
        extrinsics.set(geo.extrinsics, b * F * 12);
        intrinsics.set(geo.intrinsics, b * F * 9);
        flow.set(geo.sceneFlow, b * F * h * w * 3);
        latents.set(enc.latents, b * LATENT_SIZE);
        rgb.set(enc.colour.rgb, b * F * Hc * Wc * 3);
        jitter[b] = level;
        family.push(TRAJECTORY_FAMILIES.indexOf(fam));
      }
    });
    const tensors: Record<string, Tensor> = {
      group_index: i64(
        [B],
        ids.flatMap((g) => Array(G).fill(g)),
      ),
      prompt_index: i64([B], family),
      depth: f32([B, F, h, w], depth),
      points: f32([B, F, h, w, 3], points),
      confidence: f32([B, F, h, w], confidence),
      extrinsics: f32([B, F, 3, 4], extrinsics),
      intrinsics: f32([B, F, 3, 3], intrinsics),
      scene_flow: f32([B, F, h, w, 3], flow),
      final_latents: f32([B, ...LATENT_SHAPE], latents),
      rgb: tensor('U8', [B, F, Hc, Wc, 3], rgb),
      jitter: f32([B], jitter),
    };
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
  return { shards, samples: o.scenes * G };
}
