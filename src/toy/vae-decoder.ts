/**
 * The toy VAE decoder: latents [B, C, F, H, W] → RGB frames [B, F, 3, 2H, 2W] in [0, 1], read
 * from the colour channels (de-normalised, nearest-upsampled ×2 by two constant MatMuls, clipped).
 * It exists so `eval` can write real videos of samples; no reward ever decodes.
 *
 * @example
 *   const model = buildVaeDecoder(); // latents [B,14,8,16,16] → frames [B,8,3,32,32]
 */
import { GraphBuilder } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/proto.js';
import { CH, NORM, TOY } from './latent.js';
import { Net } from './nn.js';

/** Nearest ×2 upsampling matrix U [2n, n]: (U·X)[r] = X[r >> 1]. */
function upsampleMatrix(n: number): Float32Array {
  const u = new Float32Array(2 * n * n);
  for (let r = 0; r < 2 * n; r++) u[r * n + (r >> 1)] = 1;
  return u;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/**
 * `latents` [B, C, F, H, W] → `frames` [B, F, 3, Hr, Wr], Hr = 2H, Wr = 2W.
 *
 * @example
 *   saveModel(buildVaeDecoder(), 'onnx/fixtures/vae_decoder.onnx');
 */
export function buildVaeDecoder(): ModelProto {
  const { channels: C, frames: F, height: H, width: W, frameHeight: Hr, frameWidth: Wr } = TOY;
  const g = new GraphBuilder('toy_vae_decoder', 18);
  const net = new Net(g, { seed: 0 });
  const x = g.input('latents', 'float32', ['B', C, F, H, W]);
  const rgbN = net.slice(x, 1, CH.rgb, CH.rgb + 3);
  const rgb = net.op('Add', [net.scale(rgbN, NORM.rgbScale), net.c([NORM.rgbMean])]);
  const uh = net.c(upsampleMatrix(H), [Hr, H]);
  const uwT = net.c(transpose(upsampleMatrix(W), Wr, W), [W, Wr]);
  const up = net.op('MatMul', [net.op('MatMul', [uh, rgb]), uwT]);
  const clipped = net.op('Clip', [up, net.c([0]), net.c([1])]);
  const frames = net.transpose(clipped, [0, 2, 1, 3, 4]);
  g.output(frames, 'frames', 'float32', ['B', F, 3, Hr, Wr]);
  return g.toModel('vggrpo toy fixtures');
}
