/**
 * `npm run bench`: every benchmark, each printing ratios against a baseline measured in the
 * same run. Goals live here, never in timed unit tests.
 */
const benches: [string, () => Promise<Record<string, number | string>>][] = [];

async function load(name: string, path: string, fn: string): Promise<void> {
  try {
    const mod = (await import(path)) as Record<string, () => Promise<Record<string, number | string>>>;
    if (typeof mod[fn] === 'function') benches.push([name, mod[fn]!]);
  } catch (err) {
    process.stderr.write(`bench ${name}: cannot load (${(err as Error).message.split('\n')[0]})\n`);
  }
}

const only = process.argv.slice(2);
await load('autodiff', './autodiff.js', 'benchAutodiff');
await load('score', './score.js', 'benchScore');
await load('sample', './sample.js', 'benchSample');
await load('grpo-step', './grpo-step.js', 'benchGrpoStep');
await load('scale', './scale.js', 'benchScale');
await load('reward-cost', './reward-cost.js', 'benchRewardCost');

let failed = false;
for (const [name, fn] of benches) {
  if (only.length && !only.includes(name)) continue;
  process.stdout.write(`\n## ${name}\n`);
  try {
    const r = await fn();
    for (const [k, v] of Object.entries(r)) process.stdout.write(`  ${k}: ${v}\n`);
  } catch (err) {
    failed = true;
    process.stdout.write(`  failed: ${(err as Error).message}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
