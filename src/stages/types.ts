import type { Config } from '../config/schema.js';

/** Callbacks a command hands a stage: print a written shard's path, log progress to stderr. */
export interface StageIo {
  emit(path: string): void;
  note(message: string): void;
}

/** Config for one input: flags > --config > the config recorded in that input shard > defaults. */
export type ConfigResolver = (recorded?: Record<string, unknown>, source?: string) => Config;
