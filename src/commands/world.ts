import { Flags } from '@oclif/core';
import { numberFlag, VggrpoCommand } from '../cli/base.js';
import { runWorld, type WorldResult } from '../stages/world.js';
import type { TrajectoryFamily } from '../world/index.js';

export default class World extends VggrpoCommand {
  static override summary =
    'Write toy-world scenes with exact ground truth as geometry shards (plus their latents and RGB).';
  static override description =
    'Each group is one procedural scene and one camera-path family (orbit, dolly, pan, arc) seen with increasing camera jitter, the first member smooth. The shards are geometry shards, so `vggrpo score` and `vggrpo eval` read them directly; they also hold rgb frames, final_latents and the jitter level. With models.vae_encoder set (the learned toy world) the frames are 64×64 and the latents the VAE encoder’s; without it, 16×16 frames and the analytic toy latents (src/toy/latent.ts).';
  static override examples = [
    '<%= config.bin %> world --out runs/world --scenes 8 | <%= config.bin %> score',
    '<%= config.bin %> world --out runs/dyn --dynamic --jitter-pos 0.05',
  ];
  static override flags = {
    out: Flags.directory({ description: 'output folder', default: 'runs/world/geometry' }),
    scenes: Flags.integer({ description: 'groups (scenes) to write', default: 4, min: 1 }),
    'group-size': Flags.integer({ description: 'members per group (jitter levels)', default: 4, min: 2 }),
    'jitter-pos': Flags.string({
      description: 'position jitter std of the last member (world units)',
      default: '0.04',
    }),
    'jitter-rot': Flags.string({
      description: 'rotation jitter std of the last member (radians)',
      default: '0.03',
    }),
    dynamic: Flags.boolean({ description: 'scenes with rigidly moving objects' }),
    families: Flags.string({
      description: 'comma-separated camera-path families',
      default: 'orbit,dolly,pan,arc',
    }),
    'per-shard': Flags.integer({ description: 'groups per shard', default: 4, min: 1 }),
  };

  async run(): Promise<WorldResult> {
    const { flags } = await this.parse(World);
    return runWorld(
      {
        out: flags.out,
        scenes: flags.scenes,
        groupSize: flags['group-size'],
        jitterPos: numberFlag(flags['jitter-pos'], 'jitter-pos')!,
        jitterRot: numberFlag(flags['jitter-rot'], 'jitter-rot')!,
        dynamic: flags.dynamic,
        seed: flags.seed ?? 0,
        families: flags.families.split(',').map((s) => s.trim()) as TrajectoryFamily[],
        perShard: flags['per-shard'],
        config: this.resolveConfig({ file: flags.config }),
      },
      (p) => this.log(p),
    );
  }
}
