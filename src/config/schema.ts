/**
 * The experiment config: one schema for all stages, each stage reads its part. Unknown keys,
 * wrong types and missing values are errors that name the key path (zod's strict objects).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { REWARDS } from '../rewards/index.js';

/** The toy world's fixture models: the embedded default every command runs on. */
export const FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'onnx', 'fixtures');

const positiveInt = z.number().int().positive();

/**
 * Test-time reward guidance (src/rl/reward-guidance.ts): ṽ = v − s·σ/(1−σ)·∇r(x̂0) on the guided
 * steps. Not classifier-free `guidance`. scale null = off.
 */
export const RewardGuidanceConfig = z
  .object({
    scale: z.number().positive().nullable().default(null),
    every: positiveInt.default(1),
    /** `START:END` (END exclusive) of the steps that may be guided; an open START skips σ = 1. */
    steps: z
      .string()
      .regex(/^\d*:\d*$/, 'expected START:END')
      .default(':'),
    reward: z.enum(['motion', 'reprojection', 'both']).default('motion'),
    /** Cap on σ/(1−σ); null: steps at σ = 1 (infinite factor) cannot be guided. */
    factor_cap: z.number().positive().nullable().default(null),
    /** x0_hat: ∇ w.r.t. x̂0 only; denoiser: w.r.t. x through x̂0 = x − σ·v(x). */
    through: z.enum(['x0_hat', 'denoiser']).default('x0_hat'),
  })
  .strict();

export const SamplerConfig = z
  .object({
    steps: positiveInt.default(10),
    shift: z.number().positive().default(3),
    noise_level: z.number().nonnegative().default(0.7),
    guidance: z.number().nonnegative().default(1),
    /** Contiguous window of stochastic (recorded) steps, `START:END` (END exclusive). The last step is never trained. */
    sde_window: z
      .string()
      .regex(/^\d*:\d*$/, 'expected START:END')
      .default(':'),
    ode: z.boolean().default(false),
    group_size: positiveInt.default(8),
    /**
     * Samples per denoiser batch (CFG doubles it: [uncond × m; cond × m]); absent: the whole
     * group. The batch composition `grpo-step` reproduces (src/rl/rollout.ts).
     */
    micro_batch: positiveInt.optional(),
    /**
     * 'group': the G videos of a group start from the same initial noise (DanceGRPO), so their
     * rewards differ only through the recorded SDE steps, the part the update can credit.
     * 'sample': each video draws its own.
     */
    initial_noise: z.enum(['sample', 'group']).default('sample'),
    per_shard: positiveInt.default(4),
    seed: z.number().int().nonnegative().default(0),
    /** Latent shape [C, F, H, W] when the denoiser's input dims are not static. */
    latent_shape: z.array(positiveInt).length(4).optional(),
    /** Negative / unconditional prompt for classifier-free guidance. */
    negative_prompt: z.string().default(''),
    reward_guidance: RewardGuidanceConfig.default(RewardGuidanceConfig.parse({})),
    /** Sample with the EMA of the LoRA weights (`grpo.ema`) instead of the adapter: eval only. */
    use_ema: z.boolean().optional(),
  })
  .strict();

export const LoraConfig = z
  .object({
    rank: positiveInt.default(4),
    alpha: z.number().positive().default(8),
    targets: z.array(z.string()).default(['*']),
  })
  .strict();

/**
 * constant: `lr`; warmup: lr·t/warmup_steps up to t = warmup_steps, then `lr`; cosine: the
 * warm-up, then from `lr` down to `min_lr` at t = total_steps along a half cosine (t: the
 * optimiser step, 1-based, counted across iterations).
 */
export const LrScheduleConfig = z
  .object({
    kind: z.enum(['constant', 'warmup', 'cosine']),
    warmup_steps: z.number().int().nonnegative().default(0),
    total_steps: positiveInt.optional(),
    min_lr: z.number().nonnegative().default(0),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.kind === 'warmup' && v.warmup_steps === 0)
      ctx.addIssue({ code: 'custom', path: ['warmup_steps'], message: 'must be ≥ 1 for kind warmup' });
    if (v.kind === 'cosine' && !(v.total_steps !== undefined && v.total_steps > v.warmup_steps))
      ctx.addIssue({
        code: 'custom',
        path: ['total_steps'],
        message: 'kind cosine needs total_steps > warmup_steps',
      });
  });

export const GrpoConfig = z
  .object({
    lr: z.number().positive().default(1e-3),
    betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    weight_decay: z.number().nonnegative().default(1e-4),
    grad_clip: z.number().positive().default(1),
    clip_range: z.number().positive().default(1e-3),
    kl_beta: z.number().nonnegative().default(0),
    /** 'true': mean((μθ−μref)²)/(2(std_t√−dt)²) (Flow-GRPO Wan); 'sd3': /(2 std_t²) (Flow-GRPO SD3). */
    kl_form: z.enum(['true', 'sd3']).default('true'),
    timestep_fraction: z.number().gt(0).max(1).default(1),
    inner_steps: positiveInt.default(1),
    /** 'blocks': the denoiser's gradient segment by segment (src/rl/checkpointed-gradient.ts). */
    checkpointing: z.enum(['none', 'blocks']).default('none'),
    /** Cut tensors for 'blocks' in graph order; empty: after every `blocks.N.` block. */
    checkpoint_boundaries: z.array(z.string().min(1)).default([]),
    /** Optimiser steps per inner step, each over one of this many disjoint parts of the rollouts; absent: 1. */
    minibatches: positiveInt.optional(),
    /** Learning rate over optimiser steps (src/rl/lr-schedule.ts); absent: constant `lr`. */
    lr_schedule: LrScheduleConfig.optional(),
    /** EMA of the LoRA weights after every optimiser step, kept in the checkpoint; absent: none. */
    ema: z
      .object({ decay: z.number().gt(0).lt(1) })
      .strict()
      .optional(),
  })
  .strict();

export const RewardEntry = z
  .object({
    weight: z.number().default(0.5),
    options: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

/**
 * Which outputs of a geometry model hold what, and its camera convention: shared by the LGM
 * (`lgm_outputs.*`, latents in) and the RGB geometry model Φ (`geometry_outputs.*`, frames in).
 */
const geometryOutputFields = {
  depth: z.string().default('depth'),
  points: z.string().default('world_points'),
  confidence: z.string().default('confidence'),
  cameras: z.string().default('pose_enc'),
  scene_flow: z.string().nullable().default('scene_flow'),
  /** vggt: 9-d pose encoding; c2w: 4×4 camera-to-world; w2c: 3×4 camera-from-world. */
  camera_convention: z.enum(['vggt', 'c2w', 'w2c']).default('vggt'),
  /** Intrinsics [fx, fy, cx, cy] for conventions that carry none. */
  intrinsics: z.array(z.number()).length(4).optional(),
  /** An output with per-frame intrinsics [B,F,3,3] or [B,F,4] (fx, fy, cx, cy), as Any4D-style models predict; null: none. */
  intrinsics_output: z.string().nullable().default(null),
  /** An output with a per-pixel dynamic mask [B,F,h,w] in [0, 1]; null: none. */
  dynamic_mask: z.string().nullable().default(null),
};

export const LgmOutputs = z
  .object({ ...geometryOutputFields, latents_input: z.string().default('latents') })
  .strict();

/** How Φ (`models.geometry`) is read (onnx/README.md, Geometry model); its input is RGB frames [B,F,3,H,W] in [0, 1]. */
export const GeometryOutputs = z
  .object({
    ...geometryOutputFields,
    frames_input: z.string().default('frames'),
    /** [H, W]: decoded frames are resized (bilinear, src/media/resize.ts) to it first; null: they must fit as they are. */
    frames_size: z.array(z.number().int().positive()).length(2).nullable().default(null),
  })
  .strict();

export const ModelsConfig = z
  .object({
    denoiser: z.string().default(resolve(FIXTURES_DIR, 'denoiser.onnx')),
    lgm: z.string().default(resolve(FIXTURES_DIR, 'lgm.onnx')),
    vae_decoder: z.string().nullable().default(resolve(FIXTURES_DIR, 'vae_decoder.onnx')),
    text_encoder: z.string().nullable().default(resolve(FIXTURES_DIR, 'text_encoder.onnx')),
    /** VAE encoder: RGB frames → latents (stitching, `world`); null: none. */
    vae_encoder: z.string().nullable().default(null),
    /** The RGB geometry model Φ (stitching, `decode-geometry --via rgb`); null: none. */
    geometry: z.string().nullable().default(null),
    /** A Hugging Face tokenizer.json (umT5's for Wan); null: the toy byte tokenizer (src/toy/tokenizer.ts). */
    tokenizer: z.string().nullable().default(null),
  })
  .strict();

/** How the text encoder is read (onnx/README.md, Text encoder). */
export const TextConfig = z
  .object({
    /** The encoder output holding the hidden states [B, L, D]: umT5 exports name it last_hidden_state. */
    output: z.string().default('context'),
  })
  .strict();

/**
 * The VAE decoder's conventions (onnx/README.md, VAE decoder); the defaults are the toy's, Wan's
 * values are given there.
 */
export const VaeConfig = z
  .object({
    /** Per-channel mean and std: the decoder gets latents·std + mean (Wan: 16 values each). */
    latents_mean: z.array(z.number()).nullable().default(null),
    latents_std: z.array(z.number().positive()).nullable().default(null),
    /** The decoder's pixel range [lo, hi], mapped to [0, 255] and clipped: toy [0, 1], Wan [-1, 1]. */
    output_range: z
      .tuple([z.number(), z.number()])
      .refine(([lo, hi]) => hi > lo, 'expected [lo, hi] with hi > lo')
      .default([0, 1]),
    /** Axis order of the frames output: B,F,3,H,W (toy), B,3,F,H,W (Wan, diffusers), B,F,H,W,3. */
    layout: z.enum(['BF3HW', 'B3FHW', 'BFHW3']).default('BF3HW'),
    /** Latent frames F → 1 + t·(F − 1) video frames: toy 1, Wan 4. */
    temporal_compression: positiveInt.default(1),
    /** The output to read; null: the first. */
    output: z.string().nullable().default(null),
  })
  .strict();

const positiveNumber = z.number().positive();

/** One training phase of `vggrpo stitch` (onnx/README.md, Stitching). */
const StitchPhase = (steps: number, lr: number) =>
  z
    .object({
      steps: z.number().int().nonnegative().default(steps),
      lr: positiveNumber.default(lr),
      weight_decay: z.number().nonnegative().default(0),
    })
    .strict();

/**
 * `vggrpo stitch`: phase 1 fits the connector to Φ's tensor at the stitch point, phase 2
 * fine-tunes the connector and Φ's later layers to Φ's outputs; each loss term is a relative MSE
 * (MSE over the target's variance) times its weight.
 */
export const StitchConfig = z
  .object({
    /** Fraction of the given videos held out for the stitch-point choice and the reported errors. */
    heldout_fraction: z.number().gt(0).lt(1).default(0.2),
    batch: positiveInt.default(4),
    grad_clip: positiveNumber.default(1),
    /** Save a checkpoint every this many steps (and at the end of each phase). */
    checkpoint_every: positiveInt.default(50),
    /** Ridge penalty of the `--at auto` linear maps, relative to the mean diagonal of XᵀX. */
    ridge: z.number().nonnegative().default(1e-3),
    phase1: StitchPhase(300, 1e-3).default({ steps: 300, lr: 1e-3, weight_decay: 0 }),
    /**
     * Phase 2 fine-tunes a trained Φ: its lr is 50× below phase 1's. At 2e-4 the toy Φ's scene-flow
     * head (outputs of a few centimetres) left its optimum on the first AdamW step (held-out
     * errors rose); at 2e-5 every output's held-out error fell.
     */
    phase2: StitchPhase(300, 2e-5)
      .extend({
        /**
         * Loss weight per output role of `geometry_outputs`; a role not given weighs 1. `camera_steps`
         * (default 0) adds a term on the camera output's frame-to-frame differences — what the motion
         * reward reads — whose variance is far below the cameras' own, so a relative MSE on the
         * cameras alone lets step errors through that a jitter ranking notices.
         */
        weights: z
          .object({
            depth: z.number().nonnegative().optional(),
            points: z.number().nonnegative().optional(),
            confidence: z.number().nonnegative().optional(),
            cameras: z.number().nonnegative().optional(),
            scene_flow: z.number().nonnegative().optional(),
            intrinsics_output: z.number().nonnegative().optional(),
            dynamic_mask: z.number().nonnegative().optional(),
            camera_steps: z.number().nonnegative().default(0),
          })
          .strict()
          .default({ confidence: 0.1, scene_flow: 0.1, camera_steps: 0 }),
      })
      .default({
        steps: 300,
        lr: 2e-5,
        weight_decay: 0,
        weights: { confidence: 0.1, scene_flow: 0.1, camera_steps: 0 },
      }),
  })
  .strict();

export const RuntimeConfig = z
  .object({
    device: z.enum(['cpu', 'cuda']).default('cpu'),
    threads: z.number().int().nonnegative().default(0),
    graph_optimization: z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
  })
  .strict();

export const Config = z
  .object({
    models: ModelsConfig.default(ModelsConfig.parse({})),
    sampler: SamplerConfig.default(SamplerConfig.parse({})),
    lora: LoraConfig.default(LoraConfig.parse({})),
    grpo: GrpoConfig.default(GrpoConfig.parse({})),
    rewards: z
      .record(z.string(), RewardEntry)
      .default({ motion: { weight: 0.5, options: {} }, reprojection: { weight: 0.5, options: {} } }),
    lgm_outputs: LgmOutputs.default(LgmOutputs.parse({})),
    geometry_outputs: GeometryOutputs.default(GeometryOutputs.parse({})),
    text: TextConfig.default(TextConfig.parse({})),
    vae: VaeConfig.default(VaeConfig.parse({})),
    stitch: StitchConfig.default(StitchConfig.parse({})),
    runtime: RuntimeConfig.default(RuntimeConfig.parse({})),
    eval: z
      .object({
        detector: z.enum(['orb', 'akaze']).default('orb'),
        videos: z.number().int().nonnegative().default(4),
        /** An independent judge: a geometry model sharing no weights with the reward's LGM, run on the decoded frames (src/stages/judge.ts); null: none. */
        judge: z.string().nullable().default(null),
        /** How the judge is read: the `geometry_outputs` fields (frames in). */
        judge_outputs: GeometryOutputs.default(GeometryOutputs.parse({})),
      })
      .strict()
      .default({ detector: 'orb', videos: 4, judge: null, judge_outputs: GeometryOutputs.parse({}) }),
  })
  .strict()
  .superRefine(checkRewards);

/** Every reward must exist and its options parse, whichever stage reads the config. */
function checkRewards(
  cfg: { rewards: Record<string, { options: Record<string, unknown> }> },
  ctx: z.RefinementCtx,
) {
  for (const [name, entry] of Object.entries(cfg.rewards)) {
    const reward = REWARDS[name];
    if (!reward) {
      ctx.addIssue({
        code: 'custom',
        path: ['rewards', name],
        message: `unknown reward (known: ${Object.keys(REWARDS).join(', ')})`,
      });
      continue;
    }
    try {
      reward.parseOptions(entry.options, `rewards.${name}.options`);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      ctx.addIssue({ code: 'custom', path: err.where.split('.'), message: err.fault });
    }
  }
}

export type Config = z.infer<typeof Config>;
/** What a user writes: every key optional, nested. */
export type PartialConfig = { [K in keyof Config]?: Partial<Config[K]> };
