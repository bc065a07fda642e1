/**
 * Models of any size: the toy denoiser and latent geometry model re-stored with their weights in
 * a sparse external data file of 4.25 GiB, the LoRA-targeted weights past offset 2^32 (`BIG`),
 * and the same denoiser with a 2.2 GB weight added whose contribution is exactly zero (`HUGE`,
 * the issue's 2.2 GB model; the geometry model gets one too). Every result on them must equal the same model with its weights
 * inline (the fixtures themselves): tensors read by offset, onnxruntime's outputs, LoRA-injected
 * and gradient models opened from the cache, and the CLI stages (sample, decode-geometry, score,
 * grpo-step, inspect, onnx lora, onnx grad). The holes cost no disk, and nothing reads them
 * (`onnx lora`/`onnx grad` copy a model's weights, so they run on `BIG`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { injectLora, mergeLora } from '../../src/onnx/lora.js';
import { encodeModel, loadModel, saveModel, tensorToArray } from '../../src/onnx/model.js';
import { cachedModelFile, openModel } from '../../src/runtime/model-cache.js';
import { ModelSession } from '../../src/runtime/session.js';
import { readSafetensors } from '../../src/shards/safetensors.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { ROOT, runCli, tempDir } from '../helpers.js';
import { HIGH, SPARSE_SIZE, writeSparseModel } from './sparse-model.js';

const FIX = join(ROOT, 'onnx/fixtures');
const dir = tempDir('vggrpo-big-');
const cache = join(dir, 'cache');
const env = { VGGRPO_CACHE: cache };
process.env.VGGRPO_CACHE = cache;
after(() => rmSync(dir, { recursive: true, force: true }));

const TARGETS = ['blocks.*.weight', 'head.head.weight'];
const isTarget = (n: string) => /^blocks\..*\.weight$|^head\.head\.weight$/.test(n);
const denOffsets = writeSparseModel(join(FIX, 'denoiser.onnx'), dir, 'den.onnx', isTarget);
writeSparseModel(join(FIX, 'lgm.onnx'), dir, 'lgm.onnx', () => true, { bigWeightBytes: 2.2e9 });
const BIG = join(dir, 'den.onnx');
const HUGE_BYTES = 2.2e9;
writeSparseModel(join(FIX, 'denoiser.onnx'), dir, 'huge.onnx', isTarget, { bigWeightBytes: HUGE_BYTES });
const HUGE = join(dir, 'huge.onnx');

/** Deterministic values in [−1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const B = 2;
const denoiserFeeds = (): Record<string, Tensor> => ({
  latents: f32([B, 14, 8, 16, 16], values(B * 14 * 8 * 16 * 16, 1)),
  timestep: f32([B], [250, 800]),
  context: f32([B, 32, 32], values(B * 32 * 32, 2)),
});

test('the sparse file is over 4 GiB, the targeted weights lie past 2^32, and it costs no disk', () => {
  const st = statSync(`${BIG}.data`);
  assert.equal(st.size, SPARSE_SIZE);
  assert.ok(st.blocks * 512 < 64 << 20, `allocated ${st.blocks * 512} bytes`);
  const high = [...denOffsets].filter(([n]) => isTarget(n));
  assert.ok(high.length >= 10);
  for (const [, off] of high) assert.ok(off >= HIGH && off > 2 ** 32);
});

test('loadModel reads each tensor at its offset, also past 2^32, equal to the inline original', () => {
  const big = loadModel(BIG);
  const ref = new Map(loadModel(join(FIX, 'denoiser.onnx')).graph!.initializer!.map((t) => [t.name, t]));
  let external = 0;
  for (const t of big.graph!.initializer!) {
    if (t.dataLocation === 1) external++;
    assert.deepEqual(tensorToArray(t), tensorToArray(ref.get(t.name)!), t.name);
  }
  assert.equal(external, denOffsets.size);
});

test('onnxruntime on the 2.2 GB model gives the inline model’s outputs bit for bit', async () => {
  const huge = loadModel(HUGE).graph!.initializer!.find((t) => t.name === 'big.weight')!;
  assert.equal(huge.dataLocation, 1);
  assert.deepEqual(huge.dims, [HUGE_BYTES / 4]);
  const [a, b] = await Promise.all([ModelSession.open(HUGE), ModelSession.open(join(FIX, 'denoiser.onnx'))]);
  const feeds = denoiserFeeds();
  assert.deepEqual((await a.run(feeds)).velocity, (await b.run(feeds)).velocity);
});

test('a LoRA-injected 2.2 GB model is built once in the cache (weights hard-linked) and equals the inline one', async () => {
  const lora = { rank: 2, alpha: 4, targets: TARGETS };
  const big = injectLora(loadModel(HUGE), lora);
  const small = injectLora(loadModel(join(FIX, 'denoiser.onnx')), lora);
  const feeds = denoiserFeeds();
  let seed = 10;
  for (const a of small.adapters) {
    feeds[a.loraA] = f32([a.inDim, 2], values(a.inDim * 2, seed++));
    feeds[a.loraB] = f32([2, a.outDim], values(a.outDim * 2, seed++));
  }
  const s1 = await openModel(big.model, {}, HUGE);
  const s0 = await openModel(small.model, {}, 'inline');
  const v1 = (await s1.run(feeds)).velocity!;
  assert.deepEqual(v1, (await s0.run(feeds)).velocity);
  // The LoRA branch is live: B = 0 gives a different velocity.
  const off = { ...feeds };
  for (const a of small.adapters) off[a.loraB] = f32([2, a.outDim], new Float32Array(2 * a.outDim));
  assert.notDeepEqual((await s1.run(off)).velocity, v1);

  const models = join(cache, 'models');
  const files = readdirSync(models).sort();
  assert.equal(files.filter((f) => f.endsWith('.onnx')).length, 1, files.join(' '));
  assert.ok(!files.some((f) => f.endsWith('.tmp')), 'no temp files left');
  const link = files.find((f) => f.startsWith('w-'))!;
  assert.equal(statSync(join(models, link)).ino, statSync(`${HUGE}.data`).ino, 'hard link, not a copy');
  // Built once: a second build of the same model reuses the file.
  const path = join(models, files.find((f) => f.endsWith('.onnx'))!);
  const mtime = statSync(path).mtimeMs;
  assert.equal(cachedModelFile(injectLora(loadModel(HUGE), lora).model), path);
  assert.equal(statSync(path).mtimeMs, mtime);
});

test('merging an adapter into weights past 2^32 reads them by offset and gives the inline merge', () => {
  const lora = { rank: 2, alpha: 4, targets: TARGETS };
  const merged: string[] = [];
  for (const [i, src] of [join(FIX, 'denoiser.onnx'), BIG].entries()) {
    const { adapters } = injectLora(loadModel(src), lora);
    const params: Record<string, Float32Array> = {};
    for (const a of adapters) {
      params[a.loraA] = values(a.inDim * 2, a.inDim);
      params[a.loraB] = values(a.outDim * 2, a.outDim + 7);
    }
    const out = join(dir, 'out', `merged-${i}.onnx`);
    saveModel(mergeLora(loadModel(src), adapters, params), out);
    merged.push(Buffer.from(encodeModel(loadModel(out))).toString('hex'));
  }
  assert.equal(merged[1], merged[0]);
});

test('processes building the same cached model at once agree on one complete file', async () => {
  const shared = join(dir, 'cache-race');
  const script = `
    const { injectLora } = await import(${JSON.stringify(join(ROOT, 'src/onnx/lora.ts'))});
    const { loadModel } = await import(${JSON.stringify(join(ROOT, 'src/onnx/model.ts'))});
    const { cachedModelFile } = await import(${JSON.stringify(join(ROOT, 'src/runtime/model-cache.ts'))});
    const lora = { rank: 3, alpha: 3, targets: ${JSON.stringify(TARGETS)} };
    console.log(cachedModelFile(injectLora(loadModel(${JSON.stringify(BIG)}), lora).model));`;
  const runs = await Promise.all(
    [0, 1, 2, 3].map(() =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: ROOT,
        env: { ...process.env, VGGRPO_CACHE: shared },
      }),
    ),
  );
  const paths = new Set(runs.map((r) => r.stdout.trim()));
  assert.equal(paths.size, 1);
  const files = readdirSync(join(shared, 'models'));
  assert.ok(!files.some((f) => f.endsWith('.tmp')), files.join(' '));
  assert.equal(files.filter((f) => f.endsWith('.onnx')).length, 1);
  // The result runs and equals the inline model with the same adapters.
  const lora = { rank: 3, alpha: 3, targets: TARGETS };
  const small = injectLora(loadModel(join(FIX, 'denoiser.onnx')), lora);
  const feeds = denoiserFeeds();
  for (const a of small.adapters) {
    feeds[a.loraA] = f32([a.inDim, 3], values(a.inDim * 3, a.inDim));
    feeds[a.loraB] = f32([3, a.outDim], values(a.outDim * 3, a.outDim + 1));
  }
  const [p] = paths;
  const got = (await (await ModelSession.open(p!)).run(feeds)).velocity;
  assert.deepEqual(got, (await (await openModel(small.model, {}, 'inline')).run(feeds)).velocity);
});

test('inspect, onnx lora and onnx grad on the big models equal their results on the inline one', async () => {
  const [ib, is] = await Promise.all([
    runCli(['inspect', HUGE, '--json'], { env }),
    runCli(['inspect', join(FIX, 'denoiser.onnx'), '--json'], { env }),
  ]);
  assert.equal(ib.code, 0, ib.stderr);
  const jb = JSON.parse(ib.stdout).files[0];
  const js = JSON.parse(is.stdout).files[0];
  assert.deepEqual(jb.initializers, {
    count: js.initializers.count + 2,
    parameters: js.initializers.parameters + HUGE_BYTES / 4 + 1,
  });

  const lb = join(dir, 'out', 'lora-big.onnx');
  const ls = join(dir, 'out', 'lora-small.onnx');
  const targets = TARGETS.flatMap((t) => ['--target', t]);
  for (const [src, out] of [
    [BIG, lb],
    [join(FIX, 'denoiser.onnx'), ls],
  ] as const) {
    const r = await runCli(['onnx', 'lora', src, '--out', out, '--rank', '2', ...targets], { env });
    assert.equal(r.code, 0, r.stderr);
  }
  const feeds = denoiserFeeds();
  const sb = await ModelSession.open(lb);
  for (const n of sb.inputNames.filter((n) => n.startsWith('lora:'))) {
    const [r, c] = sb.inputs.find((i) => i.name === n)!.shape as number[];
    feeds[n] = f32([r!, c!], values(r! * c!, n.length));
  }
  const expected = (await (await ModelSession.open(ls)).run(feeds)).velocity;
  assert.deepEqual((await sb.run(feeds)).velocity, expected);
  // Asked to keep external data: the weights are copied range by range from past 2^32 into a
  // compact data file (the holes are not copied).
  const lx = join(dir, 'out', 'lora-ext.onnx');
  const rx = await runCli(
    ['onnx', 'lora', BIG, '--out', lx, '--rank', '2', ...targets, '--external-data', '1024'],
    {
      env,
    },
  );
  assert.equal(rx.code, 0, rx.stderr);
  assert.ok(statSync(`${lx}.data`).size < 1 << 20, `${statSync(`${lx}.data`).size} bytes`);
  assert.deepEqual((await (await ModelSession.open(lx)).run(feeds)).velocity, expected);

  const gb = join(dir, 'out', 'grad-big.onnx');
  const gs = join(dir, 'out', 'grad-small.onnx');
  for (const [src, out] of [
    [BIG, gb],
    [join(FIX, 'denoiser.onnx'), gs],
  ] as const) {
    const r = await runCli(
      ['onnx', 'grad', src, '--out', out, '--wrt', 'head.head.weight', '--shape', 'B=2'],
      {
        env,
      },
    );
    assert.equal(r.code, 0, r.stderr);
  }
  const gfeeds = {
    ...denoiserFeeds(),
    'grad:velocity': f32([B, 14, 8, 16, 16], values(B * 14 * 8 * 16 * 16, 3)),
  };
  const [rb, rs] = await Promise.all([ModelSession.open(gb), ModelSession.open(gs)]);
  assert.deepEqual(
    (await rb.run(gfeeds))['grad:head.head.weight'],
    (await rs.run(gfeeds))['grad:head.head.weight'],
  );
});

test('sample → decode-geometry → score → grpo-step on the 2.2 GB model give the inline models’ shards', async () => {
  const prompts = join(dir, 'prompts.txt');
  writeFileSync(prompts, 'orbit around the red box\n');
  const toy = readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8');
  const results: Record<string, Map<string, Tensor>>[] = [];
  for (const [name, den, lgm] of [
    ['big', HUGE, join(dir, 'lgm.onnx')],
    ['small', join(FIX, 'denoiser.onnx'), join(FIX, 'lgm.onnx')],
  ] as const) {
    const cfg = join(dir, `${name}.yaml`);
    writeFileSync(
      cfg,
      toy
        .replace('../../onnx/fixtures/denoiser.onnx', den)
        .replace('../../onnx/fixtures/lgm.onnx', lgm)
        .replace(/\.\.\/\.\.\/onnx\//g, `${join(ROOT, 'onnx')}/`),
    );
    const run = join(dir, name);
    const common = ['--config', cfg, '--threads', '1'];
    const s = await runCli(
      [
        'sample',
        ...common,
        '--prompts',
        prompts,
        '--group-size',
        '2',
        '--steps',
        '3',
        '--out',
        join(run, 'trajectory'),
      ],
      { env },
    );
    assert.equal(s.code, 0, s.stderr);
    const g = await runCli(['decode-geometry', ...common, ...s.stdout.trim().split('\n')], { env });
    assert.equal(g.code, 0, g.stderr);
    const r = await runCli(['score', ...common, ...g.stdout.trim().split('\n')], { env });
    assert.equal(r.code, 0, r.stderr);
    const p = await runCli(
      ['grpo-step', ...common, ...r.stdout.trim().split('\n'), '--out', join(run, 'policy')],
      {
        env,
      },
    );
    assert.equal(p.code, 0, p.stderr);
    const shard = (kind: string) => {
      const f = readdirSync(join(run, kind)).find((x) => x.endsWith('.safetensors'))!;
      return readSafetensors(join(run, kind, f)).tensors;
    };
    results.push({
      trajectory: shard('trajectory'),
      geometry: shard('geometry'),
      adapter: readSafetensors(join(run, 'policy', 'adapter_model.safetensors')).tensors,
    });
  }
  const [big, small] = results;
  for (const k of ['trajectory', 'geometry', 'adapter']) assert.deepEqual(big![k], small![k], k);
  const adapter = [...small!.adapter!.values()];
  assert.ok(
    adapter.some((t) => (t.data as Float32Array).some((v) => v !== 0)),
    'the step changed the adapter',
  );
});
