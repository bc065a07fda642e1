import type { Config } from '../config/schema.js';
import type { LineageRoots } from '../shards/lineage.js';

/** Callbacks a command hands a stage: print a written shard's path, log progress to stderr. */
export interface StageIo {
  emit(path: string): void;
  note(message: string): void;
}

/** Config for one input: flags > --config > the config recorded in that input shard > defaults. */
export type ConfigResolver = (recorded?: Record<string, unknown>, source?: string) => Config;

/**
 * A stage's input paths as the command hands them over (src/cli/inputs.ts): where lineage may
 * lead (`roots`) and how many shards of the runs seen are missing (only with --allow-partial).
 */
export interface StageInputs extends AsyncIterable<string> {
  readonly roots?: LineageRoots;
  readonly missing?: number;
}
