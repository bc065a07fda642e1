import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { encodeModel } from '../../src/onnx/model.js';
import { gaussian } from '../../src/rl/prng.js';
import { ModelSession } from '../../src/runtime/session.js';
import { readSafetensors, writeSafetensors } from '../../src/shards/safetensors.js';
import { f32 } from '../../src/shards/tensor.js';
import { runStitch } from '../../src/stages/stitch.js';
import {
  addConnector,
  connectorFromPatchMap,
  PAPER_CONNECTOR,
  PATCH_CONNECTOR,
} from '../../src/stitch/connector.js';
import {
  applyMap,
  patchFeatures,
  RelativeError,
  RidgeFit,
  tokenRows,
} from '../../src/stitch/stitch-point.js';
import { framesAt, latentFramePositions } from '../../src/stitch/targets.js';
import { Net } from '../../src/toy/nn.js';
import { ROOT, runCli, tempDir } from '../helpers.js';
import { tinyEncoder, tinyPhi, videoShard } from './tiny.js';

const dir = tempDir('vggrpo-stitch-');
const rand = (n: number, seed: number) => gaussian(seed, n);

test('the connector computes a fitted patch map exactly (tokens and grid layouts, paper kernel and patch kernel)', async () => {
  const C = 3;
  const D = 5;
  const shape = [C, 2, 6, 4];
  const grid = { frames: 2, height: 3, width: 2, patch: [2, 2] as [number, number] };
  const P1 = C * 4 + 1;
  const M = Float64Array.from(rand(P1 * D, 3));
  const lat = rand(C * 2 * 6 * 4, 4);
  const want = applyMap(patchFeatures(lat, shape, grid), M, 12, P1, D);
  for (const spec of [PAPER_CONNECTOR, PATCH_CONNECTOR]) {
    for (const layout of ['tokens', 'grid'] as const) {
      const w = connectorFromPatchMap(M, C, D, spec)!;
      const g = new GraphBuilder('c', 18);
      const net = new Net(g, {
        seed: 0,
        weights: new Map([
          ['connector.weight', w.weight],
          ['connector.bias', w.bias],
        ]),
      });
      g.output(
        addConnector(net, g.input('latents', 'float32', [1, ...shape]), spec, {
          channels: C,
          width: D,
          layout,
        }),
        'y',
      );
      const s = await ModelSession.open(encodeModel(g.toModel()), { threads: 1 });
      const y = (await s.run({ latents: f32([1, ...shape], lat) })).y!;
      await s.release();
      assert.deepEqual(y.shape, layout === 'tokens' ? [1, 12, D] : [1, D, 2, 3, 2]);
      const rows = tokenRows(y.data as Float32Array, 12, D, layout);
      want.forEach((v, i) => {
        assert.ok(Math.abs(v - rows[i]!) < 1e-5, `${layout} [${i}] ${v} vs ${rows[i]}`);
      });
    }
  }
});

test('the ridge fit recovers a linear map from latent patches and scores a perfect map at relative MSE ≈ 0', () => {
  const C = 2;
  const D = 3;
  const shape = [C, 1, 4, 4];
  const grid = { frames: 1, height: 2, width: 2, patch: [2, 2] as [number, number] };
  const P1 = C * 4 + 1;
  const M = Float64Array.from(rand(P1 * D, 9));
  const fit = new RidgeFit(P1, D);
  const samples = Array.from({ length: 20 }, (_, k) => rand(C * 16, 100 + k));
  for (const s of samples) {
    const X = patchFeatures(s, shape, grid);
    fit.add(X, Float32Array.from(applyMap(X, M, 4, P1, D)), 4);
  }
  const got = fit.solve(1e-9);
  got.forEach((v, i) => {
    assert.ok(Math.abs(v - M[i]!) < 1e-3, `M[${i}] ${v} vs ${M[i]}`);
  });
  const rel = new RelativeError(fit.mean());
  const X = patchFeatures(rand(C * 16, 7), shape, grid);
  const Y = applyMap(X, M, 4, P1, D);
  rel.add(applyMap(X, got, 4, P1, D), Y);
  assert.ok(rel.value() < 1e-6, `${rel.value()}`);
  // the mean predictor scores about 1
  const base = new RelativeError(fit.mean());
  base.add(
    Array.from(Y, (_, i) => fit.mean()[i % D]!),
    Y,
  );
  assert.equal(base.value(), 1);
});

test('latent-frame positions with temporal compression: frame 0, then t, 2t, …', () => {
  assert.deepEqual(latentFramePositions(17, 4), [0, 4, 8, 12, 16]);
  assert.deepEqual(latentFramePositions(8, 1), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => latentFramePositions(8, 4), /--videos: 8 frames do not fit temporal compression 4/);
  const v = Float32Array.from({ length: 5 * 2 }, (_, i) => i);
  assert.deepEqual([...framesAt(v, 5, [0, 4])], [0, 1, 8, 9]);
});

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig(
    [
      {
        runtime: { threads: 1 },
        stitch: {
          batch: 4,
          checkpoint_every: 10,
          phase1: { steps: 20, lr: 3e-3 },
          phase2: { steps: 20, lr: 3e-3 },
          ...extra,
        },
      },
    ],
    'test',
  );
}

const enc = join(dir, 'enc.onnx');
const phi = join(dir, 'phi.onnx');
const shard = join(dir, 'videos', 'v.safetensors');
mkdirSync(join(dir, 'videos'));
tinyEncoder(enc, { frames: 2 });
tinyPhi(phi, { frames: 2 });
videoShard(shard, 20, 2);
mkdirSync(join(dir, 'videos80'));
videoShard(join(dir, 'videos80', 'v.safetensors'), 80, 2, undefined, 1);
const quiet = () => {};

test('stitch --at auto: per-candidate errors, the lowest chosen, an LGM that meets the contract and improves in phase 2', async () => {
  const out = join(dir, 'run');
  const written: string[] = [];
  const r = await runStitch(
    {
      geometryModel: phi,
      encoder: enc,
      videos: join(dir, 'videos80'),
      at: 'auto',
      out,
      config: config({ batch: 8, phase1: { steps: 40, lr: 3e-3 }, phase2: { steps: 40, lr: 1e-3 } }),
    },
    quiet,
    (p) => written.push(p),
  );
  assert.deepEqual(
    r.candidates.map((c) => c.tensor),
    ['tokenizer.output', 'blocks.0.output', 'blocks.1.output'],
  );
  const best = Math.min(...r.candidates.map((c) => c.heldout_relative_mse!));
  assert.equal(r.candidates.find((c) => c.heldout_relative_mse === best)!.tensor, r.at);
  assert.deepEqual(r.videos, { train: 64, heldout: 16 });
  // phase 1 starts at the ridge map and must not end worse on held-out videos
  assert.ok(
    r.phase1.heldout_relative_mse <= best * 1.05,
    `${r.phase1.heldout_relative_mse} vs ridge ${best}`,
  );
  // phase 2 lowers the held-out objective (relative MSE per output; confidence and flow weighted 0.1 by default)
  const errs = Object.entries(r.phase2.heldout_relative_mse);
  const sum = (k: 'after_phase1' | 'after_phase2') =>
    errs.reduce((a, [n, e]) => a + (n === 'confidence' || n === 'scene_flow' ? 0.1 : 1) * e[k], 0);
  assert.ok(sum('after_phase2') < 0.8 * sum('after_phase1'), JSON.stringify(r.phase2));
  assert.ok(written.includes(join(out, 'lgm.onnx')));
  assert.match(readFileSync(join(out, 'lgm-config.yaml'), 'utf8'), /lgm: lgm.onnx[\s\S]*cameras: pose_enc/);
  assert.equal(readFileSync(join(out, 'curves.csv'), 'utf8').trim().split('\n').length, 81);
  // The contract: latents [B, 4, 2, 4, 4] with a dynamic batch → Φ's five outputs.
  const s = await ModelSession.open(join(out, 'lgm.onnx'), { threads: 1 });
  assert.deepEqual([...s.inputNames], ['latents']);
  assert.deepEqual([...s.outputNames].sort(), [
    'confidence',
    'depth',
    'pose_enc',
    'scene_flow',
    'world_points',
  ]);
  const o = await s.run({ latents: f32([3, 4, 2, 4, 4], rand(3 * 128, 1)) });
  assert.deepEqual(o.depth!.shape, [3, 2, 2, 2]);
  assert.deepEqual(o.pose_enc!.shape, [3, 2, 9]);
  await s.release();
});

test('a 5-D stitch tensor [B, D, F, h, w] is matched by the connector grid, not reshaped to tokens', async () => {
  const phiGrid = join(dir, 'phi-grid.onnx');
  tinyPhi(phiGrid, { frames: 2, grid: true });
  const r = await runStitch(
    {
      geometryModel: phiGrid,
      encoder: enc,
      videos: join(dir, 'videos'),
      at: 'tokenizer.output',
      out: join(dir, 'grid'),
      config: config(),
    },
    quiet,
    quiet,
  );
  assert.equal(r.at, 'tokenizer.output');
  assert.ok(r.candidates[0]!.heldout_relative_mse! < 0.9, JSON.stringify(r.candidates));
  assert.ok(r.phase1.heldout_relative_mse <= r.candidates[0]!.heldout_relative_mse! * 1.05);
  const s = await ModelSession.open(r.lgm, { threads: 1 });
  const o = await s.run({ latents: f32([2, 4, 2, 4, 4], rand(256, 5)) });
  assert.deepEqual(o.world_points!.shape, [2, 2, 2, 2, 3]);
  await s.release();
});

test('--encoder shards: latents stored with the frames stand in for the encoder (same LGM as running it)', async () => {
  const withEnc = await runStitch(
    {
      geometryModel: phi,
      encoder: enc,
      videos: join(dir, 'videos'),
      at: 'blocks.0.output',
      out: join(dir, 'e1'),
      config: config(),
    },
    quiet,
    quiet,
  );
  // the same videos with the encoder's latents stored beside them, as `vggrpo world` shards hold final_latents
  const { tensors } = readSafetensors(shard);
  const rgb = tensors.get('rgb')!;
  const frames = Float32Array.from(rgb.data as Uint8Array, (v) => v / 255);
  const planar = new Float32Array(frames.length);
  const [B, F, H, W] = rgb.shape as [number, number, number, number];
  for (let i = 0; i < B * F; i++)
    for (let p = 0; p < H * W; p++)
      for (let c = 0; c < 3; c++) planar[(i * 3 + c) * H * W + p] = frames[(i * H * W + p) * 3 + c]!;
  const s = await ModelSession.open(enc, { threads: 1 });
  const lat = (await s.run({ frames: f32([B, F, 3, H, W], planar) })).latents!;
  await s.release();
  mkdirSync(join(dir, 'paired'));
  writeSafetensors(join(dir, 'paired', 'v.safetensors'), { rgb, final_latents: lat });
  const paired = await runStitch(
    {
      geometryModel: phi,
      encoder: 'shards',
      videos: join(dir, 'paired'),
      at: 'blocks.0.output',
      out: join(dir, 'e2'),
      config: config(),
    },
    quiet,
    quiet,
  );
  assert.deepEqual(paired.candidates, withEnc.candidates);
  assert.deepEqual(readFileSync(paired.lgm), readFileSync(withEnc.lgm));
  await assert.rejects(
    runStitch(
      {
        geometryModel: phi,
        encoder: 'shards',
        videos: join(dir, 'videos'),
        at: 'auto',
        out: join(dir, 'e3'),
        config: config(),
      },
      quiet,
      quiet,
    ),
    /--encoder shards: the --videos are not shards that all hold 'final_latents'/,
  );
});

test("vae.latents_mean/std: the connector learns from normalised latents, (z − mean)/std, as the denoiser's are", async () => {
  const mean = [0.5, -1, 2, 0];
  const std = [2, 0.5, 1, 4];
  const wan = (out: string, encoder: string, videos: string) =>
    runStitch(
      {
        geometryModel: phi,
        encoder,
        videos,
        at: 'blocks.0.output',
        out: join(dir, out),
        config: resolveConfig(
          [
            {
              runtime: { threads: 1 },
              vae: { latents_mean: mean, latents_std: std },
              stitch: {
                batch: 4,
                checkpoint_every: 10,
                phase1: { steps: 20, lr: 3e-3 },
                phase2: { steps: 20, lr: 3e-3 },
              },
            },
          ],
          'test',
        ),
      },
      quiet,
      quiet,
    );
  const viaEncoder = await wan('n1', enc, join(dir, 'videos'));
  // The same videos paired with the encoder's latents normalised by hand.
  const { tensors } = readSafetensors(join(dir, 'paired', 'v.safetensors'));
  const lat = tensors.get('final_latents')!;
  const [B, C] = lat.shape as [number, number];
  const per = (lat.data as Float32Array).length / (B * C);
  const z = Float32Array.from(lat.data as Float32Array, (v, i) => {
    const c = Math.floor(i / per) % C;
    return (v - mean[c]!) / std[c]!;
  });
  mkdirSync(join(dir, 'paired-norm'));
  writeSafetensors(join(dir, 'paired-norm', 'v.safetensors'), {
    rgb: tensors.get('rgb')!,
    final_latents: f32(lat.shape, z),
  });
  const byHand = await wan('n2', 'shards', join(dir, 'paired-norm'));
  assert.deepEqual(byHand.candidates, viaEncoder.candidates);
  assert.deepEqual(readFileSync(byHand.lgm), readFileSync(viaEncoder.lgm));
  // And un-normalised latents make another LGM: the conventions are not ignored.
  const raw = await wan('n3', 'shards', join(dir, 'paired'));
  assert.notDeepEqual(readFileSync(raw.lgm), readFileSync(viaEncoder.lgm));
});

test('a stitch interrupted after a checkpoint resumes to the same weights as an uninterrupted run', async () => {
  const full = join(dir, 'full');
  const cut = join(dir, 'cut');
  const cfg = config();
  const base = {
    geometryModel: phi,
    encoder: enc,
    videos: join(dir, 'videos'),
    at: 'blocks.0.output',
    config: cfg,
  };
  await runStitch({ ...base, out: full }, quiet, quiet);
  const ac = new AbortController();
  await assert.rejects(
    runStitch(
      { ...base, out: cut, signal: ac.signal },
      (m) => m.includes('checkpoint phase 2 step 10') && ac.abort(),
      quiet,
    ),
    /interrupted in phase 2 at step 10; continue with --resume/,
  );
  const r = await runStitch({ ...base, out: cut, resume: true }, quiet, quiet);
  assert.equal(r.phase2.steps, 20);
  assert.deepEqual(readFileSync(join(cut, 'lgm.onnx')), readFileSync(join(full, 'lgm.onnx')));
  assert.equal(readFileSync(join(cut, 'curves.csv'), 'utf8'), readFileSync(join(full, 'curves.csv'), 'utf8'));
});

test('Wan-style temporal compression: 5 frames → 2 latent frames, Φ on frames 0 and 4', async () => {
  const enc4 = join(dir, 'enc4.onnx');
  tinyEncoder(enc4, { frames: 5, t: 4 });
  mkdirSync(join(dir, 'videos5'));
  videoShard(join(dir, 'videos5', 'v.safetensors'), 12, 5);
  const cfg = resolveConfig(
    [
      {
        runtime: { threads: 1 },
        vae: { temporal_compression: 4 },
        stitch: { phase1: { steps: 10 }, phase2: { steps: 10 } },
      },
    ],
    'test',
  );
  const r = await runStitch(
    {
      geometryModel: phi,
      encoder: enc4,
      videos: join(dir, 'videos5'),
      at: 'auto',
      out: join(dir, 'run4'),
      config: cfg,
    },
    quiet,
    quiet,
  );
  const s = await ModelSession.open(r.lgm, { threads: 1 });
  const o = await s.run({ latents: f32([1, 4, 2, 4, 4], rand(128, 2)) });
  assert.deepEqual(o.depth!.shape, [1, 2, 2, 2]);
  await s.release();
  // Without the compression in the config the latent frames do not match the video: exit 2 naming the encoder.
  await assert.rejects(
    runStitch(
      {
        geometryModel: phi,
        encoder: enc4,
        videos: join(dir, 'videos5'),
        at: 'auto',
        out: join(dir, 'run4b'),
        config: config(),
      },
      quiet,
      quiet,
    ),
    /enc4\.onnx: encoder gives 2 latent frames for 5 frames; vae\.temporal_compression 1 needs F = 1 \+ t·\(F' − 1\)/,
  );
});

test('bad input exits 2 with one line naming the flag or file', async () => {
  const videos = join(dir, 'videos');
  const common = ['stitch', '--geometry-model', phi, '--encoder', enc, '--threads', '1'];
  const one = async (args: string[], re: RegExp) => {
    const r = await runCli([...args, '--out', join(dir, `bad-${Math.random().toString(36).slice(2)}`)]);
    assert.equal(r.code, 2, r.stderr);
    // progress lines may come first; the error is one line, the last, and no stack trace
    const lines = r.stderr.trim().split('\n');
    assert.ok(
      lines.slice(0, -1).every((l) => l.startsWith('stitch: ')),
      r.stderr,
    );
    assert.match(lines.at(-1)!, re);
  };
  await one(
    [...common, '--videos', videos, '--at', 'blocks.7.output'],
    /--at: 'blocks\.7\.output' is not a tensor of Φ .*candidates: tokenizer\.output, blocks\.0\.output, blocks\.1\.output/,
  );
  await one(
    ['stitch', '--geometry-model', join(dir, 'none.onnx'), '--encoder', enc, '--videos', videos],
    /--geometry-model: .*none\.onnx: model file not found/,
  );
  const enc8 = join(dir, 'enc8.onnx');
  tinyEncoder(enc8, { frames: 2, patch: 2 });
  await one(
    ['stitch', '--geometry-model', phi, '--encoder', enc8, '--videos', videos, '--at', 'blocks.0.output'],
    /--encoder: its latents do not fit the connector at blocks\.0\.output: has 8 tokens but latents \[4,2,8,8\] give a connector grid 2×4×4 = 32/,
  );
  mkdirSync(join(dir, 'small'));
  videoShard(join(dir, 'small', 'v.safetensors'), 4, 2, 8);
  await one(
    [...common, '--videos', join(dir, 'small')],
    /small\/v\.safetensors#0: frames are 8×8; the encoder takes 16×16/,
  );
  mkdirSync(join(dir, 'long'));
  videoShard(join(dir, 'long', 'v.safetensors'), 4, 3);
  await one(
    [...common, '--videos', join(dir, 'long')],
    /long\/v\.safetensors#0: has 3 frames; the encoder takes 2/,
  );
  mkdirSync(join(dir, 'mp4'));
  writeFileSync(join(dir, 'mp4', 'broken.mp4'), Buffer.from('ftypisom this is not a video'));
  await one(
    [...common, '--videos', join(dir, 'mp4')],
    /mp4\/broken\.mp4: cannot decode the video \(ffmpeg: /,
  );
  const renamed = join(dir, 'renamed.yaml');
  writeFileSync(renamed, 'geometry_outputs:\n  points: pts3d\n');
  await one(
    [...common, '--videos', videos, '--config', renamed],
    /--geometry-model: has no output 'pts3d' \(geometry_outputs.points\); its outputs: depth, world_points/,
  );
  const cfgFile = join(dir, 'wan.yaml');
  writeFileSync(cfgFile, 'vae:\n  latents_mean: [0, 0, 0]\n');
  await one(
    [...common, '--videos', videos, '--config', cfgFile],
    /vae\.latents_mean: has 3 values; the latents have 4 channels/,
  );
});

test('on the command line: stdout lists the run folder, --json the summary; a SIGKILLed run resumes to the same LGM', async () => {
  const cfgFile = join(dir, 'kill.yaml');
  writeFileSync(
    cfgFile,
    'stitch:\n  checkpoint_every: 25\n  phase1: { steps: 30 }\n  phase2: { steps: 300 }\n',
  );
  const args = (out: string) => [
    'stitch',
    '--geometry-model',
    phi,
    '--encoder',
    enc,
    '--videos',
    join(dir, 'videos'),
    '--at',
    'blocks.0.output',
    '--config',
    cfgFile,
    '--threads',
    '1',
    '--out',
    out,
  ];
  const full = join(dir, 'cli-full');
  const r = await runCli(args(full));
  assert.equal(r.code, 0, r.stderr);
  const files = [
    'lgm.onnx',
    'lgm-config.yaml',
    'curves.csv',
    'curves.svg',
    'stitch.json',
    'checkpoint.safetensors',
  ];
  assert.deepEqual(
    r.stdout.trim().split('\n'),
    files.map((f) => join(full, f)),
  );
  // Killed (SIGKILL: no chance to clean up) once phase 2 has written a checkpoint.
  const cut = join(dir, 'cli-cut');
  const killed = await new Promise<string | null>((done) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'run.js'), ...args(cut)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      if (err.includes('checkpoint phase 2 step 50 ')) child.kill('SIGKILL');
    });
    child.on('close', (_code, signal) => done(signal));
  });
  assert.equal(killed, 'SIGKILL');
  const again = await runCli(args(cut));
  assert.equal(again.code, 2);
  assert.match(again.stderr, /--out: .* already holds a stitch checkpoint: continue it with --resume/);
  const resumed = await runCli([...args(cut), '--resume', '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout).phase2.steps, 300);
  assert.deepEqual(readFileSync(join(cut, 'lgm.onnx')), readFileSync(join(full, 'lgm.onnx')));
  // A checkpoint made with other settings is refused.
  writeFileSync(
    cfgFile,
    'stitch:\n  checkpoint_every: 25\n  phase1: { steps: 30 }\n  phase2: { steps: 301 }\n',
  );
  const other = await runCli([...args(cut), '--resume']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /--resume: .*checkpoint\.safetensors was made with other settings/);
});

test('phase 2 trains weights, not the graph constants of the suffix', async () => {
  const { isWeight } = await import('../../src/stitch/lgm.js');
  const { makeTensor } = await import('../../src/onnx/model.js');
  const t = (name: string, n = 4) => makeTensor(name, [n], new Float32Array(n));
  assert.equal(isWeight(t('blocks.0.fc1.weight')), true);
  assert.equal(isWeight(t('tokenizer.position_embed')), true);
  for (const c of ['const_17', 'onnx::Mul_52', 'val_3', '_val_12', '/blocks.0/Constant_output_0'])
    assert.equal(isWeight(t(c)), false, c);
  assert.equal(isWeight(t('blocks.0.scale', 1)), false);
});

test('a camera-steps loss term matches frame-to-frame differences: loss by hand, gradient by finite differences', async () => {
  const { frameSteps, lossGradientGraph, variance } = await import('../../src/stitch/phases.js');
  // y[b, f, k] = Σ_j x[b, f, j]·W[j, k]: 4 frames of 3 values, 2 samples.
  const B = 2;
  const F = 4;
  const K = 3;
  const g = new GraphBuilder('steps', 18);
  g.input('x', 'float32', [B, F, K]);
  g.input('W', 'float32', [K, K]);
  g.output(g.op('MatMul', ['x', 'W']), 'y', 'float32', [B, F, K]);
  const model = g.toModel();
  const x = Float32Array.from(rand(B * F * K, 1));
  const W = Float32Array.from(rand(K * K, 2));
  const targets = [Float32Array.from(rand(F * K, 3)), Float32Array.from(rand(F * K, 4))];
  const term = { output: 'y', shape: [F, K], weight: 2.5, targets, frameSteps: true };
  const { bytes } = lossGradientGraph(model, [{ name: 'W', shape: [K, K], value: W }], [term], B);
  const s = await ModelSession.open(bytes, { threads: 1 });
  const steps = targets.map((t) => frameSteps(t, [F, K]));
  const run = async (w: Float32Array) => {
    const out = await s.run({
      x: f32([B, F, K], x),
      W: f32([K, K], w),
      'target:y:steps': f32([B, F - 1, K], Float32Array.from([...steps[0]!, ...steps[1]!])),
      'grad:loss': f32([], [1]),
    });
    return { loss: (out.loss!.data as Float32Array)[0]!, grad: out['grad:W']!.data as Float32Array };
  };
  // By hand, in float64.
  const y = (w: ArrayLike<number>) =>
    Array.from({ length: B * F * K }, (_, i) => {
      const row = Math.floor(i / K);
      const k = i % K;
      let v = 0;
      for (let j = 0; j < K; j++) v += x[row * K + j]! * w[j * K + k]!;
      return v;
    });
  const lossByHand = (w: ArrayLike<number>) => {
    const v = y(w);
    let sse = 0;
    for (let b = 0; b < B; b++)
      for (let f = 0; f < F - 1; f++)
        for (let k = 0; k < K; k++) {
          const dy = v[(b * F + f + 1) * K + k]! - v[(b * F + f) * K + k]!;
          const dt = targets[b]![(f + 1) * K + k]! - targets[b]![f * K + k]!;
          sse += (dy - dt) ** 2;
        }
    return (2.5 * sse) / (B * (F - 1) * K) / variance(steps);
  };
  const { loss, grad } = await run(W);
  assert.ok(
    Math.abs(loss - lossByHand(W)) < 1e-5 * Math.max(1, lossByHand(W)),
    `${loss} vs ${lossByHand(W)}`,
  );
  const h = 1e-3;
  for (let i = 0; i < K * K; i++) {
    const wp = Float64Array.from(W);
    const wm = Float64Array.from(W);
    wp[i]! += h;
    wm[i]! -= h;
    const fd = (lossByHand(wp) - lossByHand(wm)) / (2 * h);
    assert.ok(Math.abs(grad[i]! - fd) < 1e-3 * Math.max(1, Math.abs(fd)), `W[${i}]: ${grad[i]} vs ${fd}`);
  }
  await s.release();
});
