/**
 * Bilinear resizing of planar frames [N, C, H, W] with half-pixel centres (the source coordinate
 * of output pixel x is (x + 0.5)·H_in/H_out − 0.5, clamped at the border) — PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False)` without antialiasing, and ONNX Resize's
 * `linear`/`half_pixel`. The RGB path uses it to bring decoded frames to the geometry model's
 * input size (`geometry_outputs.frames_size`), as VGGT's own preprocessing resizes its inputs.
 *
 * @example
 *   const out = resizeBilinear(frames, [8, 3, 32, 32], 64, 64); // [8, 3, 64, 64]
 */

interface Taps {
  lo: Int32Array;
  hi: Int32Array;
  w: Float32Array;
}

/** Per output index: the two source indices and the weight of the upper one. */
function taps(inSize: number, outSize: number): Taps {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const w = new Float32Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const x = Math.max(0, (o + 0.5) * scale - 0.5);
    const l = Math.min(Math.floor(x), inSize - 1);
    lo[o] = l;
    hi[o] = Math.min(l + 1, inSize - 1);
    w[o] = x - l;
  }
  return { lo, hi, w };
}

/**
 * Frames [N, C, H, W] (any leading dims folded into N·C planes) → [N, C, outH, outW].
 *
 * @example
 *   resizeBilinear(Float32Array.of(0, 1), [1, 1, 1, 2], 1, 4); // [0, 0.25, 0.75, 1]
 */
export function resizeBilinear(
  data: Float32Array,
  shape: readonly number[],
  outH: number,
  outW: number,
): Float32Array {
  const H = shape[shape.length - 2]!;
  const W = shape[shape.length - 1]!;
  const planes = data.length / (H * W);
  if (H === outH && W === outW) return data;
  const ty = taps(H, outH);
  const tx = taps(W, outW);
  const out = new Float32Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    const src = p * H * W;
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = src + ty.lo[y]! * W;
      const r1 = src + ty.hi[y]! * W;
      const wy = ty.w[y]!;
      for (let x = 0; x < outW; x++) {
        const a = tx.lo[x]!;
        const b = tx.hi[x]!;
        const wx = tx.w[x]!;
        const top = data[r0 + a]! + wx * (data[r0 + b]! - data[r0 + a]!);
        const bottom = data[r1 + a]! + wx * (data[r1 + b]! - data[r1 + a]!);
        out[dst + y * outW + x] = top + wy * (bottom - top);
      }
    }
  }
  return out;
}
