/**
 * `sample` overhead: time spent outside onnxruntime ÷ total time (goal ≤ 5%), on the toy
 * fixtures, in-process. onnxruntime's time is its run() calls plus creating and releasing the
 * sessions (runtimeStats, src/runtime/session.ts): session creation is onnxruntime optimising
 * the graph, not the sampler's overhead; the fraction that counts it as outside is printed too.
 * The machine may be shared: three measured runs, the median and the spread.
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

interface Measured {
  total: number;
  run: number;
  session: number;
  videos: number;
}

const RUNS = 3;

export async function benchSample(): Promise<Record<string, number | string>> {
  const root = resolve(import.meta.dirname, '..');
  const cfgPath = resolve(root, 'examples/toy/analytic.yaml');
  const config = resolveConfig([
    readConfigFile(cfgPath),
    { sampler: { group_size: 8, per_shard: 2, steps: 10 } },
  ]);
  const prompts = resolve(root, 'examples/toy/prompts.txt');
  const out = tempDir('vggrpo-bench-');
  const once = async (): Promise<Measured> => {
    Object.assign(runtimeStats, { ms: 0, runs: 0, sessionMs: 0 });
    const t0 = performance.now();
    const r = await runSample(
      { config, prompts, out },
      () => {},
      () => {},
    );
    const total = performance.now() - t0;
    return { total, run: runtimeStats.ms, session: runtimeStats.sessionMs, videos: r.samples };
  };
  await once(); // warm-up: JIT, file cache
  const runs: Measured[] = [];
  for (let k = 0; k < RUNS; k++) runs.push(await once());
  const outside = runs.map((m) => (m.total - m.run - m.session) / m.total).sort((a, b) => a - b);
  const strict = runs.map((m) => (m.total - m.run) / m.total).sort((a, b) => a - b);
  const median = (xs: number[]) => xs[RUNS >> 1]!;
  const ms = (f: (m: Measured) => number) => Math.round(median(runs.map(f).sort((a, b) => a - b)));
  return {
    'sample: videos per run': runs[0]!.videos,
    'sample: total ms (median of 3)': ms((m) => m.total),
    'sample: onnxruntime run ms': ms((m) => m.run),
    'sample: onnxruntime session create/release ms': ms((m) => m.session),
    'sample: outside-ORT ms': ms((m) => m.total - m.run - m.session),
    'sample: outside-ORT fraction (goal ≤ 0.05)': Number(median(outside).toFixed(4)),
    'sample: outside-ORT fraction, min–max of 3': `${outside[0]!.toFixed(4)}–${outside.at(-1)!.toFixed(4)}`,
    'sample: fraction counting session creation as outside': Number(median(strict).toFixed(4)),
  };
}
