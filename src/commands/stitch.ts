import { Flags } from '@oclif/core';
import { VggrpoCommand } from '../cli/base.js';
import type { StitchResult } from '../stages/stitch.js';

export default class Stitch extends VggrpoCommand {
  static override summary =
    'Stitch a latent geometry model: LGM = Φ after the stitch point ∘ a connector from VAE latents, fitted to Φ on RGB videos.';
  static override description =
    'Encodes the videos with the VAE encoder, runs Φ on the frames at the latent-frame positions, chooses the stitch point (--at auto: a ridge map from latent patches to each candidate tensor tokenizer.output / blocks.N.output, scored on held-out videos), fits the connector (phase 1) and fine-tunes it with Φ’s later layers on Φ’s outputs (phase 2). Writes lgm.onnx (the LGM contract), lgm-config.yaml (models.lgm and lgm_outputs for it), checkpoint.safetensors, curves.csv/.svg and stitch.json into --out; stdout lists them. See onnx/README.md, Stitching.';
  static override examples = [
    '<%= config.bin %> stitch --geometry-model onnx/fixtures/geometry_rgb.onnx --encoder onnx/fixtures/vae_encoder.onnx --toy-videos 256 --out runs/stitch',
    '<%= config.bin %> stitch --geometry-model vggt.onnx --encoder wan_vae_encoder.onnx --videos clips/ --at auto --out runs/stitch-wan',
  ];
  static override flags = {
    'geometry-model': Flags.string({ description: 'the RGB geometry model Φ (default: models.geometry)' }),
    encoder: Flags.string({
      description:
        "the VAE encoder (default: models.vae_encoder); 'shards': the latents stored with the frames in the --videos shards (final_latents)",
    }),
    videos: Flags.string({ description: 'a folder of mp4 files, of PNG-frame folders, or shards with rgb' }),
    'toy-videos': Flags.integer({ description: 'instead of --videos: N toy-world training videos', min: 1 }),
    at: Flags.string({ description: 'stitch tensor of Φ, or auto', default: 'auto' }),
    connector: Flags.string({
      description:
        'conv3d (the paper’s: kernel 5, stride 1×2×2, padding 2), patch, or conv3d:K[:ST,SH,SW[:PT,PH,PW]]',
      default: 'conv3d',
    }),
    out: Flags.directory({ description: 'run folder', required: true }),
    resume: Flags.boolean({ description: 'continue from the checkpoint in --out' }),
  };

  async run(): Promise<StitchResult> {
    const { flags } = await this.parse(Stitch);
    const { runStitch } = await import('../stages/stitch.js');
    const { InputError } = await import('../errors.js');
    if (flags.videos && flags['toy-videos'] !== undefined)
      throw new InputError('--videos', 'give --videos or --toy-videos, not both');
    const config = this.resolveConfig({ file: flags.config });
    return runStitch(
      {
        geometryModel: flags['geometry-model'],
        encoder: flags.encoder,
        videos: flags.videos,
        toyVideos: flags['toy-videos'],
        at: flags.at,
        connector: flags.connector,
        out: flags.out,
        resume: flags.resume,
        seed: flags.seed ?? 0,
        config,
      },
      (m) => this.note(m),
      (p) => this.log(p),
    );
  }
}
