import { Flags } from '@oclif/core';
import { defined, numberFlag, pipeFlags, shardArgs, VggrpoCommand } from '../cli/base.js';
import type { GrpoStepResult } from '../stages/grpo-step.js';

export default class GrpoStep extends VggrpoCommand {
  static override summary = 'Clipped GRPO update of the LoRA policy from scored rollouts.';
  static override description =
    'Reads reward shards (and, through their lineage, the trajectory shards), recomputes log-probs with the LoRA-injected denoiser, and applies AdamW to the clipped GRPO loss (+ KL to the LoRA-off model). Writes a new policy checkpoint folder atomically and prints its path. With --grads-only, writes a gradient shard instead; --apply averages gradient shards and applies one update.';
  static override examples = [
    '<%= config.bin %> grpo-step runs/x/rewards/*.safetensors --policy runs/x/iter-0000/policy --out runs/x/iter-0001/policy',
    '<%= config.bin %> grpo-step shard-0003.safetensors --grads-only --out grads/',
    '<%= config.bin %> grpo-step --apply grads/*.safetensors --policy p0 --out p1',
  ];
  static override strict = false;
  static override args = shardArgs('reward shards (or paths on stdin); gradient shards with --apply');
  static override flags = {
    ...pipeFlags,
    policy: Flags.directory({ description: 'current policy checkpoint (default: a fresh LoRA, B = 0)' }),
    out: Flags.directory({
      description: 'new checkpoint folder (or gradient shard folder with --grads-only)',
    }),
    lr: Flags.string({ description: 'AdamW learning rate (grpo.lr)' }),
    'clip-range': Flags.string({ description: 'GRPO ratio clip ε (grpo.clip_range)' }),
    'kl-beta': Flags.string({ description: 'KL weight β (grpo.kl_beta)' }),
    'timestep-fraction': Flags.string({
      description: 'fraction of recorded steps trained on (grpo.timestep_fraction)',
    }),
    'grads-only': Flags.boolean({
      description: 'write a gradient shard instead of updating',
      exclusive: ['apply'],
    }),
    apply: Flags.boolean({ description: 'average the given gradient shards and apply one update' }),
    force: Flags.boolean({
      description:
        "resume even when --policy's training hash differs from this config's (README.md, Resuming)",
    }),
  };

  async run(): Promise<GrpoStepResult> {
    // Stages load on use, so oclif's command discovery stays cheap.
    const { runGrpoStep } = await import('../stages/grpo-step.js');
    const { argv, flags } = await this.parse(GrpoStep);
    const grpo = defined({
      lr: numberFlag(flags.lr, 'lr'),
      clip_range: numberFlag(flags['clip-range'], 'clip-range'),
      kl_beta: numberFlag(flags['kl-beta'], 'kl-beta'),
      timestep_fraction: numberFlag(flags['timestep-fraction'], 'timestep-fraction'),
    });
    return runGrpoStep(
      this.shardInputs(argv as string[], {
        expected: flags.apply ? 'gradient shards' : 'reward shards',
        // An update trains on the whole set; a --grads-only map task may take one shard of it.
        completeness: flags['grads-only'] ? 'stdin' : 'always',
        allowPartial: flags['allow-partial'],
        allowRoots: flags['allow-root'],
      }),
      {
        policy: flags.policy,
        out: flags.out,
        gradsOnly: flags['grads-only'],
        apply: flags.apply,
        seed: flags.seed,
        force: flags.force,
      },
      (recorded, source) => this.resolveConfig({ file: flags.config, recorded, source, flags: { grpo } }),
      { emit: (p) => this.log(p), note: (m) => this.note(m) },
    );
  }
}
