/**
 * Graphs below opset 16 read as opset 16 with the same meaning, so the gradient rules can emit
 * opset-16 forms (ScatterElements with reduction 'add' for Gather and MaxPool): nothing an
 * operator listed here means changed from 13 to 16, and below 13 attributes that later became inputs turn into constant
 * inputs (Squeeze/Unsqueeze/ReduceSum axes, Split sizes, Clip bounds, Pad, Slice, TopK's k,
 * Reshape's shape), removed legacy attributes go, and Softmax/LogSoftmax's old 2-D coercion
 * becomes an explicit reshape. Which operators read the same is declared next to their
 * definitions (src/onnx/ops/*.ts, `*_SAME_BEFORE_16`); any other one is an InputError naming it
 * below opset 13 and keeps the graph at its opset from 13 to 15.
 *
 * @example
 *   const m16 = upgradeOpset(model, inferShapes(model));
 */
import { InputError } from '../errors.js';
import { attr, GraphBuilder } from './builder.js';
import { attrFloat, attrInt, attrInts, attrString, findAttr, nodeLabel } from './graph.js';
import { makeTensor } from './model.js';
import { sameBefore16 } from './ops/index.js';
import { normAxis } from './ops/util.js';
import { DataType, type ModelProto, type NodeProto } from './proto.js';
import type { ShapeInfo } from './shapes.js';

/** The opset gradient graphs of older models declare. */
export const TARGET_OPSET = 16;

/** Attributes older opsets had and 13 dropped (no effect on the inference meaning). */
const LEGACY = new Set(['consumed_inputs', 'is_test', 'spatial', 'ratio']);

/**
 * The model at opset 16 (`info` from inferShapes of the original, for ranks and element types).
 * A model at 16 or newer is returned as is, and so is one at 13–15 with an operator not listed.
 */
export function upgradeOpset(model: ModelProto, info: ShapeInfo): ModelProto {
  const v = info.opset;
  if (v >= TARGET_OPSET) return model;
  const nodes = model.graph?.node ?? [];
  // BatchNormalization's training outputs meant other things before opset 14
  const bnTraining = (n: NodeProto) =>
    n.opType === 'BatchNormalization' && v < 14 && (n.output ?? []).filter((o) => o).length > 1;
  const other = nodes.find(
    (n) => (!n.domain || n.domain === 'ai.onnx') && (!sameBefore16(n) || bnTraining(n)),
  );
  if (other && v >= 13) return model;
  if (other) {
    throw new InputError(
      'model',
      `opset ${v}: operator ${other.opType} (node ${nodeLabel(other)}) cannot be read as opset ${TARGET_OPSET}`,
    );
  }
  const out: ModelProto = {
    ...model,
    opsetImport: (model.opsetImport ?? []).map((o) =>
      !o.domain || o.domain === 'ai.onnx' ? { ...o, version: TARGET_OPSET } : o,
    ),
    graph: { ...model.graph, node: [...nodes], initializer: [...(model.graph?.initializer ?? [])] },
  };
  if (v >= 13) return out;
  // the builder knows every existing name before the nodes are re-emitted
  const b = GraphBuilder.extend(out);
  b.graph.node = [];
  for (const n of nodes) {
    if (n.domain && n.domain !== 'ai.onnx') b.graph.node.push(n);
    else b.graph.node.push(...rewrite(n, v, info, b));
  }
  return out;
}

const ints = (b: GraphBuilder, v: readonly number[]) => b.const(v, 'int64', [v.length]);
const drop = (n: NodeProto, names: string[]): NodeProto => ({
  ...n,
  attribute: (n.attribute ?? []).filter((a) => !names.includes(a.name ?? '') && !LEGACY.has(a.name ?? '')),
});

/** The opset-13 node(s) (the same from 13 to 16) for one node of opset `v` < 13. */
function rewrite(n: NodeProto, v: number, info: ShapeInfo, b: GraphBuilder): NodeProto[] {
  const op = n.opType ?? '';
  const ins = [...(n.input ?? [])];
  const et = info.types.get(ins[0] ?? '')?.elemType ?? DataType.FLOAT;
  const moveInts = (name: string, at: number): NodeProto => {
    const a = attrInts(n, name);
    if (a === undefined) return drop(n, []);
    while (ins.length < at) ins.push('');
    ins[at] = ints(b, a);
    return { ...drop(n, [name]), input: ins };
  };
  // before opset 7 a broadcast could be aligned at an axis: no later form says that
  if (findAttr(n, 'broadcast') && findAttr(n, 'axis')) {
    throw new InputError(
      'model',
      `opset ${v}: ${op} ${nodeLabel(n)} broadcasts along an axis (not read as a newer opset)`,
    );
  }
  switch (op) {
    case 'Squeeze':
    case 'Unsqueeze':
    case 'ReduceSum':
      return [moveInts('axes', 1)];
    case 'Split':
      return [moveInts('split', 1)];
    case 'Reshape':
      return [moveInts('shape', 1)];
    case 'TopK':
      if (v < 10) {
        const k = attrInt(n, 'k', 1);
        return [{ ...drop(n, ['k']), input: [ins[0] ?? '', ints(b, [k])] }];
      }
      return [drop(n, [])];
    case 'Slice':
      if (v < 10) {
        const [starts, ends, axes] = [
          attrInts(n, 'starts') ?? [],
          attrInts(n, 'ends') ?? [],
          attrInts(n, 'axes'),
        ];
        const extra = axes ? [ints(b, axes)] : [];
        return [
          {
            ...drop(n, ['starts', 'ends', 'axes']),
            input: [ins[0] ?? '', ints(b, starts), ints(b, ends), ...extra],
          },
        ];
      }
      return [drop(n, [])];
    case 'Pad':
      if (v < 11) {
        const pads = attrInts(n, 'pads') ?? attrInts(n, 'paddings') ?? [];
        const value = b.initTensor(
          'pad_value',
          makeTensor('v', [], floatsOf(et, [attrFloat(n, 'value', 0)]), et),
        );
        return [{ ...drop(n, ['pads', 'paddings', 'value']), input: [ins[0] ?? '', ints(b, pads), value] }];
      }
      return [drop(n, [])];
    case 'Clip':
      if (v < 11) {
        const bound = (name: string) =>
          findAttr(n, name)
            ? b.initTensor(`clip_${name}`, makeTensor('v', [], floatsOf(et, [attrFloat(n, name, 0)]), et))
            : '';
        const [lo, hi] = [bound('min'), bound('max')];
        return [
          {
            ...drop(n, ['min', 'max']),
            input: hi ? [ins[0] ?? '', lo, hi] : lo ? [ins[0] ?? '', lo] : [ins[0] ?? ''],
          },
        ];
      }
      return [drop(n, [])];
    case 'Cast':
    case 'Tile':
      // Cast's target was a string, Tile took (tiles, axis) inputs, before opset 6
      if (v < 6)
        throw new InputError('model', `opset ${v}: ${op} ${nodeLabel(n)} is not read as a newer opset`);
      return [drop(n, [])];
    case 'Concat':
      // axis was optional (default 1) before opset 4
      return [
        findAttr(n, 'axis')
          ? drop(n, [])
          : { ...drop(n, []), attribute: [...(drop(n, []).attribute ?? []), attr('axis', 1)] },
      ];
    case 'Softmax':
    case 'LogSoftmax':
      return [...softmax2d(n, info, b)];
    case 'Dropout':
      // inference form: the ratio (an attribute before 12) has no effect
      return [{ ...drop(n, []), input: [ins[0] ?? ''] }];
    case 'BatchNormalization':
      if ((n.output ?? []).filter((o) => o).length > 1) {
        throw new InputError(
          'model',
          `opset ${v}: BatchNormalization ${nodeLabel(n)} in training form is not read as a newer opset`,
        );
      }
      return [drop(n, [])];
    case 'Resize':
      if (v < 11) {
        // Resize-10: (X, scales), asymmetric coordinates, nearest rounds down
        const mode = attrString(n, 'mode', 'nearest');
        const extra = mode === 'nearest' ? [attr('nearest_mode', 'floor')] : [];
        return [
          {
            ...drop(n, []),
            input: [ins[0] ?? '', '', ins[1] ?? ''],
            attribute: [
              ...(drop(n, []).attribute ?? []),
              attr('coordinate_transformation_mode', 'asymmetric'),
              ...extra,
            ],
          },
        ];
      }
      return [drop(n, [])];
    default:
      return [drop(n, ['broadcast'])];
  }
}

function floatsOf(et: number, v: number[]): Float32Array | Float64Array {
  return et === DataType.DOUBLE ? Float64Array.from(v) : Float32Array.from(v);
}

/** Softmax before 13: over the trailing block from `axis` (default 1) of X seen as 2-D. */
function softmax2d(n: NodeProto, info: ShapeInfo, b: GraphBuilder): NodeProto[] {
  const xs = info.types.get(n.input?.[0] ?? '')?.shape;
  if (!xs) throw new InputError('model', `Softmax ${nodeLabel(n)}: no static shape`);
  const axis = normAxis(attrInt(n, 'axis', 1), Math.max(1, xs.length));
  const base = { ...drop(n, ['axis']) };
  if (axis === xs.length - 1) return [{ ...base, attribute: [...(base.attribute ?? []), attr('axis', -1)] }];
  const pre = xs.slice(0, axis).reduce((p, d) => p * d, 1);
  const flat = b.fresh(`${n.output?.[0]}_2d`);
  const y2 = b.fresh(`${n.output?.[0]}_2d_out`);
  return [
    {
      opType: 'Reshape',
      name: b.fresh('softmax_2d'),
      input: [n.input?.[0] ?? '', ints(b, [pre, -1])],
      output: [flat],
    },
    { ...base, input: [flat], output: [y2], attribute: [...(base.attribute ?? []), attr('axis', -1)] },
    {
      opType: 'Reshape',
      name: b.fresh('softmax_nd'),
      input: [y2, ints(b, xs)],
      output: [n.output?.[0] ?? ''],
    },
  ];
}
