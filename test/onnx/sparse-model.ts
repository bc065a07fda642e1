/**
 * Test helper: a copy of a model whose initializers live in an external data file larger than
 * 4 GiB that costs no disk. Each tensor is written with a positioned write; selected ones past
 * offset 2^32; everything between is a hole.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { encodeModel, loadModel } from '../../src/onnx/model.js';
import type { ModelProto, TensorProto } from '../../src/onnx/proto.js';

export const HIGH = 2 ** 32 + 2 ** 20;
export const SPARSE_SIZE = 2 ** 32 + 2 ** 28;
const ALIGN = 1 << 16;

/**
 * Write `<dir>/<name>` and `<dir>/<name>.data` (SPARSE_SIZE bytes): float initializers of 1 KiB or
 * more go to the data file, those matching `high` past 2^32, the rest near its start. The
 * model file itself is written plainly (this is test data, not the code under test).
 *
 * @example
 *   const offsets = writeSparseModel('onnx/fixtures/denoiser.onnx', dir, 'den.onnx', (n) => n.startsWith('blocks.'));
 */
export function writeSparseModel(
  src: string,
  dir: string,
  name: string,
  high: (tensor: string) => boolean,
  opts: { bigWeightBytes?: number } = {},
): Map<string, number> {
  const model = loadModel(src);
  const dataName = `${name}.data`;
  const fd = openSync(join(dir, dataName), 'w');
  const offsets = new Map<string, number>();
  let low = 0;
  let hi = HIGH;
  try {
    ftruncateSync(fd, SPARSE_SIZE);
    model.graph!.initializer = (model.graph!.initializer ?? []).map((t): TensorProto => {
      const raw = t.rawData;
      // As exporters do (torch.onnx's size threshold): float weights of 1 KiB or more go out;
      // shape constants and small vectors stay inline, where onnxruntime's optimisers read them.
      if (!raw || raw.length < 1024 || t.dataType !== 1) return t;
      const at = high(t.name ?? '') ? hi : low;
      writeSync(fd, raw, 0, raw.length, at);
      offsets.set(t.name ?? '', at);
      const next = at + Math.ceil(raw.length / ALIGN) * ALIGN;
      if (at === hi) hi = next;
      else low = next;
      return {
        ...t,
        rawData: undefined,
        dataLocation: 1,
        externalData: [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(at) },
          { key: 'length', value: String(raw.length) },
        ],
      };
    });
    if (opts.bigWeightBytes) {
      addBigWeight(model, dataName, hi, opts.bigWeightBytes);
      ftruncateSync(fd, Math.max(SPARSE_SIZE, hi + opts.bigWeightBytes));
    }
  } finally {
    closeSync(fd);
  }
  const mfd = openSync(join(dir, name), 'w');
  writeSync(mfd, encodeModel(model));
  closeSync(mfd);
  return offsets;
}

/**
 * Make the model's one output depend on a float weight of `bytes` bytes (all zeros: a hole at
 * `offset`): output + 0·weight[index], the index computed from the first input so that nothing
 * can be folded at load. The outputs stay exactly the same, yet onnxruntime and vggrpo must open
 * a model whose weights exceed 2 GB; only one page of the weight is ever touched.
 */
function addBigWeight(model: ModelProto, location: string, offset: number, bytes: number): void {
  const g = model.graph!;
  const out = g.output![0]!.name!;
  const first = g.input![0]!.name!;
  const producer = g.node!.find((n) => n.output?.includes(out))!;
  producer.output = producer.output!.map((o) => (o === out ? 'big:pre' : o));
  g.initializer!.push(
    {
      name: 'big.weight',
      dims: [bytes / 4],
      dataType: 1,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes) },
      ],
    },
    { name: 'big.zero', dims: [], dataType: 1, rawData: new Uint8Array(4) },
  );
  g.node!.push(
    {
      opType: 'ReduceMax',
      input: [first],
      output: ['big:max'],
      name: 'big:max',
      attribute: [{ name: 'keepdims', type: 2, i: 0 }],
    },
    { opType: 'Mul', input: ['big:max', 'big.zero'], output: ['big:zero'], name: 'big:zero' },
    {
      opType: 'Cast',
      input: ['big:zero'],
      output: ['big:index'],
      name: 'big:index',
      attribute: [{ name: 'to', type: 2, i: 7 }],
    },
    { opType: 'Gather', input: ['big.weight', 'big:index'], output: ['big:value'], name: 'big:gather' },
    { opType: 'Mul', input: ['big:value', 'big.zero'], output: ['big:nothing'], name: 'big:mul' },
    { opType: 'Add', input: ['big:pre', 'big:nothing'], output: [out], name: 'big:add' },
  );
}
