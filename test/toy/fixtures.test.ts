/**
 * The committed fixture models: `npm run fixtures` rebuilds them byte-identically, and each meets
 * its contract (names, dtypes, shapes as onnxruntime reports them, and outputs of those shapes).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildFixtures, FIXTURE_FILES, FIXTURES_DIR } from '../../onnx/build-fixtures.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { encodeScene } from '../../src/toy/encoder.js';
import { LATENT_SIZE, TOY } from '../../src/toy/latent.js';
import { GEOMETRY, LATENT, VIDEO } from '../../src/toy/spaces.js';
import { tokenizeBatch } from '../../src/toy/tokenizer.js';
import { makeScene, makeTrajectory } from '../../src/world/index.js';
import { tempDir } from '../helpers.js';

const {
  channels: C,
  frames: F,
  height: H,
  width: W,
  geoHeight: h,
  geoWidth: w,
  contextLength: L,
  contextDim: D,
} = TOY;
type Io = [name: string, dtype: string, shape: (number | string)[]];
/** A denoiser's contract for latents [C, F, H, W]. */
const denoiserContract = (latent: number[]) => ({
  inputs: [
    ['latents', 'F32', ['B', ...latent]],
    ['timestep', 'F32', ['B']],
    ['context', 'F32', ['B', L, D]],
  ] as Io[],
  outputs: [['velocity', 'F32', ['B', ...latent]]] as Io[],
});
/** A geometry model's outputs for F frames at h × w (the judge has no scene flow). */
const geometryOutputs = (F: number, h: number, w: number, flow = true): Io[] => [
  ['depth', 'F32', ['B', F, h, w]],
  ['world_points', 'F32', ['B', F, h, w, 3]],
  ['confidence', 'F32', ['B', F, h, w]],
  ['pose_enc', 'F32', ['B', F, 9]],
  ...(flow ? ([['scene_flow', 'F32', ['B', F, h, w, 3]]] as Io[]) : []),
];
const CONTRACTS: Record<keyof typeof FIXTURE_FILES, { inputs: Io[]; outputs: Io[] }> = {
  denoiser: denoiserContract([C, F, H, W]),
  denoiser_learned: denoiserContract([LATENT.channels, LATENT.frames, LATENT.height, LATENT.width]),
  geometry: {
    inputs: [['frames', 'F32', ['B', VIDEO.frames, 3, VIDEO.height, VIDEO.width]]],
    outputs: geometryOutputs(VIDEO.frames, GEOMETRY.height, GEOMETRY.width),
  },
  lgm: {
    inputs: [['latents', 'F32', ['B', C, F, H, W]]],
    outputs: geometryOutputs(F, h, w),
  },
  text_encoder: { inputs: [['input_ids', 'I64', ['B', L]]], outputs: [['context', 'F32', ['B', L, D]]] },
  vae_decoder: {
    inputs: [['latents', 'F32', ['B', C, F, H, W]]],
    outputs: [['frames', 'F32', ['B', F, 3, TOY.frameHeight, TOY.frameWidth]]],
  },
  vae_encoder: {
    inputs: [['frames', 'F32', ['B', VIDEO.frames, 3, VIDEO.height, VIDEO.width]]],
    outputs: [['latents', 'F32', ['B', LATENT.channels, LATENT.frames, LATENT.height, LATENT.width]]],
  },
  vae_decoder_learned: {
    inputs: [['latents', 'F32', ['B', LATENT.channels, LATENT.frames, LATENT.height, LATENT.width]]],
    outputs: [['frames', 'F32', ['B', VIDEO.frames, 3, VIDEO.height, VIDEO.width]]],
  },
  judge: {
    inputs: [['frames', 'F32', ['B', VIDEO.frames, 3, VIDEO.height, VIDEO.width]]],
    outputs: geometryOutputs(VIDEO.frames, GEOMETRY.height, GEOMETRY.width, false),
  },
  lgm_stitched: {
    inputs: [['latents', 'F32', ['B', LATENT.channels, LATENT.frames, LATENT.height, LATENT.width]]],
    outputs: geometryOutputs(LATENT.frames, GEOMETRY.height, GEOMETRY.width),
  },
};

function randomFeed(io: Io, batch: number, seed: number): Tensor {
  const shape = io[2].map((d) => (d === 'B' ? batch : (d as number)));
  if (io[1] === 'I64')
    return {
      dtype: 'I64',
      shape,
      data: BigInt64Array.from(tokenizeBatch(['a prompt'], L).data as BigInt64Array),
    };
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(
    shape,
    Float32Array.from(
      { length: n },
      (_, i) => Math.sin(i * 12.9898 + seed) * (io[0] === 'timestep' ? 500 : 1),
    ),
  );
}

test('npm run fixtures rebuilds every committed model byte-identically', () => {
  const dir = tempDir('vggrpo-fixtures-');
  const written = buildFixtures(dir);
  for (const [role, file] of Object.entries(FIXTURE_FILES)) {
    const rebuilt = readFileSync(written[role]!);
    const committed = readFileSync(join(FIXTURES_DIR, file));
    assert.ok(rebuilt.equals(committed), `${file} differs from its rebuild`);
  }
});

for (const [role, contract] of Object.entries(CONTRACTS)) {
  test(`${role} fixture meets its contract`, async () => {
    const s = await ModelSession.open(join(FIXTURES_DIR, FIXTURE_FILES[role as keyof typeof FIXTURE_FILES]), {
      threads: 1,
    });
    try {
      const asIo = (i: { name: string; dtype: string; shape: (number | string | null)[] }) => [
        i.name,
        i.dtype,
        i.shape,
      ];
      assert.deepEqual(s.inputs.map(asIo), contract.inputs);
      assert.deepEqual(s.outputs.map(asIo), contract.outputs);
      // Batch 1 (I64 feeds use one prompt) and the outputs' actual shapes and values.
      const feeds = Object.fromEntries(contract.inputs.map((io, k) => [io[0], randomFeed(io, 1, k)]));
      const res = await s.run(feeds);
      for (const [name, dtype, shape] of contract.outputs) {
        assert.equal(res[name]!.dtype, dtype);
        assert.deepEqual(
          res[name]!.shape,
          shape.map((d) => (d === 'B' ? 1 : d)),
        );
        assert.ok((res[name]!.data as Float32Array).every(Number.isFinite), `${name} not finite`);
      }
    } finally {
      await s.release();
    }
  });
}

test('vae_decoder reproduces the colour render, upsampled ×2, in [0, 1]', async () => {
  const enc = encodeScene(makeScene(4242), makeTrajectory('arc'));
  const s = await ModelSession.open(join(FIXTURES_DIR, FIXTURE_FILES.vae_decoder), { threads: 1 });
  const frames = (await s.run({ latents: f32([1, C, F, H, W], enc.latents) })).frames!.data as Float32Array;
  await s.release();
  const [Hr, Wr] = [TOY.frameHeight, TOY.frameWidth];
  let worst = 0;
  for (let f = 0; f < F; f++) {
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < Hr; i++) {
        for (let j = 0; j < Wr; j++) {
          const got = frames[((f * 3 + c) * Hr + i) * Wr + j]!;
          const want = enc.colour.rgb[3 * (f * H * W + (i >> 1) * W + (j >> 1)) + c]! / 255;
          worst = Math.max(worst, Math.abs(got - want));
        }
      }
    }
  }
  assert.ok(worst < 1e-5, `decoded colour error ${worst}`);
  // Out-of-range latents are clipped, not wrapped.
  const s2 = await ModelSession.open(join(FIXTURES_DIR, FIXTURE_FILES.vae_decoder), { threads: 1 });
  const big = (await s2.run({ latents: f32([1, C, F, H, W], new Float32Array(LATENT_SIZE).fill(9)) })).frames!
    .data as Float32Array;
  await s2.release();
  assert.ok(big.every((v) => v === 1));
});

test('text_encoder: a prompt gets the same context alone or in a batch; different prompts differ', async () => {
  const s = await ModelSession.open(join(FIXTURES_DIR, FIXTURE_FILES.text_encoder), { threads: 1 });
  const prompts = ['orbit around the red box', 'pan across the blue room'];
  const both = (await s.run({ input_ids: tokenizeBatch(prompts) })).context!.data as Float32Array;
  const one = (await s.run({ input_ids: tokenizeBatch([prompts[1]!]) })).context!.data as Float32Array;
  await s.release();
  const n = L * D;
  let same = 0;
  let diff = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    same = Math.max(same, Math.abs(both[n + i]! - one[i]!));
    diff += Math.abs(both[i]! - both[n + i]!);
    sq += both[i]! * both[i]!;
  }
  assert.ok(same < 1e-5);
  assert.ok(diff / n > 0.1, 'contexts of different prompts nearly equal');
  assert.ok(Math.abs(Math.sqrt(sq / n) - 1) < 0.2, 'context not unit scale');
});
