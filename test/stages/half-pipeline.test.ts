/**
 * A half-precision denoiser through the pipeline (`vggrpo onnx convert`, then sample →
 * decode-geometry → score → grpo-step): the float16 export's first GRPO ratio is exactly 1, the
 * trained LoRA weights and AdamW moments are float32, and per-block checkpointing (float16
 * boundary values) gives the unsplit gradient to float16 accuracy; a bfloat16 export trains, with
 * its one warning per stage.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { BIN, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-half-pipe-');
const toy = readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8').replace(
  /\.\.\/\.\.\/onnx\//g,
  `${join(ROOT, 'onnx')}/`,
);
writeFileSync(join(dir, 'prompts.txt'), 'orbit around the red box\npan across the room\n');

async function convert(to: 'fp16' | 'bf16'): Promise<string> {
  const out = join(dir, `denoiser-${to}.onnx`);
  const r = await runCli([
    'onnx',
    'convert',
    join(ROOT, 'onnx/fixtures/denoiser.onnx'),
    '--to',
    to,
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

function config(name: string, denoiser: string, grpo = ''): string {
  const path = join(dir, `${name}.yaml`);
  const text = toy
    .replace(`${join(ROOT, 'onnx')}/fixtures/denoiser.onnx`, denoiser)
    .replace('  inner_steps: 1', `  inner_steps: 1\n${grpo}`);
  writeFileSync(path, text);
  return path;
}

/** sample → decode-geometry → score; the reward shards and sample's stderr. */
function rollouts(cfg: string, run: string): { rewards: string[]; stderr: string } {
  const args = `--config ${cfg} --group-size 2 --steps 3 --per-shard 2 --threads 1 --prompts ${join(dir, 'prompts.txt')}`;
  const log = join(run, 'sample.log');
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `mkdir -p ${run} && node ${BIN} sample ${args} --out ${run}/trajectory 2> ${log} | node ${BIN} decode-geometry 2>/dev/null | node ${BIN} score > /dev/null 2>&1`,
  ]);
  const rewards = readdirSync(join(run, 'rewards')).map((f) => join(run, 'rewards', f));
  return { rewards, stderr: readFileSync(log, 'utf8') };
}

test('a float16 export: sample → grpo-step with ratio exactly 1 and float32 LoRA and AdamW state', async () => {
  const cfg = config('fp16', await convert('fp16'));
  const { rewards } = rollouts(cfg, join(dir, 'run16'));
  const step = await runCli(['grpo-step', ...rewards, '--config', cfg, '--out', join(dir, 'p16'), '--json']);
  assert.equal(step.code, 0, step.stderr);
  const m = JSON.parse(step.stdout).metrics;
  assert.equal(m.ratio_min, 1);
  assert.equal(m.ratio_max, 1);
  assert.ok(m.grad_norm > 0);
  for (const f of ['adapter_model.safetensors', 'optimizer.safetensors']) {
    const { tensors } = readSafetensors(join(dir, 'p16', f));
    assert.ok(tensors.size > 0, f);
    for (const [k, t] of tensors) assert.equal(t.dtype, 'F32', `${f}: ${k}`);
  }
  // the trained B moved off zero
  const { tensors } = readSafetensors(join(dir, 'p16', 'adapter_model.safetensors'));
  assert.ok([...tensors.values()].some((t) => (t.data as Float32Array).some((v) => v !== 0)));

  // per-block checkpointing: float16 values cross the segment boundaries
  const grads = async (name: string, grpo: string) => {
    const r = await runCli([
      'grpo-step',
      ...rewards,
      '--grads-only',
      '--config',
      config(name, join(dir, 'denoiser-fp16.onnx'), grpo),
      '--out',
      join(dir, name),
    ]);
    assert.equal(r.code, 0, r.stderr);
    return readSafetensors(r.stdout.trim()).tensors;
  };
  const want = await grads('fp16-plain', '');
  const got = await grads('fp16-blocks', '  checkpointing: blocks\n');
  let nonzero = 0;
  for (const [k, t] of want) {
    const b = t.data as Float32Array;
    const a = got.get(k)!.data as Float32Array;
    const m = b.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
    if (m === 0) continue;
    nonzero++;
    const d = a.reduce((s, v, j) => Math.max(s, Math.abs(v - b[j]!)), 0);
    // measured 1.8e-3 (float16 rounding of the boundary cotangents)
    assert.ok(d <= 1e-2 * m, `${k}: ${d} vs max ${m}`);
  }
  assert.ok(nonzero > want.size / 4, `${nonzero} non-zero gradients`);
});

test('a bfloat16 export trains, warning once in each stage that it is widened to float32', async () => {
  const cfg = config('bf16', await convert('bf16'));
  const { rewards, stderr } = rollouts(cfg, join(dir, 'runbf'));
  const warning = /bfloat16 denoiser: widened to float32 when loaded/g;
  assert.equal(stderr.match(warning)?.length, 1, stderr);
  const step = await runCli(['grpo-step', ...rewards, '--config', cfg, '--out', join(dir, 'pbf'), '--json']);
  assert.equal(step.code, 0, step.stderr);
  assert.equal(step.stderr.match(warning)?.length, 1, step.stderr);
  const m = JSON.parse(step.stdout).metrics;
  assert.equal(m.ratio_min, 1);
  assert.equal(m.ratio_max, 1);
  assert.ok(m.grad_norm > 0);
});

test('onnx convert: a model already in half precision is exit 2 naming it', async () => {
  const half = await convert('fp16');
  const r = await runCli(['onnx', 'convert', half, '--to', 'bf16', '--out', join(dir, 'again.onnx')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${half}: is already float16; give a float32 model`));
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
