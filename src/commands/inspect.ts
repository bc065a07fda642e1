import { Args } from '@oclif/core';
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

  async run(): Promise<{ files: Summary[] }> {
    const { argv } = await this.parse(Inspect);
    const files: Summary[] = [];
    for await (const path of this.shardInputs(argv as string[], {
      expected: 'shards or .onnx models',
      completeness: 'never',
    })) {
      const s = await inspectFile(path);
      files.push(s);
      this.log(formatSummary(s));
    }
    return { files };
  }
}
