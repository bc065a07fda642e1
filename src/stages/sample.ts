import { notBuilt } from '../cli/base.js';
import type { Config } from '../config/schema.js';

export interface SampleOptions {
  config: Config;
  prompts?: string;
  embeddings?: string;
  out?: string;
  policy?: string;
}
export interface SampleResult {
  shards: string[];
  samples: number;
}

export async function runSample(
  _opts: SampleOptions,
  _emit: (path: string) => void,
  _note: (msg: string) => void,
): Promise<SampleResult> {
  notBuilt('sample');
}
