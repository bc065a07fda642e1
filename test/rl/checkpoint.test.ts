import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { adamwInit, adamwStep } from '../../src/rl/adamw.js';
import {
  ADAPTER_FILE,
  checkpointHooks,
  initLora,
  type LoraAdapter,
  loadCheckpoint,
  loraTensors,
  type PolicyCheckpoint,
  STATE_FILE,
  saveCheckpoint,
} from '../../src/rl/checkpoint.js';
import { gaussian } from '../../src/rl/prng.js';
import { readSafetensors, writeSafetensors } from '../../src/shards/safetensors.js';
import { f32 } from '../../src/shards/tensor.js';

const root = mkdtempSync(join(tmpdir(), 'vggrpo-ckpt-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ADAPTERS: LoraAdapter[] = [
  { weight: 'blocks.0.attn.q.weight', inDim: 6, outDim: 5 },
  { weight: 'onnx::MatMul_42', inDim: 3, outDim: 7 },
];

/** A checkpoint with non-trivial A, B and moments (after two optimiser steps). */
function makeCheckpoint(seed: number): PolicyCheckpoint {
  const lora = initLora(ADAPTERS, 2, seed, 4);
  const optimizer = adamwInit(lora.params);
  for (let t = 0; t < 2; t++) {
    const grads = new Map([...lora.params].map(([k, p], i) => [k, gaussian(BigInt(100 * t + i), p.length)]));
    adamwStep(lora.params, grads, optimizer, { lr: 0.01 });
  }
  return {
    lora,
    optimizer,
    state: { step: 2, configHash: 'abc123', metrics: { reward: 0.5 } },
    baseModel: 'denoiser.onnx',
  };
}

test('initLora: B = 0, A ~ U(−1/√in, 1/√in) per weight stream', () => {
  const big = initLora([{ weight: 'w.weight', inDim: 400, outDim: 3 }], 8, 1);
  const a = big.params.get('lora:w.weight:A')!;
  assert.equal(a.length, 400 * 8);
  const bound = 1 / Math.sqrt(400);
  let maxAbs = 0;
  let sq = 0;
  for (const x of a) {
    maxAbs = Math.max(maxAbs, Math.abs(x));
    sq += x * x;
  }
  assert.ok(maxAbs <= bound && maxAbs > 0.99 * bound, `max |A| ${maxAbs}, bound ${bound}`);
  // Var of U(−b, b) is b²/3 (kaiming_uniform with a = √5 gives exactly this).
  assert.ok(Math.abs(sq / a.length / (bound ** 2 / 3) - 1) < 0.1);
  assert.ok(big.params.get('lora:w.weight:B')!.every((x) => x === 0));
  assert.equal(big.alpha, 16); // default α = 2r
  // Deterministic, and a weight's init does not depend on the other adapters.
  const one = initLora([ADAPTERS[1]!], 2, 9);
  const both = initLora(ADAPTERS, 2, 9);
  assert.deepEqual(one.params.get('lora:onnx::MatMul_42:A'), both.params.get('lora:onnx::MatMul_42:A'));
  assert.notDeepEqual(
    initLora(ADAPTERS, 2, 10).params.get('lora:onnx::MatMul_42:A'),
    both.params.get('lora:onnx::MatMul_42:A'),
  );
  const t = loraTensors(both);
  assert.deepEqual(t.get('lora:blocks.0.attn.q.weight:A')!.shape, [6, 2]);
  assert.deepEqual(t.get('lora:blocks.0.attn.q.weight:B')!.shape, [2, 5]);
});

test('round trip with peft keys, transposed layouts, peft config, moments and state', () => {
  const dir = join(root, 'rt', 'step-0002');
  const ck = makeCheckpoint(3);
  saveCheckpoint(dir, ck);
  assert.deepEqual(readdirSync(dir).sort(), [
    'adapter_config.json',
    'adapter_model.safetensors',
    'optimizer.safetensors',
    'state.json',
  ]);

  const adapter = readSafetensors(join(dir, ADAPTER_FILE));
  assert.deepEqual([...adapter.tensors.keys()].sort(), [
    'base_model.model.blocks.0.attn.q.lora_A.weight',
    'base_model.model.blocks.0.attn.q.lora_B.weight',
    'base_model.model.onnx::MatMul_42.lora_A.weight',
    'base_model.model.onnx::MatMul_42.lora_B.weight',
  ]);
  const pa = adapter.tensors.get('base_model.model.blocks.0.attn.q.lora_A.weight')!;
  const pb = adapter.tensors.get('base_model.model.blocks.0.attn.q.lora_B.weight')!;
  assert.deepEqual(pa.shape, [2, 6]); // [r, in]
  assert.deepEqual(pb.shape, [5, 2]); // [out, r]
  const A = ck.lora.params.get('lora:blocks.0.attn.q.weight:A')!; // [in=6, r=2]
  const B = ck.lora.params.get('lora:blocks.0.attn.q.weight:B')!; // [r=2, out=5]
  for (let i = 0; i < 6; i++)
    for (let k = 0; k < 2; k++) assert.equal((pa.data as Float32Array)[k * 6 + i], A[i * 2 + k]);
  for (let k = 0; k < 2; k++)
    for (let o = 0; o < 5; o++) assert.equal((pb.data as Float32Array)[o * 2 + k], B[k * 5 + o]);
  assert.ok(B.some((x) => x !== 0)); // the optimiser moved B, so the transpose check is not vacuous

  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.r, 2);
  assert.equal(cfg.lora_alpha, 4);
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.bias, 'none');
  assert.equal(cfg.task_type, null);
  assert.equal(cfg.fan_in_fan_out, false);
  assert.equal(cfg.lora_dropout, 0);
  assert.equal(cfg.base_model_name_or_path, 'denoiser.onnx');
  assert.deepEqual(cfg.target_modules, ['blocks.0.attn.q', 'onnx::MatMul_42']);
  const st = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8'));
  assert.deepEqual(st, { step: 2, config_hash: 'abc123', metrics: { reward: 0.5 } });

  const back = loadCheckpoint(dir);
  assert.deepEqual(back.lora.adapters, ADAPTERS);
  assert.equal(back.lora.rank, 2);
  assert.equal(back.lora.alpha, 4);
  assert.deepEqual(back.lora.params, ck.lora.params);
  assert.equal(back.optimizer.step, 2);
  assert.deepEqual(back.optimizer.expAvg, ck.optimizer.expAvg);
  assert.deepEqual(back.optimizer.expAvgSq, ck.optimizer.expAvgSq);
  assert.deepEqual(back.state, ck.state);
  assert.equal(back.baseModel, 'denoiser.onnx');
  // Resuming continues exactly like the in-memory optimiser.
  const g = new Map([...ck.lora.params].map(([k, p]) => [k, gaussian(7n, p.length)]));
  adamwStep(ck.lora.params, g, ck.optimizer, { lr: 0.01 });
  adamwStep(back.lora.params, g, back.optimizer, { lr: 0.01 });
  assert.deepEqual(back.lora.params, ck.lora.params);
});

test('a failure before the rename leaves no target folder and no temp folder', () => {
  const parent = join(root, 'fail-new');
  const dir = join(parent, 'policy');
  let seenTmp = '';
  checkpointHooks.beforeRename = (tmp) => {
    seenTmp = tmp;
    assert.ok(existsSync(join(tmp, 'state.json'))); // everything was written before the rename
    throw new Error('simulated crash');
  };
  try {
    assert.throws(() => saveCheckpoint(dir, makeCheckpoint(1)), /simulated crash/);
  } finally {
    checkpointHooks.beforeRename = undefined;
  }
  assert.ok(seenTmp !== '');
  assert.equal(existsSync(dir), false);
  assert.deepEqual(readdirSync(parent), []);
});

test('overwriting: a failed save keeps the old folder intact, a good one replaces it whole', () => {
  const parent = join(root, 'overwrite');
  const dir = join(parent, 'policy');
  const first = makeCheckpoint(1);
  saveCheckpoint(dir, first);
  checkpointHooks.beforeRename = () => {
    throw new Error('simulated crash');
  };
  try {
    assert.throws(() => saveCheckpoint(dir, makeCheckpoint(2)), /simulated crash/);
  } finally {
    checkpointHooks.beforeRename = undefined;
  }
  assert.deepEqual(loadCheckpoint(dir).lora.params, first.lora.params);
  assert.deepEqual(readdirSync(parent), ['policy']);
  const second = makeCheckpoint(2);
  second.state.step = 3;
  saveCheckpoint(dir, second);
  const back = loadCheckpoint(dir);
  assert.deepEqual(back.lora.params, second.lora.params);
  assert.equal(back.state.step, 3);
  assert.deepEqual(readdirSync(parent), ['policy']); // the old folder was removed
});

test('loading names the file and the fault', () => {
  const dir = join(root, 'bad');
  saveCheckpoint(dir, makeCheckpoint(4));
  const isInput = (file: string, fault: RegExp) => (e: unknown) =>
    e instanceof InputError && e.where.endsWith(file) && fault.test(e.fault);

  assert.throws(
    () => loadCheckpoint(join(root, 'nope')),
    (e: unknown) => e instanceof InputError && /no such/.test(e.fault),
  );
  rmSync(join(dir, STATE_FILE));
  assert.throws(() => loadCheckpoint(dir), isInput('state.json', /missing/));
  writeFileSync(join(dir, STATE_FILE), '{"step": -1, "config_hash": "x"}');
  assert.throws(() => loadCheckpoint(dir), isInput('state.json', /step/));
  writeFileSync(join(dir, STATE_FILE), '{"step": 1, "config_hash": "x", "metrics": {}}');
  assert.equal(loadCheckpoint(dir).state.step, 1);

  // lora_A with the wrong rank.
  const good = readSafetensors(join(dir, ADAPTER_FILE));
  const tensors = new Map(good.tensors);
  tensors.set('base_model.model.blocks.0.attn.q.lora_A.weight', f32([3, 6]));
  writeSafetensors(join(dir, ADAPTER_FILE), tensors, good.metadata);
  assert.throws(() => loadCheckpoint(dir), isInput(ADAPTER_FILE, /expected \[2, in\]/));
  // A lone lora_B.
  tensors.delete('base_model.model.blocks.0.attn.q.lora_A.weight');
  writeSafetensors(join(dir, ADAPTER_FILE), tensors, good.metadata);
  assert.throws(() => loadCheckpoint(dir), isInput(ADAPTER_FILE, /no lora_A/));
  // A key that is not a peft LoRA key.
  writeSafetensors(join(dir, ADAPTER_FILE), { 'model.fc.weight': f32([2, 2]) });
  assert.throws(() => loadCheckpoint(dir), isInput(ADAPTER_FILE, /not a peft LoRA key/));
  // The optimiser state must match the adapter's shapes.
  writeSafetensors(join(dir, ADAPTER_FILE), good.tensors, good.metadata);
  const opt = readSafetensors(join(dir, 'optimizer.safetensors'));
  const ot = new Map(opt.tensors);
  ot.set('lora:onnx::MatMul_42:B.exp_avg', f32([7, 2]));
  writeSafetensors(join(dir, 'optimizer.safetensors'), ot, opt.metadata);
  assert.throws(() => loadCheckpoint(dir), isInput('optimizer.safetensors', /expected \[2, 7\]/));
  writeFileSync(join(dir, 'adapter_config.json'), '{"r": 2, "lora_alpha": 4, "use_rslora": true}');
  assert.throws(() => loadCheckpoint(dir), isInput('adapter_config.json', /use_rslora/));
});

test('a plain peft adapter folder loads with adapterOnly', () => {
  const dir = join(root, 'peft-only');
  saveCheckpoint(dir, makeCheckpoint(5));
  rmSync(join(dir, 'optimizer.safetensors'));
  rmSync(join(dir, STATE_FILE));
  // peft writes no vggrpo metadata: module names map back to `<module>.weight`.
  const f = readSafetensors(join(dir, ADAPTER_FILE));
  const keep = new Map([...f.tensors].filter(([k]) => k.includes('blocks.0')));
  writeSafetensors(join(dir, ADAPTER_FILE), keep, { format: 'pt' });
  assert.throws(() => loadCheckpoint(dir), InputError);
  const ck = loadCheckpoint(dir, { adapterOnly: true });
  assert.deepEqual(ck.lora.adapters, [ADAPTERS[0]]);
  assert.equal(ck.optimizer.step, 0);
  assert.equal(ck.state.step, 0);
});
