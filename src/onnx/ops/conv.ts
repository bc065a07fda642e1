/** Convolutions. */
import { attrInt, attrInts } from '../graph.js';
import { numElements } from '../model.js';
import { I, type OpDef, type ValueType, type Vjp } from './types.js';
import { convSpec } from './util.js';

const two = (ins: (ValueType | undefined)[]): [ValueType, ValueType] => {
  const [a, b] = ins;
  if (!a || !b) throw new Error('needs two inputs');
  return [a, b];
};

export const CONV: Record<string, OpDef> = {
  Conv: {
    infer: (node, ins) => {
      const [x, w] = two(ins);
      return [{ elemType: x.elemType, shape: convSpec(node, x.shape, w.shape).outShape }];
    },
    grad: { vjp: convVjp, inputs: 'all', outputs: [0] },
  },
  ConvTranspose: {
    infer: (node, ins) => {
      const [x, w] = two(ins);
      const xs = x.shape;
      const nsp = xs.length - 2;
      const kernel = attrInts(node, 'kernel_shape') ?? w.shape.slice(2);
      const s = attrInts(node, 'strides') ?? kernel.map(() => 1);
      const d = attrInts(node, 'dilations') ?? kernel.map(() => 1);
      const p = attrInts(node, 'pads') ?? new Array<number>(2 * nsp).fill(0);
      const op = attrInts(node, 'output_padding') ?? kernel.map(() => 0);
      const os = attrInts(node, 'output_shape');
      const spatial = os?.length
        ? os.slice(-nsp)
        : kernel.map(
            (k, i) =>
              (s[i] ?? 1) * ((xs[i + 2] ?? 1) - 1) +
              (op[i] ?? 0) +
              (k - 1) * (d[i] ?? 1) +
              1 -
              (p[i] ?? 0) -
              (p[i + nsp] ?? 0),
          );
      return [
        {
          elemType: x.elemType,
          shape: [xs[0] ?? 1, (w.shape[1] ?? 1) * attrInt(node, 'group', 1), ...spatial],
        },
      ];
    },
  },
};

function convVjp(...[c, n, [dY], w]: Parameters<Vjp>): ReturnType<Vjp> {
  const X = I(n, 0);
  const W = I(n, 1);
  const xs = c.shape(X);
  const ws = c.shape(W);
  const spec = convSpec(n, xs, ws);
  const nsp = xs.length - 2;
  const ys = spec.outShape;
  const g = spec.group;
  let dX: string | undefined;
  let dW: string | undefined;
  let dB: string | undefined;
  if (w[0]) {
    const outPad = spec.kernel.map(
      (k, i) =>
        xs[i + 2]! +
        spec.pads[i]! +
        spec.pads[i + nsp]! -
        ((ys[i + 2]! - 1) * spec.strides[i]! + (k - 1) * spec.dilations[i]! + 1),
    );
    dX = c.op('ConvTranspose', [dY!, W], {
      strides: spec.strides,
      pads: spec.pads,
      dilations: spec.dilations,
      group: g,
      kernel_shape: spec.kernel,
      ...(outPad.some((p) => p) ? { output_padding: outPad } : {}),
    });
  }
  const k = spec.kernel;
  const o = ys.slice(2);
  const patchify =
    g === 1 &&
    k.every((ki, i) => spec.strides[i] === ki && spec.dilations[i] === 1 && xs[i + 2] === o[i]! * ki) &&
    spec.pads.every((q) => q === 0);
  if (w[1] && patchify) {
    // kernel = stride, no padding (a patch embedding): dW is one product of the patches
    // [N·o, C·k] with dY [N·o, M], far cheaper than a dilated Conv over the whole input
    const [N, C, M] = [xs[0]!, xs[1]!, ws[0]!];
    const split = [N, C, ...o.flatMap((oi, i) => [oi, k[i]!])];
    const perm = [0, ...o.map((_, i) => 2 + 2 * i), 1, ...k.map((_, i) => 3 + 2 * i)];
    const rows = N * numElements(o);
    const patches = c.reshape(c.transpose(c.reshape(X, split), perm), [rows, C * numElements(k)]);
    const dRows = c.reshape(c.transpose(dY!, [0, ...o.map((_, i) => 2 + i), 1]), [rows, M]);
    dW = c.reshape(c.op('Gemm', [dRows, patches], { transA: 1 }), ws);
  } else if (w[1]) {
    const [N, C] = [xs[0]!, xs[1]!];
    const sp = xs.slice(2);
    const axesRest = sp.map((_, i) => i + 3);
    // channels become the batch: Xg [C/g, g·N, sp], kernel dYᵀ [M, N, o]
    const Xg =
      g === 1
        ? c.op('Transpose', [X], { perm: [1, 0, ...sp.map((_, i) => i + 2)] })
        : c.reshape(
            c.op('Transpose', [c.reshape(X, [N, g, C / g, ...sp])], { perm: [2, 1, 0, ...axesRest] }),
            [C / g, g * N, ...sp],
          );
    const K = c.op('Transpose', [dY!], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
    let r = c.op('Conv', [Xg, K], {
      strides: spec.dilations,
      dilations: spec.strides,
      pads: spec.pads,
      group: g,
    });
    const got = spec.kernel.map(
      (_, i) =>
        Math.floor(
          (sp[i]! + spec.pads[i]! + spec.pads[i + nsp]! - ((ys[i + 2]! - 1) * spec.strides[i]! + 1)) /
            spec.dilations[i]!,
        ) + 1,
    );
    if (got.some((v, i) => v !== spec.kernel[i])) {
      r = c.op('Slice', [
        r,
        c.ints(spec.kernel.map(() => 0)),
        c.ints(spec.kernel),
        c.ints(spec.kernel.map((_, i) => i + 2)),
      ]);
    }
    dW = c.op('Transpose', [r], { perm: [1, 0, ...sp.map((_, i) => i + 2)] });
  }
  if (w[2]) dB = c.reduceSum(dY!, [0, ...ys.slice(2).map((_, i) => i + 2)], false);
  return [dX, dW, dB];
}
