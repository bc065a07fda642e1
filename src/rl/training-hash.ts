/**
 * What defines a training run, hashed into every checkpoint so that a resume with other
 * settings is caught (README.md, Configuration: "Resuming"). Hashed: the models (denoiser,
 * latent geometry model, text encoder — by content fingerprint, so a moved file still matches),
 * every `lora.*` key and every `grpo.*` key (optimiser, schedule, EMA and GRPO settings, with
 * absent optional keys at their defaults). Not hashed: seeds, the sampler's per-iteration
 * values, rewards, runtime and eval settings.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { canonicalJson } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { modelFingerprint } from '../shards/shard.js';

export type TrainingKeys = Record<string, unknown>;

/** Fingerprints by path, size and mtime: `--apply` asks once per gradient shard. */
const fingerprints = new Map<string, string>();

/** A model's content fingerprint, or its path when it is not on this machine. */
function model(path: string | null): string | null {
  if (path === null || !existsSync(path)) return path;
  const st = statSync(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  if (!fingerprints.has(key)) fingerprints.set(key, modelFingerprint(path));
  return fingerprints.get(key)!;
}

/** The hashed keys as a flat map `section.key` → value. */
export function trainingKeys(config: Config): TrainingKeys {
  const g = config.grpo;
  const out: TrainingKeys = {
    'models.denoiser': model(config.models.denoiser),
    'models.lgm': model(config.models.lgm),
    'models.text_encoder': model(config.models.text_encoder),
  };
  for (const [k, v] of Object.entries(config.lora)) out[`lora.${k}`] = v;
  const grpo = {
    ...g,
    minibatches: g.minibatches ?? 1,
    lr_schedule: g.lr_schedule ?? { kind: 'constant' },
    ema: g.ema ?? null,
  };
  for (const [k, v] of Object.entries(grpo)) out[`grpo.${k}`] = v;
  return out;
}

export function trainingHash(keys: TrainingKeys): string {
  return createHash('sha256').update(canonicalJson(keys)).digest('hex').slice(0, 16);
}

/** The hashed keys whose values differ between two records. */
export function differingKeys(a: TrainingKeys, b: TrainingKeys): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names.filter((k) => canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null));
}

/**
 * On resume: the checkpoint's training hash must match the config's, unless forced. A
 * checkpoint written before the hash existed is accepted.
 *
 * @example
 *   checkTrainingHash(policy.checkpoint?.state, trainingKeys(config), 'runs/x/policy/state.json', false);
 */
export function checkTrainingHash(
  recorded: { trainingHash?: string; training?: TrainingKeys } | undefined,
  current: TrainingKeys,
  where: string,
  force: boolean,
): void {
  if (force || !recorded?.trainingHash || recorded.trainingHash === trainingHash(current)) return;
  const diff = recorded.training ? differingKeys(recorded.training, current) : [];
  const keys = diff.length
    ? diff
        .slice(0, 3)
        .map(
          (k) =>
            `${k} ${canonicalJson(recorded.training![k] ?? null)} → ${canonicalJson(current[k] ?? null)}`,
        )
        .join(', ')
    : 'the hashed keys';
  throw new InputError(
    where,
    `training_hash ${recorded.trainingHash} differs from this config's ${trainingHash(current)} (${keys}); --force resumes anyway`,
  );
}
