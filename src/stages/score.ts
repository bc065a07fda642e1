import { notBuilt } from '../cli/base.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface ScoreResult {
  shards: string[];
  samples: number;
  rewards: Record<string, { mean: number }>;
}

export async function runScore(
  _inputs: AsyncIterable<string>,
  _opts: { out?: string },
  _config: ConfigResolver,
  _io: StageIo,
): Promise<ScoreResult> {
  notBuilt('score');
}
