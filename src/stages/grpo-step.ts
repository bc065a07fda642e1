import { notBuilt } from '../cli/base.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface GrpoStepResult {
  checkpoint?: string;
  gradients?: string;
  metrics: Record<string, number>;
}

export async function runGrpoStep(
  _inputs: AsyncIterable<string>,
  _opts: { policy?: string; out?: string; gradsOnly: boolean; apply: boolean; seed?: number },
  _config: ConfigResolver,
  _io: StageIo,
): Promise<GrpoStepResult> {
  notBuilt('grpo-step');
}
