import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/model.js';
import { adamwInit } from '../../src/rl/adamw.js';
import { initLora, saveCheckpoint } from '../../src/rl/checkpoint.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32 } from '../../src/shards/tensor.js';
import { oneLine, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-onnx-cli-');

/** y = tanh(x·W1)·W2, x [B, 3] with symbolic B. */
function mlp(path: string, extraOp?: string): void {
  const g = new GraphBuilder('mlp', 18);
  const x = g.input('x', 'float32', ['B', 3]);
  const w1 = g.init('fc1.weight', Float32Array, [3, 4], (i) => Math.sin(i + 1));
  const w2 = g.init('fc2.weight', Float32Array, [4, 2], (i) => Math.cos(i));
  let h = g.op('Tanh', [g.op('MatMul', [x, w1])]);
  if (extraOp) h = g.op(extraOp, [h]);
  g.output(g.op('MatMul', [h, w2]), 'y');
  saveModel(g.toModel(), path);
}

test('onnx grad writes the gradient contract and its VJP matches finite differences', async () => {
  const m = join(dir, 'mlp.onnx');
  mlp(m);
  const out = join(dir, 'mlp.grad.onnx');
  const r = await runCli(['onnx', 'grad', m, '--out', out, '--shape', 'B=2']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), out);
  const s = await ModelSession.open(out);
  assert.deepEqual([...s.inputNames].sort(), ['grad:y', 'x']);
  assert.deepEqual([...s.outputNames].sort(), ['grad:fc1.weight', 'grad:fc2.weight', 'y']);
  // ⟨grad:fc1.weight, V⟩ against (f(W + hV) − f(W − hV))/2h of ⟨y, u⟩, computed here in float64.
  const x = [0.3, -0.7, 1.1, 0.5, 0.2, -0.4];
  const u = [1, -2, 0.5, 0.25];
  const res = await s.run({ x: f32([2, 3], x), 'grad:y': f32([2, 2], u) });
  const g1 = res['grad:fc1.weight']!.data as Float32Array;
  const W1 = Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
  const W2 = Array.from({ length: 8 }, (_, i) => Math.cos(i));
  const f = (w1: number[]) => {
    let acc = 0;
    for (let b = 0; b < 2; b++) {
      const h = [0, 1, 2, 3].map((j) =>
        Math.tanh([0, 1, 2].reduce((a, k) => a + x[b * 3 + k]! * w1[k * 4 + j]!, 0)),
      );
      for (let o = 0; o < 2; o++) acc += u[b * 2 + o]! * h.reduce((a, hj, j) => a + hj * W2[j * 2 + o]!, 0);
    }
    return acc;
  };
  const V = Array.from({ length: 12 }, (_, i) => Math.cos(3 * i));
  const hh = 1e-5;
  const fd = (f(W1.map((w, i) => w + hh * V[i]!)) - f(W1.map((w, i) => w - hh * V[i]!))) / (2 * hh);
  const dot = V.reduce((a, v, i) => a + v * g1[i]!, 0);
  assert.ok(Math.abs(fd - dot) < 1e-4 * Math.max(1, Math.abs(fd)), `fd ${fd} vs vjp ${dot}`);
  await s.release();
});

test('onnx grad: unsupported operator and dynamic dims without --shape exit 2 with one line', async () => {
  const m = join(dir, 'bad.onnx');
  mlp(m, 'Mod');
  const r = await runCli(['onnx', 'grad', m, '--out', join(dir, 'bad.grad.onnx'), '--shape', 'B=2']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /Mod/);
  assert.match(r.stderr, /fc1\.weight/);
  oneLine(r.stderr);
  const ok = join(dir, 'ok.onnx');
  mlp(ok);
  const d = await runCli(['onnx', 'grad', ok, '--out', join(dir, 'x.onnx')]);
  assert.equal(d.code, 2, d.stderr);
  assert.match(d.stderr, /\bx\b/);
});

test('onnx lora injects peft-mappable inputs; --merge folds a checkpoint into the weights', async () => {
  const m = join(dir, 'lora-base.onnx');
  mlp(m);
  const out = join(dir, 'lora.onnx');
  const r = await runCli([
    'onnx',
    'lora',
    m,
    '--out',
    out,
    '--rank',
    '2',
    '--alpha',
    '4',
    '--target',
    'fc*.weight',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = await ModelSession.open(out);
  assert.deepEqual([...s.inputNames].filter((n) => n.startsWith('lora:')).sort(), [
    'lora:fc1.weight:A',
    'lora:fc1.weight:B',
    'lora:fc2.weight:A',
    'lora:fc2.weight:B',
  ]);
  // A trained-looking adapter (B ≠ 0), saved as a checkpoint and merged.
  const lora = initLora(
    [
      { weight: 'fc1.weight', inDim: 3, outDim: 4 },
      { weight: 'fc2.weight', inDim: 4, outDim: 2 },
    ],
    2,
    5,
    4,
  );
  for (const [k, v] of lora.params)
    if (k.endsWith(':B')) for (let i = 0; i < v.length; i++) v[i] = Math.sin(i + k.length);
  const ck = join(dir, 'ckpt');
  saveCheckpoint(ck, {
    lora,
    optimizer: adamwInit(lora.params),
    state: { step: 1, configHash: 'x', metrics: {} },
  });
  const merged = join(dir, 'merged.onnx');
  const mr = await runCli(['onnx', 'lora', m, '--merge', ck, '--out', merged]);
  assert.equal(mr.code, 0, mr.stderr);
  const x = f32([2, 3], [0.3, -0.7, 1.1, 0.5, 0.2, -0.4]);
  const feeds: Record<string, ReturnType<typeof f32>> = { x };
  for (const a of lora.adapters) {
    feeds[`lora:${a.weight}:A`] = f32([a.inDim, 2], lora.params.get(`lora:${a.weight}:A`)!);
    feeds[`lora:${a.weight}:B`] = f32([2, a.outDim], lora.params.get(`lora:${a.weight}:B`)!);
  }
  const yLora = (await s.run(feeds)).y!.data as Float32Array;
  const sm = await ModelSession.open(merged);
  const yMerged = (await sm.run({ x })).y!.data as Float32Array;
  for (const [i, v] of yLora.entries())
    assert.ok(Math.abs(v - yMerged[i]!) < 1e-5, `y[${i}] ${v} vs ${yMerged[i]}`);
  await s.release();
  await sm.release();
});

test('onnx grad works on the fixture denoiser (LoRA inputs as parameters)', async () => {
  const lora = join(dir, 'den.lora.onnx');
  const r1 = await runCli([
    'onnx',
    'lora',
    join(ROOT, 'onnx/fixtures/denoiser.onnx'),
    '--out',
    lora,
    '--target',
    '*attn.q.weight',
  ]);
  assert.equal(r1.code, 0, r1.stderr);
  const r2 = await runCli([
    'onnx',
    'grad',
    lora,
    '--out',
    join(dir, 'den.grad.onnx'),
    '--wrt',
    'lora:*',
    '--shape',
    'B=1',
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  const s = await ModelSession.open(join(dir, 'den.grad.onnx'));
  assert.ok(s.inputNames.includes('grad:velocity'));
  assert.ok(s.outputNames.some((n) => n.startsWith('grad:lora:') && n.endsWith(':B')));
  await s.release();
});
