import { Flags } from '@oclif/core';
import { defined, InputError, numberFlag, VggrpoCommand } from '../cli/base.js';
import { rewardGuidanceFlags } from '../rl/reward-guidance.js';
import { runSample, type SampleResult } from '../stages/sample.js';

export default class Sample extends VggrpoCommand {
  static override summary =
    'Roll out the policy: flow-matching SDE sampling with log-probabilities, groups of videos per prompt.';
  static override description =
    'Writes trajectory shards (latents before/after each recorded stochastic step, sigmas, log-probs, final latents, context, seeds). A group never spans two shards. Prints each shard path on stdout as it is written.';
  static override examples = [
    '<%= config.bin %> sample --config examples/toy/config.yaml --prompts examples/toy/prompts.txt --out runs/t',
    '<%= config.bin %> sample --prompts p.txt --group-size 8 --steps 10 | <%= config.bin %> decode-geometry | <%= config.bin %> score',
  ];
  static override flags = {
    prompts: Flags.file({ description: 'prompts, one per line', exclusive: ['embeddings'] }),
    embeddings: Flags.file({ description: 'embeddings shard (context [P, L, D]) instead of prompts' }),
    out: Flags.directory({ description: 'output folder (default runs/<UTC time>/trajectory)' }),
    'group-size': Flags.integer({ description: 'videos per prompt (sampler.group_size)', min: 2 }),
    'micro-batch': Flags.integer({
      description: 'samples per denoiser batch, ×2 with guidance (sampler.micro_batch; default: the group)',
      min: 1,
    }),
    steps: Flags.integer({ description: 'denoising steps (sampler.steps)', min: 1 }),
    shift: Flags.string({ description: 'schedule shift (sampler.shift)' }),
    'noise-level': Flags.string({ description: 'SDE noise level a (sampler.noise_level)' }),
    guidance: Flags.string({ description: 'classifier-free guidance scale; 1 disables (sampler.guidance)' }),
    'sde-window': Flags.string({
      description: 'START:END window of stochastic, recorded steps (sampler.sde_window)',
    }),
    ode: Flags.boolean({ description: 'deterministic ODE sampling (evaluation)' }),
    'initial-noise': Flags.string({
      description:
        "'group': a group's videos share their initial noise; 'sample': each its own (sampler.initial_noise)",
      options: ['sample', 'group'],
    }),
    'per-shard': Flags.integer({ description: 'groups per shard (sampler.per_shard)', min: 1 }),
    policy: Flags.directory({ description: 'LoRA policy checkpoint folder (default: the base model)' }),
    part: Flags.string({
      description:
        'I/N: sample only the I-th (0-based) of N parts of the run, whole shards with their global indices and seeds (one job-array task each)',
    }),
    'reward-guidance': Flags.string({
      description:
        'test-time reward guidance scale s > 0: ṽ = v − s·σ/(1−σ)·∇r(x̂0) through the geometry model; not --guidance (sampler.reward_guidance.scale)',
    }),
    'reward-guidance-every': Flags.string({
      description: 'guide every K-th step of the window, K ≥ 1 (sampler.reward_guidance.every)',
    }),
    'reward-guidance-steps': Flags.string({
      description:
        'START:END window of guided steps (END exclusive); an open START skips σ = 1 (sampler.reward_guidance.steps)',
    }),
    'reward-guidance-reward': Flags.string({
      description: 'reward to guide by: motion, reprojection or both (sampler.reward_guidance.reward)',
    }),
    'reward-guidance-factor-cap': Flags.string({
      description: 'cap on σ/(1−σ), which makes σ = 1 guidable (sampler.reward_guidance.factor_cap)',
    }),
    'reward-guidance-through': Flags.string({
      description:
        "x0_hat: gradient w.r.t. x̂0 = x − σv only; denoiser: w.r.t. x, also through the denoiser's Jacobian (sampler.reward_guidance.through)",
    }),
  };

  async run(): Promise<SampleResult> {
    const { flags } = await this.parse(Sample);
    const sampler = defined({
      group_size: flags['group-size'],
      micro_batch: flags['micro-batch'],
      steps: flags.steps,
      shift: numberFlag(flags.shift, 'shift'),
      noise_level: numberFlag(flags['noise-level'], 'noise-level'),
      guidance: numberFlag(flags.guidance, 'guidance'),
      sde_window: flags['sde-window'],
      ode: flags.ode || undefined,
      initial_noise: flags['initial-noise'],
      per_shard: flags['per-shard'],
      seed: flags.seed,
    });
    const rewardGuidance = rewardGuidanceFlags({
      scale: flags['reward-guidance'],
      every: flags['reward-guidance-every'],
      steps: flags['reward-guidance-steps'],
      reward: flags['reward-guidance-reward'],
      factorCap: flags['reward-guidance-factor-cap'],
      through: flags['reward-guidance-through'],
    });
    if (Object.keys(rewardGuidance).length) Object.assign(sampler, { reward_guidance: rewardGuidance });
    const config = this.resolveConfig({ file: flags.config, flags: { sampler } });
    if (Object.keys(rewardGuidance).length && config.sampler.reward_guidance.scale === null) {
      throw new InputError(
        '--reward-guidance',
        'not set: the --reward-guidance-* flags need a scale (or sampler.reward_guidance.scale in --config)',
      );
    }
    return runSample(
      {
        config,
        prompts: flags.prompts,
        embeddings: flags.embeddings,
        out: flags.out,
        policy: flags.policy,
        part: partFlag(flags.part),
      },
      (path) => this.log(path),
      (msg) => this.note(msg),
    );
  }
}

/** `--part I/N` with 0 ≤ I < N. */
function partFlag(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !(count >= 1) || !(index < count))
    throw new InputError('--part', `expected I/N with 0 ≤ I < N, got '${value}'`);
  return { index, count };
}
