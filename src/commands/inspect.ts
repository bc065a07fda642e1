import { Args, Flags } from '@oclif/core';
import { VggrpoCommand } from '../cli/base.js';
import { formatSummary, inspectFile, type Summary } from '../stages/inspect.js';

export default class Inspect extends VggrpoCommand {
  static override summary = 'Show what a shard or an .onnx model holds.';
  static override description =
    'For a shard: kind, metadata and every tensor (name, dtype, shape, min/max/mean, NaN count). For an .onnx model: opset, inputs, outputs and operator counts.';
  static override examples = [
    '<%= config.bin %> inspect runs/x/rewards/shard-0000.safetensors',
    '<%= config.bin %> inspect onnx/fixtures/denoiser.onnx --json',
  ];
  static override strict = false;
  static override args = {
    files: Args.string({ description: 'shards or .onnx files (or paths on stdin)', ignoreStdin: true }),
  };
  static override flags = {
    verify: Flags.boolean({
      description:
        'check instead of summarise: each shard reads whole and its lineage inputs still have their recorded hashes (a policy folder: its checkpoint loads); prints the paths that verify, exit 2 at the first that does not',
    }),
    'allow-root': Flags.directory({
      description: 'with --verify: also allow lineage under this folder',
      multiple: true,
    }),
  };

  async run(): Promise<{ files: Summary[] }> {
    const { argv, flags } = await this.parse(Inspect);
    const files: Summary[] = [];
    const inputs = this.shardInputs(argv as string[], {
      expected: 'shards, policy folders or .onnx models',
      completeness: 'never',
      folders: true,
      allowRoots: flags['allow-root'],
    });
    if (flags.verify) {
      const { verifyOutput } = await import('../stages/verify.js');
      for await (const path of inputs) {
        verifyOutput(path, inputs.roots);
        this.log(path);
      }
      return { files };
    }
    for await (const path of inputs) {
      const s = await inspectFile(path);
      files.push(s);
      this.log(formatSummary(s));
    }
    return { files };
  }
}
