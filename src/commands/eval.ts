import { Args, Flags } from '@oclif/core';
import { pipeFlags, VggrpoCommand } from '../cli/base.js';
import type { EvalResult } from '../stages/eval.js';

export default class Eval extends VggrpoCommand {
  static override summary =
    'Evaluate: camera jitter, reprojection error, rewards, trajectory and epipolar metrics; HTML report.';
  static override description =
    'Reads geometry shards (and trajectory shards for videos) or a run folder with iter-NNNN/ subfolders, and writes report.json and a self-contained report.html with plots and mp4 videos into --out.';
  static override examples = [
    '<%= config.bin %> eval runs/x/geometry/*.safetensors --out runs/x/eval',
    '<%= config.bin %> eval runs/toy --out runs/toy/report',
  ];
  static override strict = false;
  static override args = {
    inputs: Args.string({
      description: 'geometry shards or run folders (or paths on stdin)',
      ignoreStdin: true,
    }),
  };
  static override flags = {
    ...pipeFlags,
    out: Flags.directory({ description: 'report folder', required: true }),
  };

  async run(): Promise<EvalResult> {
    // Stages load on use, so oclif's command discovery stays cheap.
    const { runEval } = await import('../stages/eval.js');
    const { argv, flags } = await this.parse(Eval);
    return runEval(
      this.shardInputs(argv as string[], {
        expected: 'geometry shards or run folders',
        completeness: 'stdin',
        folders: true,
        allowPartial: flags['allow-partial'],
        allowRoots: flags['allow-root'],
      }),
      { out: flags.out },
      (recorded, source) => this.resolveConfig({ file: flags.config, recorded, source }),
      { emit: (p) => this.log(p), note: (m) => this.note(m) },
    );
  }
}
