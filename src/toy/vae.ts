/**
 * The toy world's learned video autoencoder (VAE encoder and decoder), trained on RGB videos only
 * (onnx/train-vae.ts), so its latents hold whatever it learned about the frames and no geometry
 * channels. Per-frame 2-D (temporal compression 1, one latent frame per video frame):
 *
 * - encoder: frames [B, 8, 3, 64, 64] → SpaceToDepth 4 (patchify stem, 48 × 16 × 16) → 3×3 conv to
 *   `WIDTH` channels → `RES_BLOCKS` residual blocks (SiLU, 3×3 conv, SiLU, 3×3 conv) → SiLU → 3×3
 *   conv to 8 channels → latents [B, 8, 8, 16, 16] ([B, C, F, H, W]).
 * - decoder: the mirror image, ending in a 3×3 conv to 48 channels, DepthToSpace 4 and a Sigmoid
 *   so frames lie in [0, 1].
 *
 * The per-channel latent normalisation is part of both graphs, like a PyTorch buffer: the
 * encoder emits (z − `latent_norm.mean`) / `latent_norm.std` and the decoder first undoes it. They
 * are the identity (0, 1) while training and are set afterwards to the latents' per-channel mean
 * and std over training videos, so the encoder's latents are about zero-mean, unit-std per channel
 * and the composed autoencoder is unchanged. (Folding them into the convs' weights would not be
 * exact: the decoder's zero padding at the frame border would then stand for z = mean.)
 * Every operator is one the project's autodiff differentiates (Conv, SpaceToDepth, DepthToSpace,
 * Sigmoid, Mul, Add, Reshape, Transpose).
 *
 * @example
 *   const enc = buildVaeEncoder({ weights });   // frames → latents
 *   const dec = buildLearnedVaeDecoder({ weights });   // latents → frames
 */
import { GraphBuilder } from '../onnx/builder.js';
import { type BuiltModel, Net, type NetOptions, type ToyModelOptions } from './nn.js';
import { LATENT, VIDEO } from './spaces.js';

/** Channels of the convolutional trunk at the 16×16 latent grid. */
export const WIDTH = 64;
/** Residual blocks in each of the encoder and the decoder. */
export const RES_BLOCKS = 2;
/** Spatial patch of the stem (the spatial compression). */
const PATCH = LATENT.spatialCompression;
const STEM = 3 * PATCH * PATCH;
const { frames: F, height: HV, width: WV } = VIDEO;
const { channels: C, height: HL, width: WL } = LATENT;

/** Names of the normalisation buffers (not trained: leave them out of the gradient's `wrt`). */
export const LATENT_NORM = { mean: 'latent_norm.mean', std: 'latent_norm.std' } as const;

/** x + conv2(silu(conv1(silu(x)))); conv2 starts small so every block begins near the identity. */
function resBlock(net: Net, x: string, name: string): string {
  const h = net.conv(net.silu(x), `${name}.conv1`, WIDTH, WIDTH, { gain: Math.SQRT2 });
  const y = net.conv(net.silu(h), `${name}.conv2`, WIDTH, WIDTH, { gain: 0.1 });
  return net.op('Add', [x, y]);
}

/** The per-channel mean and std buffers, shaped [C, 1, 1] to broadcast over [N, C, H, W]. */
function normBuffers(net: Net): [string, string] {
  // One pair per graph: the training graph holds encoder and decoder together.
  const made = normOf.get(net);
  if (made) return made;
  const mean = net.param(LATENT_NORM.mean, [C], { kind: 'zeros' });
  const std = net.param(LATENT_NORM.std, [C], { kind: 'ones' });
  const pair: [string, string] = [net.reshape(mean, [C, 1, 1]), net.reshape(std, [C, 1, 1])];
  normOf.set(net, pair);
  return pair;
}
const normOf = new WeakMap<Net, [string, string]>();

/**
 * The encoder's body: frames [B, F, 3, 64, 64] → latents [B, C, F, 16, 16].
 *
 * @example
 *   const z = encoderBody(net, 'frames');
 */
export function encoderBody(net: Net, frames: string): string {
  const x = net.reshape(frames, [-1, 3, HV, WV]);
  let h = net.op('SpaceToDepth', [x], { blocksize: PATCH });
  h = net.conv(h, 'encoder.conv_in', STEM, WIDTH);
  for (let i = 0; i < RES_BLOCKS; i++) h = resBlock(net, h, `encoder.blocks.${i}`);
  const raw = net.conv(net.silu(h), 'encoder.conv_out', WIDTH, C);
  const [mean, std] = normBuffers(net);
  const z = net.op('Div', [net.op('Sub', [raw, mean]), std]);
  return net.transpose(net.reshape(z, [-1, F, C, HL, WL]), [0, 2, 1, 3, 4]);
}

/**
 * The decoder's body: latents [B, C, F, 16, 16] → frames [B, F, 3, 64, 64] in [0, 1].
 *
 * @example
 *   const frames = decoderBody(net, 'latents');
 */
export function decoderBody(net: Net, latents: string): string {
  const zn = net.reshape(net.transpose(latents, [0, 2, 1, 3, 4]), [-1, C, HL, WL]);
  const [mean, std] = normBuffers(net);
  const z = net.op('Add', [net.op('Mul', [zn, std]), mean]);
  let h = net.conv(z, 'decoder.conv_in', C, WIDTH);
  for (let i = 0; i < RES_BLOCKS; i++) h = resBlock(net, h, `decoder.blocks.${i}`);
  const patches = net.conv(net.silu(h), 'decoder.conv_out', WIDTH, STEM);
  const x = net.op('Sigmoid', [net.op('DepthToSpace', [patches], { blocksize: PATCH, mode: 'DCR' })]);
  return net.reshape(x, [-1, F, 3, HV, WV]);
}

function netOf(name: string, o: ToyModelOptions): Net {
  const opts: NetOptions = { seed: o.seed ?? 0, weights: o.weights, paramsAsInputs: o.paramsAsInputs };
  return new Net(new GraphBuilder(name, 18), opts);
}

/**
 * `vae_encoder.onnx`: `frames` [B, 8, 3, 64, 64] in [0, 1] → `latents` [B, 8, 8, 16, 16].
 *
 * @example
 *   saveModel(buildVaeEncoder({ weights }).model, 'onnx/fixtures/vae_encoder.onnx');
 */
export function buildVaeEncoder(o: ToyModelOptions = {}): BuiltModel {
  const net = netOf('toy_vae_encoder', o);
  const B = o.batch ?? 'B';
  const frames = net.g.input('frames', 'float32', [B, F, 3, HV, WV]);
  net.g.output(encoderBody(net, frames), 'latents', 'float32', [B, C, F, HL, WL]);
  return { model: net.g.toModel('vggrpo toy fixtures'), params: net.params };
}

/**
 * The learned VAE decoder: `latents` [B, 8, 8, 16, 16] → `frames` [B, 8, 3, 64, 64] in [0, 1].
 *
 * @example
 *   saveModel(buildLearnedVaeDecoder({ weights }).model, 'onnx/fixtures/vae_decoder_learned.onnx');
 */
export function buildLearnedVaeDecoder(o: ToyModelOptions = {}): BuiltModel {
  const net = netOf('toy_vae_decoder_learned', o);
  const B = o.batch ?? 'B';
  const latents = net.g.input('latents', 'float32', [B, C, F, HL, WL]);
  net.g.output(decoderBody(net, latents), 'frames', 'float32', [B, F, 3, HV, WV]);
  return { model: net.g.toModel('vggrpo toy fixtures'), params: net.params };
}
