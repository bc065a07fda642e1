/**
 * The connector C of a latent geometry model (docs/METHOD.md, Parts 1): it reads VAE latents
 * [B, C, F', H, W] and writes what Φ's first ℓ layers would have written at the stitch point. The
 * paper's is a single 3-D convolution, kernel 5×5×5, stride 1×2×2, padding 2, from the latent
 * channels to Φ's token width D; its output grid [B, D, F', ⌈H/2⌉, ⌈W/2⌉] is reshaped to Φ's token
 * layout [B, F'·h·w, D] (frame-major, row-major within a frame), or kept as is for a 5-D stitch
 * tensor [B, D, F', h, w].
 *
 * @example
 *   const spec = parseConnector('conv3d');              // the paper's
 *   const y = addConnector(net, 'latents', spec, { channels: 8, width: 64, layout: 'tokens' });
 */
import { InputError } from '../errors.js';
import type { Net } from '../toy/nn.js';

export interface ConnectorSpec {
  /** Kernel [t, h, w]. */
  kernel: [number, number, number];
  stride: [number, number, number];
  pads: [number, number, number];
}

/** The paper's connector: Conv3d kernel 5, stride 1×2×2, padding 2. */
export const PAPER_CONNECTOR: ConnectorSpec = { kernel: [5, 5, 5], stride: [1, 2, 2], pads: [2, 2, 2] };

/** The per-token linear map of `--at auto` as a connector: each token reads only the 2×2 latent patch under it. */
export const PATCH_CONNECTOR: ConnectorSpec = { kernel: [1, 2, 2], stride: [1, 2, 2], pads: [0, 0, 0] };

/** How Φ lays out the stitch tensor: tokens [B, N, D] or a grid [B, D, F', h, w]. */
export type StitchLayout = 'tokens' | 'grid';

export interface ConnectorDims {
  /** Latent channels (the encoder's C). */
  channels: number;
  /** Φ's width at the stitch point (D). */
  width: number;
  layout: StitchLayout;
}

/**
 * `--connector`: `conv3d` (the paper's, default), `patch` (the linear patch map), or
 * `conv3d:K[:ST,SH,SW[:PT,PH,PW]]` (kernel K in all three axes, default the paper's stride and K/2 padding).
 *
 * @example
 *   parseConnector('conv3d:3');   // kernel 3, stride 1×2×2, padding 1
 */
export function parseConnector(flag = 'conv3d'): ConnectorSpec {
  if (flag === 'conv3d') return PAPER_CONNECTOR;
  if (flag === 'patch') return PATCH_CONNECTOR;
  const m = /^conv3d:(\d+)(?::(\d+),(\d+),(\d+))?(?::(\d+),(\d+),(\d+))?$/.exec(flag);
  if (!m) {
    throw new InputError(
      '--connector',
      `'${flag}': expected conv3d, patch or conv3d:K[:ST,SH,SW[:PT,PH,PW]]`,
    );
  }
  const k = Number(m[1]);
  const stride: [number, number, number] = m[2] ? [Number(m[2]), Number(m[3]), Number(m[4])] : [1, 2, 2];
  const pads: [number, number, number] = m[5]
    ? [Number(m[5]), Number(m[6]), Number(m[7])]
    : [k >> 1, k >> 1, k >> 1];
  if (k < 1 || stride.some((s) => s < 1) || pads.some((p) => p >= k)) {
    throw new InputError('--connector', `'${flag}': kernel ≥ 1, strides ≥ 1 and padding < kernel expected`);
  }
  return { kernel: [k, k, k], stride, pads };
}

/** Output size of the connector along one axis (Conv arithmetic). */
function outSize(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

/**
 * The connector's output grid [F', h, w] for latents [C, F', H, W].
 *
 * @example
 *   connectorGrid([8, 8, 16, 16], PAPER_CONNECTOR); // [8, 8, 8]
 */
export function connectorGrid(latent: readonly number[], spec: ConnectorSpec): [number, number, number] {
  const [, F, H, W] = latent as [number, number, number, number];
  return [
    outSize(F, spec.kernel[0], spec.stride[0], spec.pads[0]),
    outSize(H, spec.kernel[1], spec.stride[1], spec.pads[1]),
    outSize(W, spec.kernel[2], spec.stride[2], spec.pads[2]),
  ];
}

/**
 * Append the connector to `net`'s graph: parameters `connector.weight` [D, C, kt, kh, kw] and
 * `connector.bias` [D]; returns the stitch tensor in Φ's layout.
 *
 * @example
 *   const at = addConnector(net, 'latents', PAPER_CONNECTOR, { channels: 8, width: 64, layout: 'tokens' });
 */
export function addConnector(net: Net, latents: string, spec: ConnectorSpec, dims: ConnectorDims): string {
  const { channels: C, width: D } = dims;
  const fanIn = C * spec.kernel[0] * spec.kernel[1] * spec.kernel[2];
  const w = net.param('connector.weight', [D, C, ...spec.kernel], {
    kind: 'normal',
    std: 1 / Math.sqrt(fanIn),
  });
  const b = net.param('connector.bias', [D], { kind: 'zeros' });
  const y = net.op('Conv', [latents, w, b], {
    kernel_shape: spec.kernel,
    strides: spec.stride,
    pads: [...spec.pads, ...spec.pads],
  });
  if (dims.layout === 'grid') return y;
  // [B, D, F', h, w] → [B, D, F'·h·w] → [B, F'·h·w, D]: flattening (F', h, w) is frame-major, row-major.
  return net.transpose(net.op('Reshape', [y, net.i64([0, D, -1])]), [0, 2, 1]);
}

/**
 * Connector weights that compute a fitted per-token linear map exactly (the ridge fit of
 * stitch-point.ts): token (f, i, j) reads latent (f, s_h·i + a, s_w·j + b), which is kernel tap
 * (p_t, p_h + a, p_w + b). Undefined when the kernel does not cover the patch under the token.
 *
 * @example
 *   const w = connectorFromPatchMap(fit.weights, 8, 64, PAPER_CONNECTOR); // { weight, bias }
 */
export function connectorFromPatchMap(
  map: Float64Array,
  channels: number,
  width: number,
  spec: ConnectorSpec,
): { weight: Float32Array; bias: Float32Array } | undefined {
  const [kt, kh, kw] = spec.kernel;
  const [, sh, sw] = spec.stride;
  const [pt, ph, pw] = spec.pads;
  if (pt >= kt || ph + sh > kh || pw + sw > kw) return undefined;
  const P = channels * sh * sw;
  const weight = new Float32Array(width * channels * kt * kh * kw);
  const bias = new Float32Array(width);
  for (let d = 0; d < width; d++) {
    for (let c = 0; c < channels; c++) {
      for (let a = 0; a < sh; a++) {
        for (let b = 0; b < sw; b++) {
          const row = (c * sh + a) * sw + b;
          weight[(((d * channels + c) * kt + pt) * kh + ph + a) * kw + pw + b] = map[row * width + d]!;
        }
      }
    }
    bias[d] = map[P * width + d]!;
  }
  return { weight, bias };
}
