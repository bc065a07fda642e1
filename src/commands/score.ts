import { Flags } from '@oclif/core';
import { pipeFlags, shardArgs, VggrpoCommand } from '../cli/base.js';
import { runScore, type ScoreResult } from '../stages/score.js';

export default class Score extends VggrpoCommand {
  static override summary =
    'Score geometry: camera-motion smoothness and reprojection consistency, group-relative advantages.';
  static override description =
    'Reads geometry shards and writes reward shards: reward/<name> per reward, the weighted reward, and advantages (z-normalised within each group, weighted, clipped to ±5 once). Rewards and weights come from rewards.* in the config.';
  static override examples = [
    '<%= config.bin %> score runs/x/geometry/shard-0000.safetensors',
    '<%= config.bin %> decode-geometry runs/x/trajectory/*.safetensors | <%= config.bin %> score --json',
  ];
  static override strict = false;
  static override args = shardArgs('geometry shards (or paths on stdin)');
  static override flags = {
    ...pipeFlags,
    out: Flags.directory({ description: 'output folder (default: rewards/ beside the input shard folder)' }),
  };

  async run(): Promise<ScoreResult> {
    const { argv, flags } = await this.parse(Score);
    return runScore(
      this.shardInputs(argv as string[], {
        expected: 'geometry shards',
        completeness: 'stdin',
        allowPartial: flags['allow-partial'],
        allowRoots: flags['allow-root'],
      }),
      { out: flags.out },
      (recorded, source) => this.resolveConfig({ file: flags.config, recorded, source }),
      { emit: (p) => this.log(p), note: (m) => this.note(m) },
    );
  }
}
