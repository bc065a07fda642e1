import { notBuilt } from '../cli/base.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface EvalResult {
  report: string;
  html: string;
  metrics: Record<string, number | null>;
}

export async function runEval(
  _inputs: AsyncIterable<string>,
  _opts: { out: string },
  _config: ConfigResolver,
  _io: StageIo,
): Promise<EvalResult> {
  notBuilt('eval');
}
