import { notBuilt } from '../cli/base.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface DecodeGeometryResult {
  shards: string[];
  samples: number;
}

export async function runDecodeGeometry(
  _inputs: AsyncIterable<string>,
  _opts: { out?: string; render?: string },
  _config: ConfigResolver,
  _io: StageIo,
): Promise<DecodeGeometryResult> {
  notBuilt('decode-geometry');
}
