/**
 * The pretraining graph (denoiser + appended MSE loss, differentiated by the project's autodiff),
 * for both latent spaces (the analytic toy's and the learned world's 8-channel VAE latents): its
 * parameter gradients agree with central finite differences of its own loss.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trainingGraph } from '../../onnx/pretrain.js';
import { encodeModel } from '../../src/onnx/model.js';
import { ModelSession } from '../../src/runtime/session.js';
import { f32, type Tensor } from '../../src/shards/tensor.js';
import { buildDenoiser } from '../../src/toy/denoiser.js';
import { LATENT_SIZE, TOY } from '../../src/toy/latent.js';
import { LATENT, LATENT_VALUES } from '../../src/toy/spaces.js';
import { directionalDerivatives, waveDirections } from './directional-check.js';

for (const space of ['analytic', 'learned'] as const) {
  test(`pretraining gradients (${space} latents) match a directional finite difference of the flow-matching loss`, async () => {
    const { contextLength: L, contextDim: D } = TOY;
    const dims = space === 'learned' ? LATENT : TOY;
    const { channels: C, frames: F, height: H, width: W } = dims;
    const size = space === 'learned' ? LATENT_VALUES : LATENT_SIZE;
    assert.equal(C, space === 'learned' ? 8 : 14);
    const { bytes, params } = trainingGraph(1, 1, space);
    const s = await ModelSession.open(bytes, { threads: 1 });
    const wave = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(0.61 * i + k));
    const inputs: Record<string, Tensor> = {
      latents: f32([1, C, F, H, W], wave(size, 0)),
      timestep: f32([1], [400]),
      context: f32([1, L, D], wave(L * D, 1)),
    };
    // A target near the model's own velocity keeps the loss small, so float32 rounding of the loss
    // stays far below the change a small step makes.
    const fwd = await ModelSession.open(encodeModel(buildDenoiser({ space }).model), { threads: 1 });
    const v0 = (await fwd.run(inputs)).velocity!.data as Float32Array;
    await fwd.release();
    const w = wave(size, 2);
    const base: Record<string, Tensor> = {
      ...inputs,
      target: f32(
        [1, C, F, H, W],
        v0.map((v, i) => v + 0.01 * w[i]!),
      ),
      weight: f32([1, 1, 1, 1, 1], [0.3]),
      'grad:loss': f32([], [1]),
    };
    const chosen = [
      'blocks.0.self_attn.q.weight',
      'blocks.1.ffn.0.weight',
      'head.head.weight',
      'frame_embedding.weight',
    ];
    const { analytic, numeric } = await directionalDerivatives(
      s,
      params,
      base,
      waveDirections(params, chosen, 3),
    );
    await s.release();
    assert.ok(Math.abs(analytic) > 1e-6, `degenerate direction (${analytic})`);
    assert.ok(
      Math.abs(numeric - analytic) < 1e-2 * Math.abs(analytic),
      `numeric ${numeric} vs analytic ${analytic}`,
    );
  });
}
