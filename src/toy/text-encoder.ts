/**
 * The toy text encoder: byte tokens (`tokenizer.ts`) → context [B, L, D]. A token embedding plus
 * a sinusoidal position code, one tanh residual layer and a LayerNorm, with fixed seeded weights:
 * it is not trained, it only has to give different prompts different, unit-scale contexts that
 * the denoiser's cross-attention can learn to read.
 *
 * @example
 *   const model = buildTextEncoder(); // input_ids I64 [B, 32] → context F32 [B, 32, 32]
 */
import { GraphBuilder } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/proto.js';
import { TOY } from './latent.js';
import { Net } from './nn.js';
import { VOCAB_SIZE } from './tokenizer.js';

export const TEXT_ENCODER_SEED = 11;

/** Sinusoidal position code [L, D]. */
function positionCode(L: number, D: number): Float32Array {
  const out = new Float32Array(L * D);
  for (let p = 0; p < L; p++) {
    for (let k = 0; k < D / 2; k++) {
      const a = p / 100 ** ((2 * k) / D);
      out[p * D + 2 * k] = Math.sin(a);
      out[p * D + 2 * k + 1] = Math.cos(a);
    }
  }
  return out;
}

/**
 * `input_ids` I64 [B, L] → `context` F32 [B, L, D] (L = 32, D = 32).
 *
 * @example
 *   saveModel(buildTextEncoder(), 'onnx/fixtures/text_encoder.onnx');
 */
export function buildTextEncoder(): ModelProto {
  const { contextLength: L, contextDim: D } = TOY;
  const g = new GraphBuilder('toy_text_encoder', 18);
  const net = new Net(g, { seed: TEXT_ENCODER_SEED });
  const ids = g.input('input_ids', 'int64', ['B', L]);
  const table = net.param('embed_tokens.weight', [VOCAB_SIZE, D], { kind: 'normal', std: 1 });
  const pos = g.init('embed_positions.weight', positionCode(L, D), [L, D]);
  const x = net.op('Add', [net.op('Gather', [table, ids], { axis: 0 }), pos]);
  // Mix each token with its neighbours' identities through position-dependent features.
  const h = net.op('Tanh', [net.linear(x, 'layers.0.fc', D, D, { std: 1 / Math.sqrt(D) })]);
  const y = net.layerNorm(net.op('Add', [x, h]), D, 'final_layer_norm');
  g.output(y, 'context', 'float32', ['B', L, D]);
  return g.toModel('vggrpo toy fixtures');
}
