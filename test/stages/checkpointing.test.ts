/**
 * `grpo.checkpointing: blocks` in grpo-step: the per-block checkpointed gradient
 * (src/rl/checkpointed-gradient.ts) gives the gradient shard the unsplit gradient graph gives,
 * in the one-run form (first inner step) and the forward-then-VJP form (a KL term).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { BIN, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-ckpt-');
const base = readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8').replace(
  /\.\.\/\.\.\/onnx\//g,
  `${join(ROOT, 'onnx')}/`,
);

function config(name: string, grpo: string, klBeta = 0): string {
  const path = join(dir, `${name}.yaml`);
  const text = base
    .replace('  kl_beta: 0\n', `  kl_beta: ${klBeta}\n`)
    .replace('  inner_steps: 1', `  inner_steps: 1\n${grpo}`);
  writeFileSync(path, text);
  return path;
}

async function gradients(rewards: string[], cfg: string, out: string) {
  const r = await runCli(['grpo-step', ...rewards, '--grads-only', '--config', cfg, '--out', join(dir, out)]);
  assert.equal(r.code, 0, r.stderr);
  return readSafetensors(r.stdout.trim()).tensors;
}

test('grpo.checkpointing: blocks gives the unsplit gradient to 1e-5 relative', async () => {
  const plain = config('plain', '');
  const run = join(dir, 'run');
  writeFileSync(join(dir, 'prompts.txt'), 'orbit around the red box\npan across the room\n');
  const sample = `--config ${plain} --group-size 2 --steps 3 --per-shard 2 --threads 1 --prompts ${join(dir, 'prompts.txt')}`;
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} sample ${sample} --out ${run}/trajectory | node ${BIN} decode-geometry | node ${BIN} score > /dev/null`,
  ]);
  const rewards = readdirSync(join(run, 'rewards')).map((f) => join(run, 'rewards', f));
  for (const [name, kl] of [
    ['one-run', 0],
    ['kl', 0.01],
  ] as const) {
    const want = await gradients(rewards, config(`${name}-plain`, '', kl), `${name}-plain`);
    const got = await gradients(
      rewards,
      config(`${name}-blocks`, '  checkpointing: blocks\n', kl),
      `${name}-blocks`,
    );
    assert.ok(want.size > 10);
    let nonzero = 0;
    for (const [k, t] of want) {
      const b = t.data as Float32Array;
      const a = got.get(k)!.data as Float32Array;
      let d = 0;
      let m = 0;
      for (let j = 0; j < b.length; j++) {
        d = Math.max(d, Math.abs(a[j]! - b[j]!));
        m = Math.max(m, Math.abs(b[j]!));
      }
      if (m === 0) continue;
      nonzero++;
      assert.ok(d <= 1e-5 * m, `${name} ${k}: ${d} vs max ${m}`);
    }
    assert.ok(nonzero > want.size / 4, `${name}: ${nonzero} non-zero gradients`);
  }
});
