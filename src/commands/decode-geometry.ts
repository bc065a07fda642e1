import { Flags } from '@oclif/core';
import { pipeFlags, shardArgs, VggrpoCommand } from '../cli/base.js';
import type { DecodeGeometryResult } from '../stages/decode-geometry.js';

export default class DecodeGeometry extends VggrpoCommand {
  static override summary =
    'Run the latent geometry model on final latents (or, with --via rgb, the VAE decoder and the RGB geometry model): depth, world points, confidence, cameras.';
  static override description =
    'Reads trajectory shards (arguments or paths on stdin, started as each arrives) and writes geometry shards: depth, points (world), confidence, camera-from-world extrinsics, intrinsics, scene flow when the model has it. Output names and the camera convention come from lgm_outputs.* in the config. --via rgb decodes the latents with models.vae_decoder (vae.* conventions) and runs models.geometry (geometry_outputs.*) on the frames at the positions of the latent frames: the same shards, for the cost comparison or as the RGB-path judge.';
  static override examples = [
    '<%= config.bin %> decode-geometry runs/x/trajectory/shard-0000.safetensors',
    '<%= config.bin %> sample --prompts p.txt | <%= config.bin %> decode-geometry --render runs/x/render',
  ];
  static override strict = false;
  static override args = shardArgs('trajectory shards (or paths on stdin)');
  static override flags = {
    ...pipeFlags,
    out: Flags.directory({ description: 'output folder (default: geometry/ beside the input shard folder)' }),
    render: Flags.directory({
      description: 'also write colour-mapped depth PNGs and a camera-path plot per sample here',
    }),
    lgm: Flags.file({ description: 'latent geometry model (models.lgm)' }),
    via: Flags.string({
      description: 'reward path: latent (the LGM on latents) or rgb (VAE decode, then Φ on the frames)',
      options: ['latent', 'rgb'],
      default: 'latent',
    }),
    'geometry-model': Flags.file({ description: 'RGB geometry model Φ for --via rgb (models.geometry)' }),
  };

  async run(): Promise<DecodeGeometryResult> {
    // Stages load on use, so oclif's command discovery stays cheap.
    const { runDecodeGeometry } = await import('../stages/decode-geometry.js');
    const { argv, flags } = await this.parse(DecodeGeometry);
    const picked = {
      ...(flags.lgm ? { lgm: flags.lgm } : {}),
      ...(flags['geometry-model'] ? { geometry: flags['geometry-model'] } : {}),
    };
    const models = Object.keys(picked).length ? picked : undefined;
    return runDecodeGeometry(
      this.shardInputs(argv as string[], {
        expected: 'trajectory shards',
        completeness: 'stdin',
        allowPartial: flags['allow-partial'],
        allowRoots: flags['allow-root'],
      }),
      { out: flags.out, render: flags.render, via: flags.via as 'latent' | 'rgb' },
      (recorded, source) =>
        this.resolveConfig({ file: flags.config, recorded, source, flags: models ? { models } : {} }),
      { emit: (p) => this.log(p), note: (m) => this.note(m) },
    );
  }
}
