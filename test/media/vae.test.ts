/**
 * The VAE decoder's conventions as config keys (issue 12 item 8): per-channel de-normalisation,
 * output range, frame layout and temporal compression, on small decoders built here (one per
 * layout), checked against frames computed by hand.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { FIXTURES_DIR } from '../../src/config/schema.js';
import { InputError } from '../../src/errors.js';
import { denormalise, normalise, VaeDecoder, VaeEncoder, videoFrames } from '../../src/media/vae.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { BIN, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-vae-');

test('denormalise: x·std + mean per channel; a list of the wrong length names its key', () => {
  const x = Float32Array.from([1, 2, 3, 4]); // [C = 2, 2]
  assert.deepEqual(Array.from(denormalise(x, 2, [10, 20], [2, 3])), [12, 14, 29, 32]);
  assert.deepEqual(Array.from(denormalise(x, 2, [10, 20], null)), [11, 12, 23, 24]);
  assert.deepEqual(Array.from(denormalise(x, 2, null, [2, 3])), [2, 4, 9, 12]);
  assert.equal(denormalise(x, 2, null, null), x);
  assert.throws(
    () => denormalise(x, 2, [1, 2, 3], null),
    (e: unknown) =>
      e instanceof InputError && e.where === 'vae.latents_mean' && /3 values; .* 2 channels/.test(e.fault),
  );
});

test('video frames: 1 + t·(F − 1) (Wan: 21 latent frames → 81)', () => {
  assert.equal(videoFrames(21, 4), 81);
  assert.equal(videoFrames(5, 4), 17);
  assert.equal(videoFrames(8, 1), 8);
});

// A decoder for latents [B, 3, 2, 1, 2]: video frame 0 is latent frame 0, frames 1–4 are latent
// frame 1 (Wan's 4× causal compression), channel c is latent channel c; then the axes of `layout`.
type Layout = 'B3FHW' | 'BF3HW' | 'BFHW3';
function buildDecoder(layout: Layout): string {
  const g = new GraphBuilder(`vae_${layout}`, 18);
  const x = g.input('latents', 'float32', ['B', 3, 2, 1, 2]);
  const v = g.op('Gather', [x, g.ints([0, 1, 1, 1, 1])], { axis: 2 }); // [B, 3, 5, 1, 2]
  const perm = { B3FHW: undefined, BF3HW: [0, 2, 1, 3, 4], BFHW3: [0, 2, 3, 4, 1] }[layout];
  g.output(perm ? g.op('Transpose', [v], { perm }) : g.op('Identity', [v]), 'video');
  const path = join(dir, `vae-${layout}.onnx`);
  saveModel(g.toModel('vggrpo test'), path);
  return path;
}

// Wan-style: latents de-normalised with mean/std, output in [−1, 1]. Per channel c and latent
// frame f the two pixels' decoder values v are chosen so that (v + 1)/2 is a multiple of 0.2
// (bytes 0, 51, 102, 153, 204, 255), plus two out of range (clipped).
const MEAN = [0.2, -0.2, 0];
const STD = [0.4, 2, 1];
const V = [
  [
    [-1, -0.6],
    [-0.2, 0.2],
  ], // c = 0: [f0: w0 w1], [f1: w0 w1]
  [
    [0.6, 1],
    [1.5, -3],
  ], // c = 1 (1.5 and −3 clip)
  [
    [0.2, -0.2],
    [-0.6, 0.6],
  ], // c = 2
];
const latents = Float32Array.from(V.flatMap((fs, c) => fs.flat().map((v) => (v - MEAN[c]!) / STD[c]!)));
// Hand-computed RGB [5 frames, 1, 2, 3]: frame 0 from latent frame 0, frames 1–4 from latent frame 1.
const F0 = [0, 204, 153, 51, 255, 102]; // pixel w0: (c0, c1, c2), pixel w1: (c0, c1, c2)
const F1 = [102, 255, 51, 153, 0, 204];
const WAN_RGB = [...F0, ...F1, ...F1, ...F1, ...F1];

async function decode(
  vae: Record<string, unknown>,
  model: string,
  x: Float32Array,
  shape: [number, number, number, number] = [3, 2, 1, 2],
): Promise<number[]> {
  const config = resolveConfig([{ models: { vae_decoder: model }, vae }]);
  const dec = await VaeDecoder.open(config);
  assert.ok(dec);
  try {
    const video = await dec.decode(x, shape, 'traj.safetensors');
    assert.deepEqual([video.frames, video.height, video.width], [5, 1, 2]);
    return Array.from(video.rgb);
  } finally {
    await dec.release();
  }
}

for (const layout of ['B3FHW', 'BF3HW', 'BFHW3'] as const) {
  test(`layout ${layout}: Wan's conventions (mean/std, [−1, 1], 4×) give the hand-computed frames`, async () => {
    const model = buildDecoder(layout);
    const wan = {
      latents_mean: MEAN,
      latents_std: STD,
      output_range: [-1, 1],
      layout,
      temporal_compression: 4,
    };
    assert.deepEqual(await decode(wan, model, latents), WAN_RGB);
    // The toy's range [0, 1] without de-normalisation: byte = round(255·clip(latent)).
    const raw = Float32Array.from([0.2, 0.4, 0.6, 0.8, 1, 1.7, -0.1, 0, 0.4, 0.2, 0.8, 0.6]);
    const toy = await decode({ layout, temporal_compression: 4 }, model, raw);
    const toyF0 = [51, 255, 102, 102, 255, 51];
    const toyF1 = [153, 0, 204, 204, 0, 153];
    assert.deepEqual(toy, [...toyF0, ...toyF1, ...toyF1, ...toyF1, ...toyF1]);
  });
}

test('a decoder that disagrees with vae.layout, vae.temporal_compression or vae.output: exit-2 errors naming it', async () => {
  const model = buildDecoder('B3FHW');
  const base = {
    latents_mean: MEAN,
    latents_std: STD,
    output_range: [-1, 1],
    layout: 'B3FHW',
    temporal_compression: 4,
  };
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ...base, layout: 'BFHW3' },
      /decoder output is \[1, 3, 5, 1, 2\]; vae\.layout BFHW3 expects \[B, F, H, W, 3\]/,
    ],
    [
      { ...base, temporal_compression: 1 },
      /decoder gives 5 frames for 2 latent frames; vae\.temporal_compression 1 .* = 2/,
    ],
    [{ ...base, output: 'frames' }, /no output 'frames' \(vae\.output; outputs: video\)/],
    [{ ...base, latents_std: [1, 1] }, /has 2 values; the latents have 3 channels/],
  ];
  for (const [vae, fault] of cases) {
    await assert.rejects(
      decode(vae, model, latents),
      (e: unknown) => e instanceof InputError && fault.test(e.message) && e.exitCode === 2,
      JSON.stringify(vae),
    );
  }
  // Latents the decoder's static dims do not take: named against the file they came from.
  await assert.rejects(
    decode(base, model, new Float32Array(18), [3, 3, 1, 2]),
    /traj\.safetensors: tensor 'final_latents' is \[1, 3, 3, 1, 2\] but .*vae-B3FHW\.onnx input 'latents' takes \[B, 3, 2, 1, 2\]/,
  );
});

test("the toy fixture with the defaults: exactly the toy's [B, F, 3, H, W] output in [0, 1], as bytes", async () => {
  const path = join(FIXTURES_DIR, 'vae_decoder.onnx');
  const s = await ModelSession.open(path, { threads: 1 });
  const [C, F, H, W] = [14, 8, 16, 16];
  const x = Float32Array.from({ length: C * F * H * W }, (_, i) => Math.sin(i * 0.37) * 1.5);
  const out = (await s.run({ latents: { dtype: 'F32', shape: [1, C, F, H, W], data: x } })).frames!;
  await s.release();
  const d = out.data as Float32Array;
  const [Hr, Wr] = [2 * H, 2 * W];
  const want = new Uint8Array(F * Hr * Wr * 3);
  for (let f = 0; f < F; f++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < Hr * Wr; i++)
        want[(f * Hr * Wr + i) * 3 + c] = Math.round(
          255 * Math.min(1, Math.max(0, d[(f * 3 + c) * Hr * Wr + i]!)),
        );
  const dec = (await VaeDecoder.open(resolveConfig([{}])))!;
  const video = await dec.decode(x, [C, F, H, W]);
  await dec.release();
  assert.deepEqual([video.frames, video.height, video.width], [F, Hr, Wr]);
  assert.deepEqual(video.rgb, want);
  assert.ok(
    want.some((v) => v > 0 && v < 255),
    'the check sees values inside the range',
  );
});

test('eval decodes through vae.*: the toy decoder against a wrong layout or frame count is exit 2 naming it', async () => {
  execFileSync('bash', [
    '-o',
    'pipefail',
    '-c',
    `node ${BIN} world --out ${dir}/w/world --scenes 1 --group-size 2 | node ${BIN} decode-geometry --out ${dir}/w/geometry > /dev/null`,
  ]);
  const cases: [string, RegExp][] = [
    [
      'temporal_compression: 2',
      /vae_decoder\.onnx: decoder gives 8 frames for 8 latent frames; vae\.temporal_compression 2 .* = 15/,
    ],
    [
      'layout: B3FHW',
      /vae_decoder\.onnx: decoder output is \[1, 8, 3, 32, 32\]; vae\.layout B3FHW expects \[B, 3, F, H, W\]/,
    ],
  ];
  for (const [line, fault] of cases) {
    const cfg = join(dir, 'eval.yaml');
    writeFileSync(cfg, `vae:\n  ${line}\n`);
    const r = await runCli([
      'eval',
      join(dir, 'w', 'geometry'),
      '--config',
      cfg,
      '--allow-root',
      dir,
      '--out',
      join(dir, 'report'),
    ]);
    assert.equal(r.code, 2, r.stderr);
    // Progress notes come first; the fault is one line.
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('vggrpo eval:'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, fault);
  }
});

test('normalise is the inverse of denormalise', () => {
  const x = Float32Array.from([12, 14, 29, 32]);
  assert.deepEqual(Array.from(normalise(x, 2, [10, 20], [2, 3])), [1, 2, 3, 4]);
  assert.equal(normalise(x, 2, null, null), x);
});

// An encoder in `layout` for frames [B, 5, 3, 1, 2]: latent frame 0 is video frame 0, latent
// frame 1 is video frame 4 (Wan's 4×), channel c is colour c — the test decoder's inverse.
function buildEncoder(layout: Layout): string {
  const g = new GraphBuilder(`enc_${layout}`, 18);
  const dims = { B3FHW: ['B', 3, 5, 1, 2], BF3HW: ['B', 5, 3, 1, 2], BFHW3: ['B', 5, 1, 2, 3] }[layout];
  const x = g.input('video', 'float32', dims);
  const toB3FHW = { B3FHW: undefined, BF3HW: [0, 2, 1, 3, 4], BFHW3: [0, 4, 1, 2, 3] }[layout];
  const v = toB3FHW ? g.op('Transpose', [x], { perm: toB3FHW }) : x;
  g.output(g.op('Gather', [v, g.ints([0, 4])], { axis: 2 }), 'z');
  const path = join(dir, `enc-${layout}.onnx`);
  saveModel(g.toModel('vggrpo test'), path);
  return path;
}

for (const layout of ['B3FHW', 'BF3HW', 'BFHW3'] as const) {
  test(`VAE encoder, layout ${layout}: Wan's conventions round-trip the decoder's hand-computed frames`, async () => {
    const wan = {
      latents_mean: MEAN,
      latents_std: STD,
      output_range: [-1, 1],
      layout,
      temporal_compression: 4,
    };
    const config = resolveConfig([{ models: { vae_encoder: buildEncoder(layout) }, vae: wan }]);
    const enc = await VaeEncoder.open(config);
    try {
      // The hand-computed RGB [5, 1, 2, 3] of two videos (the second reversed in time) → [B, F, 3, H, W] in [0, 1].
      const videos = [WAN_RGB, [...F1, ...F1, ...F1, ...F1, ...F0]];
      const frames = new Float32Array(2 * 5 * 3 * 2);
      videos.forEach((rgb, b) => {
        for (let f = 0; f < 5; f++)
          for (let c = 0; c < 3; c++)
            for (let i = 0; i < 2; i++)
              frames[((b * 5 + f) * 3 + c) * 2 + i] = rgb[(f * 2 + i) * 3 + c]! / 255;
      });
      const { latents: z, shape } = await enc.encode(frames, [2, 5, 1, 2]);
      assert.deepEqual(shape, [2, 3, 2, 1, 2]);
      // Video 0 gives back the latents (decoder values clipped to [−1, 1]); video 1 the same with its latent frames swapped.
      const clipped = V.map((fs) => fs.map((ws) => ws.map((v) => Math.min(1, Math.max(-1, v)))));
      const want = (swap: boolean) =>
        clipped.flatMap((fs, c) =>
          (swap ? [fs[1]!, fs[0]!] : fs).flat().map((v) => (v - MEAN[c]!) / STD[c]!),
        );
      const got = Array.from(z);
      for (const [k, w] of [...want(false), ...want(true)].entries())
        assert.ok(Math.abs(got[k]! - w) < 1e-5, `${k}: ${got[k]} vs ${w}`);
    } finally {
      await enc.release();
    }
  });
}

test('VAE encoder faults: not set, missing file, frame count against vae.temporal_compression', async () => {
  await assert.rejects(VaeEncoder.open(resolveConfig([])), /models\.vae_encoder.*is not set/);
  await assert.rejects(
    VaeEncoder.open(resolveConfig([{ models: { vae_encoder: join(dir, 'nope.onnx') } }])),
    /nope\.onnx.*not found/,
  );
  const config = resolveConfig([
    { models: { vae_encoder: buildEncoder('B3FHW') }, vae: { layout: 'B3FHW', temporal_compression: 2 } },
  ]);
  const enc = await VaeEncoder.open(config);
  try {
    await assert.rejects(enc.encode(new Float32Array(30), [1, 5, 1, 2]), /2 latent frames for 5 frames/);
  } finally {
    await enc.release();
  }
});
