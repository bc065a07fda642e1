/** The EMA of the LoRA weights (src/rl/ema.ts) and its place in the checkpoint. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { adamwInit } from '../../src/rl/adamw.js';
import { initLora, loadCheckpoint, saveCheckpoint } from '../../src/rl/checkpoint.js';
import { emaInit, emaUpdate } from '../../src/rl/ema.js';
import { tempDir } from '../helpers.js';

test('ema ← d·ema + (1 − d)·θ, stored as float32', () => {
  const params = new Map([['w', Float32Array.of(1, 2)]]);
  const ema = emaInit(params);
  assert.notEqual(ema.get('w'), params.get('w'), 'a copy');
  params.set('w', Float32Array.of(3, -2));
  emaUpdate(ema, params, 0.9);
  // 0.9·1 + 0.1·3 = 1.2, 0.9·2 + 0.1·(−2) = 1.6
  assert.deepEqual([...ema.get('w')!], [Math.fround(1.2), Math.fround(1.6)]);
  params.set('w', Float32Array.of(0, 0));
  emaUpdate(ema, params, 0.5);
  assert.deepEqual(
    [...ema.get('w')!],
    [Math.fround(Math.fround(1.2) / 2), Math.fround(Math.fround(1.6) / 2)],
  );
  // A parameter the EMA does not hold yet starts at its value.
  params.set('v', Float32Array.of(7));
  emaUpdate(ema, params, 0.5);
  assert.deepEqual([...ema.get('v')!], [7]);
});

test('the checkpoint keeps the EMA beside the adapter and reads it back', () => {
  const lora = initLora([{ weight: 'fc.weight', inDim: 3, outDim: 2 }], 2, 1, 4);
  const ema = emaInit(lora.params);
  for (const v of ema.values()) for (let j = 0; j < v.length; j++) v[j] = j + 0.5;
  const dir = join(tempDir('vggrpo-ema-'), 'policy');
  saveCheckpoint(dir, {
    lora,
    optimizer: adamwInit(lora.params),
    state: { step: 1, configHash: 'x', metrics: {}, trainingHash: 'abc', training: { 'grpo.lr': 1 } },
    ema: { params: ema, decay: 0.95 },
  });
  const back = loadCheckpoint(dir);
  assert.equal(back.ema?.decay, 0.95);
  for (const [k, v] of ema) assert.deepEqual(back.ema!.params.get(k), v, k);
  assert.equal(back.state.trainingHash, 'abc');
  assert.deepEqual(back.state.training, { 'grpo.lr': 1 });
  const plain = join(tempDir('vggrpo-ema-'), 'policy');
  saveCheckpoint(plain, {
    lora,
    optimizer: adamwInit(lora.params),
    state: { step: 1, configHash: 'x', metrics: {} },
  });
  assert.equal(loadCheckpoint(plain).ema, undefined);
});
