/**
 * Test-time reward guidance on the toy (src/rl/reward-guidance.ts): deterministic (ODE) samples
 * of the base policy, with and without guidance, from the same seeds, scored by the reward model
 * (the LGM's geometry, as `score` reads it). Prints a markdown table: scale → mean 1 − r_motion
 * and worst-3 reprojection error, each with the paired difference to unguided sampling and its
 * 95% interval, and the cost (seconds per video, multiple of unguided).
 *
 *   node --import tsx examples/toy/reward-guidance.ts [--scales 0,3,10,30] [--reward motion]
 *     [--prompts examples/toy/prompts-heldout.txt] [--group-size 24] [--seed 1000] [--every 1]
 *
 * The defaults are those of the demo's evaluation (held-out prompts, ODE, seed 1000, groups of
 * 24), so the unguided row is the demo's "base" row and can be set beside its trained policy.
 * With a judge (`--judge MODEL`, default the config's `eval.judge`; src/stages/judge.ts) the same
 * two figures are also read by it from the decoded frames: a model that shares no weights with
 * the reward model guidance climbs, so a gain it confirms is not a gain in fooling the LGM.
 *
 *   node --import tsx examples/toy/reward-guidance.ts --scales 0,100,300 --judge onnx/fixtures/judge.onnx
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readConfigFile, resolveConfig } from '../../src/config/load.js';
import { VaeDecoder } from '../../src/media/vae.js';
import { motion } from '../../src/rewards/motion.js';
import { reprojection, reprojectionConsistency } from '../../src/rewards/reprojection.js';
import { sliceGeometry } from '../../src/rewards/types.js';
import { readShard } from '../../src/shards/shard.js';
import { decodeLatents, openLgm } from '../../src/stages/decode-geometry.js';
import { batchArrays } from '../../src/stages/geometry-outputs.js';
import { judgeVideo, openJudge } from '../../src/stages/judge.js';
import { runSample } from '../../src/stages/sample.js';

const here = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    scales: { type: 'string', default: '0,3,10,30' },
    reward: { type: 'string', default: 'motion' },
    prompts: { type: 'string', default: join(here, 'prompts-heldout.txt') },
    config: { type: 'string', default: join(here, 'config.yaml') },
    'group-size': { type: 'string', default: '24' },
    seed: { type: 'string', default: '1000' },
    every: { type: 'string', default: '1' },
    steps: { type: 'string', default: ':' },
    through: { type: 'string', default: 'x0_hat' },
    'timing-repeats': { type: 'string', default: '3' },
    judge: { type: 'string' },
    'judge-frames-size': { type: 'string', default: '64,64' },
  },
});

interface Row {
  scale: number;
  motionGap: Float64Array;
  reprojError: Float64Array;
  /** The judge's 1 − r_motion and worst-3 reprojection error (empty without a judge). */
  judgeGap: Float64Array;
  judgeError: Float64Array;
  /** Mean over views of E_i (the worst-3 mean is the reward). */
  reprojMean: Float64Array;
  /** Wall and CPU (all threads) seconds per video. */
  cost: { wall: number; cpu: number };
}

function configFor(scale: number, prompts = a.prompts!) {
  const layer = {
    sampler: {
      ode: true,
      group_size: Number(a['group-size']),
      seed: Number(a.seed),
      reward_guidance: {
        scale: scale > 0 ? scale : null,
        reward: a.reward,
        every: Number(a.every),
        steps: a.steps,
        through: a.through,
      },
    },
  };
  const judge = a.judge
    ? {
        eval: {
          judge: resolve(a.judge),
          judge_outputs: { frames_size: a['judge-frames-size']!.split(',').map(Number) },
        },
      }
    : {};
  return { config: resolveConfig([readConfigFile(a.config!), layer, judge]), prompts };
}

const quiet = () => {};

/**
 * Seconds per video of one group (the first prompt), the fastest of `timing-repeats` runs: the
 * machine is shared, and the minimum is the least disturbed measurement.
 */
async function secondsPerVideo(scale: number): Promise<{ wall: number; cpu: number }> {
  const first = join(mkdtempSync(join(tmpdir(), 'vggrpo-guidance-')), 'p.txt');
  writeFileSync(first, `${readFileSync(a.prompts!, 'utf8').split('\n')[0]}\n`);
  const { config } = configFor(scale, first);
  const best = { wall: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY };
  for (let k = 0; k < Number(a['timing-repeats']); k++) {
    const out = mkdtempSync(join(tmpdir(), 'vggrpo-guidance-'));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const res = await runSample({ config, prompts: first, out }, quiet, quiet);
    const c = process.cpuUsage(c0);
    best.wall = Math.min(best.wall, (performance.now() - t0) / 1000 / res.samples);
    best.cpu = Math.min(best.cpu, (c.user + c.system) / 1e6 / res.samples);
    rmSync(out, { recursive: true, force: true });
  }
  rmSync(dirname(first), { recursive: true, force: true });
  return best;
}

async function measure(scale: number): Promise<Row> {
  const { config, prompts } = configFor(scale);
  const out = mkdtempSync(join(tmpdir(), 'vggrpo-guidance-'));
  try {
    const res = await runSample({ config, prompts, out }, quiet, quiet);
    const lgm = await openLgm(config);
    const judge = await openJudge(config);
    const decoder = judge ? await VaeDecoder.open(config) : undefined;
    const gaps: number[] = [];
    const errors: number[] = [];
    const means: number[] = [];
    const judgeGaps: number[] = [];
    const judgeErrors: number[] = [];
    const mo = motion.parseOptions(config.rewards.motion?.options);
    const ro = reprojection.parseOptions(config.rewards.reprojection?.options);
    for (const path of res.shards) {
      const latents = readShard(path, 'trajectory').tensors.get('final_latents')!;
      const g = await decodeLatents(lgm, config, latents);
      const [B, F, h, w] = g.depth.shape as [number, number, number, number];
      const batch = batchArrays(g);
      for (let b = 0; b < B; b++) {
        const s = sliceGeometry(batch, b, F, h, w);
        gaps.push(1 - motion.compute(s, mo));
        const detail = reprojectionConsistency(s, ro);
        errors.push(-detail.reward);
        means.push(detail.viewErrors.reduce((x, y) => x + y, 0) / detail.viewErrors.length);
        if (judge && decoder) {
          const per = latents.data.length / B;
          const video = await decoder.decode(
            (latents.data as Float32Array).slice(b * per, (b + 1) * per),
            latents.shape.slice(1) as [number, number, number, number],
          );
          const jg = await judgeVideo(judge, video);
          judgeGaps.push(1 - motion.compute(jg, mo));
          judgeErrors.push(-reprojectionConsistency(jg, ro).reward);
        }
      }
    }
    await lgm.release();
    await judge?.release();
    await decoder?.release();
    return {
      scale,
      motionGap: Float64Array.from(gaps),
      reprojError: Float64Array.from(errors),
      reprojMean: Float64Array.from(means),
      judgeGap: Float64Array.from(judgeGaps),
      judgeError: Float64Array.from(judgeErrors),
      cost: await secondsPerVideo(scale),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Student-t 0.975 quantile (Cornish–Fisher expansion in 1/ν; exact to ~1e-3 for ν ≥ 5). */
function t975(nu: number): number {
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * nu) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * nu * nu);
}

function mean(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s / v.length;
}

/** Mean paired difference b − a and its 95% interval. */
function paired(b: Float64Array, a: Float64Array): string {
  const d = b.map((x, i) => x - a[i]!);
  const m = mean(d);
  const n = d.length;
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1));
  const half = t975(n - 1) * (sd / Math.sqrt(n));
  const f = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(4);
  return `${f(m)} [${f(m - half)}, ${f(m + half)}]`;
}

const scales = a.scales!.split(',').map(Number);
if (!scales.includes(0)) scales.unshift(0);
const rows: Row[] = [];
for (const s of scales) {
  rows.push(await measure(s));
  process.stderr.write(`scale ${s}: done\n`);
}
const base = rows.find((r) => r.scale === 0)!;
console.log(
  `ODE samples of the base policy, ${base.motionGap.length} videos (${a.prompts}, seed ${a.seed}), guided by ${a.reward} through ${a.through}, every ${a.every}, steps '${a.steps}'; cost: fastest of ${a['timing-repeats']} runs of one group`,
);
console.log('');
const judged = base.judgeGap.length > 0;
const judgeHead = judged
  ? ' judge: 1 − r_motion (Δ [95% CI]) | judge: worst-3 reprojection (Δ [95% CI]) |'
  : '';
console.log(
  `| scale s | 1 − r_motion | Δ vs unguided [95% CI] | reprojection error, mean / worst 3 | Δ worst 3 vs unguided [95% CI] |${judgeHead} wall s / video (×) | CPU s / video (×) |`,
);
console.log(`|---|---|---|---|---|${judged ? '---|---|' : ''}---|---|`);
for (const r of rows) {
  const unguided = r.scale === 0;
  const judgeCells = judged
    ? ` ${mean(r.judgeGap).toFixed(4)}${unguided ? '' : ` (${paired(r.judgeGap, base.judgeGap)})`} | ${mean(r.judgeError).toFixed(4)}${unguided ? '' : ` (${paired(r.judgeError, base.judgeError)})`} |`
    : '';
  console.log(
    `| ${unguided ? '0 (unguided)' : r.scale} | ${mean(r.motionGap).toFixed(4)} | ${unguided ? '—' : paired(r.motionGap, base.motionGap)} | ${mean(r.reprojMean).toFixed(4)} / ${mean(r.reprojError).toFixed(4)} | ${unguided ? '—' : paired(r.reprojError, base.reprojError)} |${judgeCells} ${r.cost.wall.toFixed(3)} (${(r.cost.wall / base.cost.wall).toFixed(1)}) | ${r.cost.cpu.toFixed(3)} (${(r.cost.cpu / base.cost.cpu).toFixed(1)}) |`,
  );
}
