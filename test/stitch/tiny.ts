/**
 * Tiny stand-ins for the stitch tests, built with Net: an encoder frames [B,F,3,16,16] → latents
 * [B,4,F',4,4] (patchify 4×4, optionally Wan-like temporal compression: frame 0 alone, then the
 * mean of each following group of t frames) and a Φ frames [B,F',3,16,16] → tokens of a 2×2 patch
 * grid per frame, `tokenizer.output` and `blocks.N.output` [B, F'·4, D], and the five geometry outputs.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import { saveModel } from '../../src/onnx/model.js';
import { writeSafetensors } from '../../src/shards/safetensors.js';
import { tensor } from '../../src/shards/tensor.js';
import { Net } from '../../src/toy/nn.js';

export function tinyEncoder(
  path: string,
  o: { frames: number; t?: number; channels?: number; patch?: number; size?: number },
): void {
  const HW = o.size ?? 16;
  const t = o.t ?? 1;
  const C = o.channels ?? 4;
  const p = o.patch ?? 4;
  const g = new GraphBuilder('enc', 18);
  const net = new Net(g, { seed: 1 });
  const x = g.input('frames', 'float32', ['B', o.frames, 3, HW, HW]);
  const w = net.param('patch.weight', [C, 3, 1, p, p], { kind: 'normal', std: 0.5 });
  let y = net.op('Tanh', [
    net.op('Conv', [net.transpose(x, [0, 2, 1, 3, 4]), w], { kernel_shape: [1, p, p], strides: [1, p, p] }),
  ]);
  if (t > 1) {
    const rest = (o.frames - 1) / t;
    const first = net.slice(y, 2, 0, 1);
    const groups = net.op('Reshape', [
      net.slice(y, 2, 1, o.frames),
      net.i64([0, C, rest, t, HW / p, HW / p]),
    ]);
    y = net.op('Concat', [first, net.op('ReduceMean', [groups, net.i64([3])], { keepdims: 0 })], { axis: 2 });
  }
  g.output(y, 'latents');
  saveModel(g.toModel(), path);
}

export function tinyPhi(
  path: string,
  o: { frames: number; width?: number; blocks?: number; size?: number; grid?: boolean },
): void {
  const HW = o.size ?? 16;
  const G = HW / 8;
  const F = o.frames;
  const D = o.width ?? 16;
  const g = new GraphBuilder('phi', 18);
  const net = new Net(g, { seed: 2 });
  const x = g.input('frames', 'float32', ['B', F, 3, HW, HW]);
  const w = net.param('tokenizer.weight', [D, 3, 1, 8, 8], { kind: 'normal', std: 0.1 });
  const grid = net.op('Conv', [net.transpose(x, [0, 2, 1, 3, 4]), w], {
    kernel_shape: [1, 8, 8],
    strides: [1, 8, 8],
  });
  let h: string;
  if (o.grid) {
    // The stitch tensor as a grid [B, D, F, h, w] (a convolutional tokenizer's own layout).
    g.op('Identity', [grid], {}, { outputs: ['tokenizer.output'] });
    h = net.transpose(net.reshape('tokenizer.output', [0, D, -1]), [0, 2, 1]);
  } else {
    g.op(
      'Transpose',
      [net.reshape(grid, [0, D, -1])],
      { perm: [0, 2, 1] },
      { outputs: ['tokenizer.output'] },
    );
    h = 'tokenizer.output';
  }
  for (let b = 0; b < (o.blocks ?? 2); b++) {
    const m = net.linear(
      net.gelu(net.linear(net.layerNorm(h, D), `blocks.${b}.fc1`, D, 2 * D)),
      `blocks.${b}.fc2`,
      2 * D,
      D,
    );
    g.op('Add', [h, m], {}, { outputs: [`blocks.${b}.output`] });
    h = `blocks.${b}.output`;
  }
  const perPixel = (name: string, k: number) => net.linear(h, `head.${name}`, D, k);
  g.output(net.op('Exp', [net.reshape(perPixel('depth', 1), [0, F, G, G])]), 'depth');
  g.output(net.reshape(perPixel('points', 3), [0, F, G, G, 3]), 'world_points');
  g.output(
    net.op('Add', [net.op('Exp', [net.reshape(perPixel('conf', 1), [0, F, G, G])]), net.c([1])]),
    'confidence',
  );
  const pooled = net.op('ReduceMean', [net.reshape(h, [0, F, G * G, D]), net.i64([2])], { keepdims: 0 });
  g.output(net.linear(pooled, 'head.camera', D, 9), 'pose_enc');
  g.output(net.reshape(perPixel('flow', 3), [0, F, G, G, 3]), 'scene_flow');
  saveModel(g.toModel(), path);
}

/** `n` smooth random videos as a shard with rgb U8 [n, F, H, W, 3] (what `vggrpo world` writes). */
export function videoShard(path: string, n: number, frames: number, size = 16, seed = 0): void {
  const rgb = new Uint8Array(n * frames * size * size * 3);
  let i = 0;
  for (let v = 0; v < n; v++) {
    const a = [1, 2, 3].map((k) => Math.sin(seed * 13 + v * 7 + k) * 3);
    for (let f = 0; f < frames; f++) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          for (let c = 0; c < 3; c++) {
            const s =
              Math.sin(a[c]! + (x + f * a[0]!) * 0.4 * (c + 1)) *
              Math.cos(a[(c + 1) % 3]! + y * 0.3 + f * 0.2);
            rgb[i++] = Math.round(127.5 + 127 * s);
          }
        }
      }
    }
  }
  writeSafetensors(path, { rgb: tensor('U8', [n, frames, size, size, 3], rgb) });
}
