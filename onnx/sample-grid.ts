/**
 * Look at a learned-world denoiser's samples (e.g. after `onnx/pretrain.ts --space learned
 * --out W.safetensors`): six ODE videos of one prompt, decoded by the learned VAE decoder, as a
 * PNG grid (rows: videos, columns: frames).
 *
 *   node --import tsx onnx/sample-grid.ts [WEIGHTS.safetensors] OUT.png [PROMPT]
 * WEIGHTS defaults to the committed denoiser-learned-weights.safetensors.
 */
import { join } from 'node:path';
import { resolveConfig } from '../src/config/load.js';
import { writeRgbPng } from '../src/media/png.js';
import { VaeDecoder } from '../src/media/vae.js';
import { encodeModel } from '../src/onnx/model.js';
import { batchNoise, splitSeed } from '../src/rl/prng.js';
import { shiftedSigmas, timestepOf } from '../src/rl/schedule.js';
import { odeStep } from '../src/rl/sde.js';
import { ModelSession } from '../src/runtime/session.js';
import { f32 } from '../src/shards/tensor.js';
import { buildDenoiser } from '../src/toy/denoiser.js';
import { TOY } from '../src/toy/latent.js';
import { LATENT, LATENT_VALUES } from '../src/toy/spaces.js';
import { buildTextEncoder } from '../src/toy/text-encoder.js';
import { tokenizeBatch } from '../src/toy/tokenizer.js';
import { DENOISER_LEARNED_WEIGHTS, FIXTURES_DIR, readWeights } from './build-fixtures.js';

const args = process.argv.slice(2);
if (!args[0]?.endsWith('.safetensors')) args.unshift(DENOISER_LEARNED_WEIGHTS);
const [wfile, out, prompt = 'orbit around the red box in a small room'] = args;
if (!out) throw new Error('usage: onnx/sample-grid.ts [WEIGHTS.safetensors] OUT.png [PROMPT]');
const weights = readWeights(wfile!);
if (!weights) throw new Error(`${wfile}: no such weights file`);
const G = 6;
const { channels: C, frames: F, height: H, width: W } = LATENT;
const te = await ModelSession.open(encodeModel(buildTextEncoder()), { threads: 1 });
const ctx1 = (await te.run({ input_ids: tokenizeBatch([prompt]) })).context!.data as Float32Array;
const ctx = new Float32Array(G * ctx1.length);
for (let k = 0; k < G; k++) ctx.set(ctx1, k * ctx1.length);
const den = await ModelSession.open(encodeModel(buildDenoiser({ weights, space: 'learned' }).model), {
  threads: 1,
});
const sigmas = shiftedSigmas(10, 3);
const seeds = Array.from({ length: G }, (_, k) => splitSeed(1000, k));
let x = batchNoise(seeds, null, LATENT_VALUES);
for (let i = 0; i < 10; i++) {
  const v = (
    await den.run({
      latents: f32([G, C, F, H, W], x),
      timestep: f32([G], new Array(G).fill(timestepOf(sigmas[i]!))),
      context: f32([G, TOY.contextLength, TOY.contextDim], ctx),
    })
  ).velocity!.data as Float32Array;
  x = odeStep(x, v, sigmas, i);
}
const config = resolveConfig([
  { models: { vae_decoder: join(FIXTURES_DIR, 'vae_decoder_learned.onnx') }, runtime: { threads: 1 } },
]);
const dec = (await VaeDecoder.open(config))!;
const S = 64;
const grid = new Uint8Array(G * S * F * S * 3);
for (let k = 0; k < G; k++) {
  const v = await dec.decode(x.subarray(k * LATENT_VALUES, (k + 1) * LATENT_VALUES), [C, F, H, W]);
  for (let f = 0; f < F; f++)
    for (let y = 0; y < S; y++)
      for (let xx = 0; xx < S; xx++)
        for (let c = 0; c < 3; c++)
          grid[((k * S + y) * F * S + f * S + xx) * 3 + c] = v.rgb[((f * S + y) * S + xx) * 3 + c]!;
}
await writeRgbPng(out!, grid, F * S, G * S, { scale: 2 });
console.log(out);
