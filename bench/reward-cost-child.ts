/**
 * One reward path of the reward-cost benchmark in its own process, so its peak memory is its own:
 * `node --import tsx bench/reward-cost-child.ts SPEC.json latent|rgb` opens the path's models
 * (the stages' own code: `openLgm`/`decodeLatents` or `openRgbPath`/`decodeViaRgb`), runs the
 * latents of SPEC once to warm up, then `reps` times, and prints one JSON line: the median wall
 * and CPU ms per batch (one onnxruntime thread, so CPU time is the work, whatever else the
 * machine runs), the peak RSS of the process (getrusage ru_maxrss: every byte onnxruntime's arena and the
 * weights touched, plus Node's own) and the RSS before any model was opened.
 */
import { readFileSync } from 'node:fs';
import { resolveConfig } from '../src/config/load.js';
import { f32 } from '../src/shards/tensor.js';
import { decodeLatents, openLgm } from '../src/stages/decode-geometry.js';
import { decodeViaRgb, openRgbPath } from '../src/stages/rgb-path.js';

const [specPath, path] = process.argv.slice(2) as [string, 'latent' | 'rgb'];
const spec = JSON.parse(readFileSync(specPath, 'utf8')) as {
  config: Record<string, unknown>;
  latents: string;
  shape: number[];
  reps: number;
};
const raw = readFileSync(spec.latents);
const latents = f32(spec.shape, new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4).slice());
const config = resolveConfig([spec.config]);
const baseRss = process.memoryUsage().rss;

const t0 = performance.now();
let run: () => Promise<unknown>;
let release: () => Promise<void>;
if (path === 'latent') {
  const lgm = await openLgm(config);
  run = () => decodeLatents(lgm, config, latents, latents.shape[0]);
  release = () => lgm.release();
} else {
  const rgb = await openRgbPath(config);
  run = () => decodeViaRgb(rgb, config, latents, 'latents', latents.shape[0]);
  release = () => rgb.release();
}
const openMs = performance.now() - t0;
await run(); // warm-up: onnxruntime plans its memory on the first run
const times: number[] = [];
const cpu: number[] = [];
for (let k = 0; k < spec.reps; k++) {
  const t = performance.now();
  const c = process.cpuUsage();
  await run();
  const d = process.cpuUsage(c);
  times.push(performance.now() - t);
  cpu.push((d.user + d.system) / 1000);
}
await release();
const median = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
process.stdout.write(
  `${JSON.stringify({
    ms: median(times),
    cpu_ms: median(cpu),
    open_ms: openMs,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    base_rss_mb: baseRss / 2 ** 20,
  })}\n`,
);
