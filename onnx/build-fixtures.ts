/**
 * `npm run fixtures`: rebuild every toy fixture model in onnx/fixtures/ from the builders in
 * src/toy/ and the committed denoiser weights (onnx/fixtures/denoiser-weights.safetensors; the
 * seeded random initialisation when that file is absent). Byte-identical on every run.
 *
 * @example
 *   node --import tsx onnx/build-fixtures.ts            # into onnx/fixtures/
 *   node --import tsx onnx/build-fixtures.ts /tmp/out   # elsewhere (the tests do this)
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModel } from '../src/onnx/model.js';
import type { ModelProto } from '../src/onnx/proto.js';
import { readSafetensors } from '../src/shards/safetensors.js';
import { toFloat32 } from '../src/shards/tensor.js';
import { PAPER_CONNECTOR } from '../src/stitch/connector.js';
import { buildStitchedLgm } from '../src/stitch/lgm.js';
import { buildDenoiser } from '../src/toy/denoiser.js';
import { buildGeometryModel } from '../src/toy/geometry-model.js';
import { buildJudge } from '../src/toy/judge.js';
import { buildLgm } from '../src/toy/lgm.js';
import { LATENT } from '../src/toy/spaces.js';
import { buildTextEncoder } from '../src/toy/text-encoder.js';
import { buildLearnedVaeDecoder, buildVaeEncoder } from '../src/toy/vae.js';
import { buildVaeDecoder } from '../src/toy/vae-decoder.js';

export const FIXTURES_DIR = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const DENOISER_WEIGHTS = join(FIXTURES_DIR, 'denoiser-weights.safetensors');
/** Weights of the learned world's denoiser (8-channel VAE latents; README, The learned toy world). */
export const DENOISER_LEARNED_WEIGHTS = join(FIXTURES_DIR, 'denoiser-learned-weights.safetensors');
/** The toy VAE's trained weights (onnx/train-vae.ts). */
export const VAE_WEIGHTS = join(FIXTURES_DIR, 'vae-weights.safetensors');
/** Trained weights of the toy RGB geometry model Φ (onnx/train-geometry.ts). */
export const GEOMETRY_WEIGHTS = join(FIXTURES_DIR, 'geometry-weights.safetensors');
/** Trained weights of the toy's independent judge (onnx/train-judge.ts). */
export const JUDGE_WEIGHTS = join(FIXTURES_DIR, 'judge-weights.safetensors');

/** The stitched LGM's trained connector and Φ-suffix weights (a `vggrpo stitch` run, README below). */
export const LGM_STITCHED_WEIGHTS = join(FIXTURES_DIR, 'lgm-stitched-weights.safetensors');

/**
 * How the toy LGM was stitched (`vggrpo stitch --at auto` chose tokenizer.output; the paper's
 * connector; the toy latent [C, F', H, W] and Φ's token width).
 */
export const TOY_STITCH = {
  at: 'tokenizer.output',
  spec: PAPER_CONNECTOR,
  latent: [LATENT.channels, LATENT.frames, LATENT.height, LATENT.width],
  width: 48,
  layout: 'tokens',
} as const;

/** The fixture files by model role. */
export const FIXTURE_FILES = {
  denoiser: 'denoiser.onnx',
  geometry: 'geometry_rgb.onnx',
  lgm: 'lgm.onnx',
  text_encoder: 'text_encoder.onnx',
  vae_decoder: 'vae_decoder.onnx',
  vae_encoder: 'vae_encoder.onnx',
  vae_decoder_learned: 'vae_decoder_learned.onnx',
  lgm_stitched: 'lgm_stitched.onnx',
  judge: 'judge.onnx',
  denoiser_learned: 'denoiser_learned.onnx',
} as const;

/**
 * A toy model's trained weights by parameter name (any of the weight files), or undefined when
 * the file does not exist (the model then gets its seeded initialisation).
 *
 * @example
 *   const w = readWeights(VAE_WEIGHTS); // Map<string, Float32Array> | undefined
 */
export function readWeights(path = DENOISER_WEIGHTS): Map<string, Float32Array> | undefined {
  if (!existsSync(path)) return undefined;
  const { tensors } = readSafetensors(path);
  return new Map([...tensors].map(([k, t]) => [k, Float32Array.from(toFloat32(t))]));
}

/**
 * Build all fixtures into `outDir`; returns the written paths by role.
 *
 * @example
 *   buildFixtures('/tmp/fixtures'); // { denoiser: '/tmp/fixtures/denoiser.onnx', … }
 */
export function buildFixtures(
  outDir: string = FIXTURES_DIR,
  weightsPath = DENOISER_WEIGHTS,
): Record<string, string> {
  mkdirSync(outDir, { recursive: true });
  const vae = readWeights(VAE_WEIGHTS);
  const phi = buildGeometryModel({ weights: readWeights(GEOMETRY_WEIGHTS) }).model;
  const models: Record<keyof typeof FIXTURE_FILES, ModelProto> = {
    denoiser: buildDenoiser({ weights: readWeights(weightsPath) }).model,
    geometry: phi,
    lgm: buildLgm(),
    text_encoder: buildTextEncoder(),
    vae_decoder: buildVaeDecoder(),
    vae_encoder: buildVaeEncoder({ weights: vae }).model,
    vae_decoder_learned: buildLearnedVaeDecoder({ weights: vae }).model,
    lgm_stitched: buildStitchedLgm({
      ...TOY_STITCH,
      latent: [...TOY_STITCH.latent],
      phi,
      weights: readWeights(LGM_STITCHED_WEIGHTS),
    }).model,
    judge: buildJudge({ weights: readWeights(JUDGE_WEIGHTS) }).model,
    denoiser_learned: buildDenoiser({ space: 'learned', weights: readWeights(DENOISER_LEARNED_WEIGHTS) })
      .model,
  };
  const written: Record<string, string> = {};
  for (const [role, model] of Object.entries(models)) {
    const path = join(outDir, FIXTURE_FILES[role as keyof typeof FIXTURE_FILES]);
    saveModel(model, path);
    written[role] = path;
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  const written = buildFixtures(process.argv[2] ?? FIXTURES_DIR);
  for (const p of Object.values(written)) process.stdout.write(`${p}\n`);
  process.stderr.write(`fixtures built in ${Date.now() - t0} ms\n`);
}
