import { notBuilt } from '../cli/base.js';

/** Depth PNGs and a camera-path plot per sample of a geometry shard (arrives with src/media). */
export async function renderGeometry(_shard: string, _dir: string): Promise<string[]> {
  notBuilt('decode-geometry --render');
}
