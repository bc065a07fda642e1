/**
 * `decode-geometry --via rgb` and the LGM contract's optional outputs, on tiny models built here:
 * a Wan-conventions VAE decoder (latents·std + mean in, B3FHW frames in [−1, 1], 2× temporal
 * upsampling: 1 + 2·(F − 1) frames) and a tiny Φ (frames → depth, world points, confidence,
 * pose encoding, scene flow, per-frame intrinsics, a dynamic mask). The RGB path must equal
 * running the two models by hand (de-normalise, decode, map to [0, 1], BF3HW, frames 0, t, 2t,
 * …, Φ), and its shards score; per-frame intrinsics replace the fixed ones; contract faults are
 * exit 2 naming the key or file before any shard is written; and on the toy fixtures the RGB
 * path's shards carry a sample → score → grpo-step loop.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { poseEncodingToCameras } from '../../src/geometry/cameras.js';
import { resizeBilinear } from '../../src/media/resize.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { readShard, writeShard } from '../../src/shards/shard.js';
import { f32, type Tensor, tensor } from '../../src/shards/tensor.js';
import { runDecodeGeometry } from '../../src/stages/decode-geometry.js';
import { Net } from '../../src/toy/nn.js';
import { runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-rgbpath-');
const C = 4; // latent channels
const FL = 3; // latent frames
const T = 2; // temporal compression
const H = 4; // latent height = width
const UP = 2; // decoder's spatial upsampling: frames 8×8
const G = 4; // geometry grid h = w
const MEAN = [0.1, -0.2, 0.3, 0];
const STD = [1.5, 0.5, 2, 1];

/**
 * latents [B, C, F, 4, 4] → frames [B, 3, 1 + T(F − 1), 8, 8] = tanh(1×1×1 conv), nearest ×T in
 * time (the first T − 1 dropped: causal) and ×2 in space.
 */
function tinyDecoder(path: string, frames = FL): string {
  const g = new GraphBuilder('tiny_vae_decoder', 18);
  const net = new Net(g, { seed: 3 });
  const x = g.input('latents', 'float32', ['B', C, frames, H, H]);
  const w = net.param('conv.weight', [3, C, 1, 1, 1], { kind: 'normal', std: 0.7 });
  const b = net.param('conv.bias', [3], { kind: 'normal', std: 0.2 });
  const y = net.op('Tanh', [net.op('Conv', [x, w, b])]);
  const up = net.op('Resize', [y, '', net.c([1, 1, T, UP, UP], [5])], { mode: 'nearest' });
  g.output(net.slice(up, 2, T - 1, T * frames), 'frames');
  saveModel(g.toModel(), path);
  return path;
}

/**
 * A feature map [B·F, 12, 4, 4] → every geometry output of `F` frames (channels: 0 depth,
 * 1–3 points, 4 confidence, 5–7 flow, 8 dynamic mask; pooled → pose encoding and intrinsics).
 */
function heads(
  net: Net,
  feat: string,
  F: number,
  opts: { cameras: 'vggt' | 'w2c'; intrinsics: 'vec' | 'mat' },
) {
  const ch = (a: number, b: number) => net.slice(feat, 1, a, b);
  const grid = (x: string) => net.reshape(x, [-1, F, G, G]);
  const vec3 = (x: string) => net.reshape(net.transpose(x, [0, 2, 3, 1]), [-1, F, G, G, 3]);
  const g = net.g;
  g.output(net.op('Add', [net.op('Exp', [grid(ch(0, 1))]), net.c([1])]), 'depth');
  g.output(vec3(ch(1, 4)), 'world_points');
  g.output(net.op('Add', [net.op('Exp', [grid(ch(4, 5))]), net.c([1])]), 'confidence');
  g.output(vec3(ch(5, 8)), 'scene_flow');
  g.output(net.op('Sigmoid', [grid(ch(8, 9))]), 'dynamic');
  const pooled = net.reshape(net.op('GlobalAveragePool', [feat]), [-1, F, 12]);
  if (opts.cameras === 'vggt') {
    // t, a near-identity quaternion (xyzw), fov_h, fov_w ≈ 1 rad.
    const w = net.param('pose.weight', [12, 9], { kind: 'normal', std: 0.05 });
    const b = net.c([0, 0, 0, 0, 0, 0, 1, 1, 1], [9]);
    g.output(net.op('Add', [net.op('MatMul', [pooled, w]), b]), 'pose_enc');
  } else {
    const w = net.param('w2c.weight', [12, 12], { kind: 'normal', std: 0.05 });
    const b = net.c([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2], [12]);
    g.output(net.reshape(net.op('Add', [net.op('MatMul', [pooled, w]), b]), [-1, F, 3, 4]), 'w2c');
  }
  const wk = net.param('k.weight', [12, 4], { kind: 'normal', std: 0.1 });
  const k = net.op('Add', [net.op('MatMul', [pooled, wk]), net.c([5, 6, 2, 2], [4])]);
  if (opts.intrinsics === 'vec') g.output(k, 'intrinsics');
  else {
    // [fx, 0, cx; 0, fy, cy; 0, 0, 1] from [fx, fy, cx, cy] by a constant linear map + e₉.
    const m = new Array(4 * 9).fill(0);
    m[0 * 9 + 0] = 1;
    m[1 * 9 + 4] = 1;
    m[2 * 9 + 2] = 1;
    m[3 * 9 + 5] = 1;
    const e9 = net.c([0, 0, 0, 0, 0, 0, 0, 0, 1], [9]);
    const flat = net.op('Add', [net.op('MatMul', [k, net.c(m, [4, 9])]), e9]);
    g.output(net.reshape(flat, [-1, F, 3, 3]), 'intrinsics');
  }
}

/** Φ: frames [B, F, 3, 8·s, 8·s] → a 2×2 (×s) patch conv to 12 channels on a 4×4 grid → heads. */
function tinyPhi(path: string, opts: { frames?: number; size?: number } = {}): string {
  const F = opts.frames ?? FL;
  const S = opts.size ?? H * UP;
  const g = new GraphBuilder('tiny_phi', 18);
  const net = new Net(g, { seed: 5 });
  const x = g.input('frames', 'float32', ['B', F, 3, S, S]);
  const p = S / G;
  const w = net.param('tokenizer.weight', [12, 3, p, p], { kind: 'normal', std: 0.5 });
  const feat = net.op('Conv', [net.reshape(x, [-1, 3, S, S]), w], { strides: [p, p] });
  heads(net, feat, F, { cameras: 'vggt', intrinsics: 'vec' });
  saveModel(g.toModel(), path);
  return path;
}

/** LGM: latents [B, C, F, 4, 4] → per-frame 1×1 conv to 12 channels → heads, w2c cameras, K [B,F,3,3]. */
function tinyLgm(path: string): string {
  const g = new GraphBuilder('tiny_lgm', 18);
  const net = new Net(g, { seed: 7 });
  const x = g.input('latents', 'float32', ['B', C, FL, H, H]);
  const perFrame = net.reshape(net.transpose(x, [0, 2, 1, 3, 4]), [-1, C, H, H]);
  const w = net.param('connector.weight', [12, C, 1, 1], { kind: 'normal', std: 0.5 });
  heads(net, net.op('Conv', [perFrame, w]), FL, { cameras: 'w2c', intrinsics: 'mat' });
  saveModel(g.toModel(), path);
  return path;
}

const decoder = tinyDecoder(join(dir, 'vae_decoder.onnx'));
const phi = tinyPhi(join(dir, 'phi.onnx'));
const lgm = tinyLgm(join(dir, 'lgm.onnx'));

const baseConfig = {
  models: { lgm, vae_decoder: decoder, geometry: phi },
  vae: {
    latents_mean: MEAN,
    latents_std: STD,
    output_range: [-1, 1],
    layout: 'B3FHW',
    temporal_compression: T,
  },
  geometry_outputs: { intrinsics_output: 'intrinsics', dynamic_mask: 'dynamic' },
  lgm_outputs: {
    cameras: 'w2c',
    camera_convention: 'w2c',
    intrinsics_output: 'intrinsics',
    dynamic_mask: 'dynamic',
  },
  runtime: { threads: 1 },
};

function latents(B: number, seed: number): Float32Array {
  const n = B * C * FL * H * H;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(0.37 * i + seed) * 1.2;
  return a;
}

/** A trajectory shard of B samples (two groups) whose final latents are `final`. */
function trajectory(path: string, B: number, final: Float32Array, config: unknown = baseConfig): string {
  const steps = 1;
  const lat = new Float32Array((B * (steps + 1) * final.length) / B);
  const per = final.length / B;
  for (let b = 0; b < B; b++) lat.set(final.subarray(b * per, (b + 1) * per), (b * 2 + 1) * per);
  const i64 = (v: number[]) => tensor('I64', [v.length], BigInt64Array.from(v.map(BigInt)));
  writeShard(
    path,
    'trajectory',
    {
      group_index: i64(Array.from({ length: B }, (_, b) => (b < B / 2 ? 0 : 1))),
      prompt_index: i64(Array.from({ length: B }, (_, b) => (b < B / 2 ? 0 : 1))),
      latents: f32([B, steps + 1, C, FL, H, H], lat),
      step_index: i64([0]),
      sigmas: f32([2], [1, 0]),
      log_probs: f32([B, steps]),
      final_latents: f32([B, C, FL, H, H], final),
      context: f32([B, 2, 4]),
      seed: i64(Array.from({ length: B }, (_, b) => b)),
    },
    { config: resolveConfig([config as Record<string, unknown>]) },
  );
  return path;
}

async function decode(
  shard: string,
  via: 'latent' | 'rgb',
  out: string,
  layers: Record<string, unknown>[] = [],
) {
  return runDecodeGeometry(
    (async function* () {
      yield shard;
    })(),
    { out, via },
    (recorded) => resolveConfig([recorded ?? {}, ...layers]),
    { emit: () => {}, note: () => {} },
  );
}

/** Φ on the decoded frames, computed by hand from the two models' raw outputs. */
/** Decode and run Φ by hand; with `size`, the frames resized (bilinear) to size × size first. */
async function byHand(
  final: Float32Array,
  B: number,
  opts: { phiPath?: string; size?: number } = {},
): Promise<Record<string, Tensor>> {
  const vae = await ModelSession.open(decoder, { threads: 1 });
  const model = await ModelSession.open(opts.phiPath ?? phi, { threads: 1 });
  try {
    const x = new Float32Array(final.length);
    const per = FL * H * H;
    for (let i = 0; i < x.length; i++) {
      const c = Math.floor(i / per) % C;
      x[i] = final[i]! * STD[c]! + MEAN[c]!;
    }
    const raw = (await vae.run({ latents: f32([B, C, FL, H, H], x) }, ['frames'])).frames!;
    const Fv = 1 + T * (FL - 1);
    assert.deepEqual(raw.shape, [B, 3, Fv, H * UP, H * UP]);
    const S = H * UP;
    const frames = new Float32Array(B * FL * 3 * S * S);
    for (let b = 0; b < B; b++)
      for (let k = 0; k < FL; k++)
        for (let c = 0; c < 3; c++)
          for (let i = 0; i < S * S; i++) {
            const v = (raw.data as Float32Array)[((b * 3 + c) * Fv + k * T) * S * S + i]!;
            frames[((b * FL + k) * 3 + c) * S * S + i] = (v + 1) / 2;
          }
    const Z = opts.size ?? S;
    const fed = Z === S ? frames : resizeBilinear(frames, [B, FL, 3, S, S], Z, Z);
    return await model.run({ frames: f32([B, FL, 3, Z, Z], fed) }, [
      'depth',
      'world_points',
      'confidence',
      'scene_flow',
      'pose_enc',
      'intrinsics',
      'dynamic',
    ]);
  } finally {
    await vae.release();
    await model.release();
  }
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-5) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('--via rgb equals decoding and running Φ by hand, in micro-batches, with per-frame intrinsics', async () => {
  const B = 10; // more than one micro-batch of 8
  const final = latents(B, 1);
  const traj = trajectory(join(dir, 'traj', 'shard-0000.safetensors'), B, final);
  const r = await decode(traj, 'rgb', join(dir, 'geo-rgb'));
  assert.equal(r.samples, B);
  const geo = readShard(r.shards[0]!, 'geometry');
  assert.equal(geo.metadata['vggrpo.geometry_path'], 'rgb');
  const want = await byHand(final, B);
  const t = (k: string) => geo.tensors.get(k)!.data as Float32Array;
  close(t('depth'), want.depth!.data as Float32Array, 'depth');
  close(t('points'), want.world_points!.data as Float32Array, 'points');
  close(t('confidence'), want.confidence!.data as Float32Array, 'confidence');
  close(t('scene_flow'), want.scene_flow!.data as Float32Array, 'scene_flow');
  close(t('dynamic_mask'), want.dynamic!.data as Float32Array, 'dynamic_mask');
  assert.deepEqual(geo.tensors.get('depth')!.shape, [B, FL, G, G], 'one geometry entry per latent frame');
  // Extrinsics from the pose encoding; intrinsics from the model's own [fx, fy, cx, cy], not the fov.
  const pose = want.pose_enc!.data as Float32Array;
  const k = want.intrinsics!.data as Float32Array;
  for (let b = 0; b < B; b++) {
    const cams = poseEncodingToCameras(pose.subarray(b * FL * 9, (b + 1) * FL * 9), G, G);
    close(t('extrinsics').subarray(b * FL * 12, (b + 1) * FL * 12), cams.extrinsics, `extrinsics ${b}`);
    for (let f = 0; f < FL; f++) {
      const K = t('intrinsics').subarray((b * FL + f) * 9, (b * FL + f + 1) * 9);
      const p = k.subarray((b * FL + f) * 4, (b * FL + f + 1) * 4);
      close([K[0]!, K[4]!, K[2]!, K[5]!, K[8]!, K[1]!, K[3]!], [p[0]!, p[1]!, p[2]!, p[3]!, 1, 0, 0], 'K');
      assert.ok(Math.abs(K[0]! - cams.intrinsics[9 * f]!) > 1e-3, 'not the pose encoding’s fov');
    }
  }
  // The same shard through the default latent path: the LGM's w2c cameras and [B,F,3,3] intrinsics.
  const l = await decode(traj, 'latent', join(dir, 'geo-latent'));
  const lg = readShard(l.shards[0]!, 'geometry');
  assert.equal(lg.metadata['vggrpo.geometry_path'], 'latent');
  const s = await ModelSession.open(lgm, { threads: 1 });
  const direct = await s.run({ latents: f32([B, C, FL, H, H], final) }, ['w2c', 'intrinsics', 'dynamic']);
  await s.release();
  close(lg.tensors.get('extrinsics')!.data as Float32Array, direct.w2c!.data as Float32Array, 'w2c');
  close(lg.tensors.get('intrinsics')!.data as Float32Array, direct.intrinsics!.data as Float32Array, 'K 3×3');
  close(lg.tensors.get('dynamic_mask')!.data as Float32Array, direct.dynamic!.data as Float32Array, 'mask');
  // Same lineage and metadata either way, so score reads both.
  assert.deepEqual(
    geo.recordedInputs.map((i) => i.sha256),
    lg.recordedInputs.map((i) => i.sha256),
  );
  for (const shard of [r.shards[0]!, l.shards[0]!]) {
    const sc = await runCli([
      'score',
      shard,
      '--out',
      join(dir, 'rewards', shard.includes('rgb') ? 'rgb' : 'lat'),
    ]);
    assert.equal(sc.code, 0, sc.stderr);
    const rw = readShard(sc.stdout.trim(), 'rewards');
    const reward = rw.tensors.get('reward')!.data as Float32Array;
    assert.ok(reward.every(Number.isFinite), `finite rewards from ${shard}`);
  }
});

test('geometry_outputs.frames_size: decoded frames resized to Φ’s input, equal to resizing by hand', async () => {
  const B = 3;
  const final = latents(B, 4);
  const phi16 = tinyPhi(join(dir, 'phi16-fit.onnx'), { size: 16 });
  const traj = trajectory(join(dir, 'traj-fit', 'shard-0000.safetensors'), B, final);
  const r = await decode(traj, 'rgb', join(dir, 'geo-fit'), [
    { models: { geometry: phi16 }, geometry_outputs: { frames_size: [16, 16] } },
  ]);
  const geo = readShard(r.shards[0]!, 'geometry');
  const want = await byHand(final, B, { phiPath: phi16, size: 16 });
  close(geo.tensors.get('depth')!.data as Float32Array, want.depth!.data as Float32Array, 'depth');
  close(geo.tensors.get('points')!.data as Float32Array, want.world_points!.data as Float32Array, 'points');
});

test('the rgb path contract: missing keys, frames that do not fit Φ, outputs that are not there: exit 2 before work', async () => {
  const final = latents(2, 2);
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'no-phi',
      { models: { geometry: null } },
      /^vggrpo decode-geometry: models\.geometry: is not set; --via rgb/,
    ],
    [
      'no-file',
      { models: { geometry: join(dir, 'absent.onnx') } },
      /absent\.onnx: model file not found \(models\.geometry\)/,
    ],
    [
      'size',
      { models: { geometry: tinyPhi(join(dir, 'phi16.onnx'), { size: 16 }) } },
      /vae_decoder\.onnx: tensor 'decoded frames at latent positions' is \[2, 3, 3, 8, 8\] but .*phi16\.onnx input 'frames' takes \[B, 3, 3, 16, 16\]/,
    ],
    [
      't',
      { vae: { temporal_compression: 1 } },
      /vae_decoder\.onnx: decoder gives 5 frames for 3 latent frames; vae\.temporal_compression 1/,
    ],
    [
      'output',
      { geometry_outputs: { dynamic_mask: 'motion_mask' } },
      /phi\.onnx: geometry model has no output 'motion_mask' \(geometry_outputs\.dynamic_mask\)/,
    ],
  ];
  for (const [name, layer, want] of cases) {
    const cfgFile = join(dir, `${name}.yaml`);
    writeFileSync(cfgFile, stringify(layer));
    const traj = trajectory(join(dir, `t-${name}`, 'trajectory', 's.safetensors'), 2, final);
    const out = join(dir, `t-${name}`, 'geometry');
    const r = await runCli(['decode-geometry', traj, '--via', 'rgb', '--config', cfgFile, '--out', out]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, want, name);
    assert.ok(!existsSync(out) || readdirSync(out).length === 0, `${name}: nothing written`);
  }
});

test('an intrinsics output of the wrong shape is exit 2 naming the model and the expected shapes', async () => {
  const bad = join(dir, 'bad-k.yaml');
  // The LGM's pose-encoding-free w2c output read as intrinsics: [B, F, 3, 4] fits neither form.
  writeFileSync(bad, stringify({ lgm_outputs: { intrinsics_output: 'w2c' } }));
  const traj = trajectory(join(dir, 'badk', 'trajectory', 's.safetensors'), 2, latents(2, 3));
  const r = await runCli(['decode-geometry', traj, '--config', bad, '--out', join(dir, 'badk', 'geometry')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /lgm\.onnx: intrinsics output is \[2, 3, 3, 4\], expected \[2, 3, 3, 3\] or \[2, 3, 4\]/,
  );
});

test('sample → decode-geometry --via rgb --geometry-model → score → grpo-step on the toy fixtures', async () => {
  // A Φ for the fixture decoder's frames [B, 8, 3, 32, 32].
  const toyPhi = tinyPhi(join(dir, 'toy-phi.onnx'), { frames: 8, size: 32 });
  const prompts = join(dir, 'p.txt');
  writeFileSync(prompts, 'orbit around the red box\n');
  const run = join(dir, 'toy-run');
  const s = await runCli([
    'sample',
    '--prompts',
    prompts,
    '--group-size',
    '2',
    '--steps',
    '3',
    '--threads',
    '1',
    '--out',
    join(run, 'trajectory'),
  ]);
  assert.equal(s.code, 0, s.stderr);
  const g = await runCli(['decode-geometry', s.stdout.trim(), '--via', 'rgb', '--geometry-model', toyPhi]);
  assert.equal(g.code, 0, g.stderr);
  const geo = readShard(g.stdout.trim(), 'geometry');
  assert.equal(geo.metadata['vggrpo.geometry_path'], 'rgb');
  assert.equal((geo.config.models as Record<string, unknown>).geometry, toyPhi, 'recorded');
  const r = await runCli(['score', g.stdout.trim()]);
  assert.equal(r.code, 0, r.stderr);
  const p = await runCli(['grpo-step', r.stdout.trim(), '--out', join(run, 'policy'), '--json']);
  assert.equal(p.code, 0, p.stderr);
  const m = JSON.parse(p.stdout).metrics;
  assert.equal(m.ratio_min, 1);
  assert.ok(m.grad_norm > 0, 'the RGB-path rewards give a gradient');
});
