/**
 * `sample` overhead: time spent outside onnxruntime ÷ total time (goal ≤ 5%), on the toy
 * fixtures, in-process.
 */
import { resolve } from 'node:path';

// The shipped build (dist/), as the CLI runs it: its noise worker is compiled JavaScript.
const dist = (m: string) => new URL(`../dist/${m}`, import.meta.url).href;
const { readConfigFile, resolveConfig } = (await import(
  dist('config/load.js')
)) as typeof import('../src/config/load.js');
const { runtimeStats } = (await import(
  dist('runtime/session.js')
)) as typeof import('../src/runtime/session.js');
const { runSample } = (await import(dist('stages/sample.js'))) as typeof import('../src/stages/sample.js');

import { tempDir } from '../test/helpers.js';

export async function benchSample(): Promise<Record<string, number | string>> {
  const root = resolve(import.meta.dirname, '..');
  const cfgPath = resolve(root, 'examples/toy/config.yaml');
  const config = resolveConfig([
    readConfigFile(cfgPath),
    { sampler: { group_size: 8, per_shard: 2, steps: 10 } },
  ]);
  const prompts = resolve(root, 'examples/toy/prompts.txt');
  const out = tempDir('vggrpo-bench-');
  // Warm-up (session creation, JIT), then the measured run.
  await runSample(
    { config, prompts, out },
    () => {},
    () => {},
  );
  runtimeStats.ms = 0;
  runtimeStats.runs = 0;
  const t0 = performance.now();
  const r = await runSample(
    { config, prompts, out },
    () => {},
    () => {},
  );
  const total = performance.now() - t0;
  const outside = total - runtimeStats.ms;
  return {
    'sample: videos': r.samples,
    'sample: total ms': Math.round(total),
    'sample: onnxruntime ms': Math.round(runtimeStats.ms),
    'sample: outside-ORT fraction (goal ≤ 0.05)': Number((outside / total).toFixed(4)),
  };
}
