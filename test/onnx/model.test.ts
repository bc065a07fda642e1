/**
 * ONNX file layer: field numbers against hand-encoded protobuf bytes, lossless round trips of
 * every message kind, external data written and read (and read by onnxruntime itself), atomic
 * writes, tensor helpers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/onnx/builder.js';
import {
  decodeModel,
  encodeModel,
  loadModel,
  makeTensor,
  saveModel,
  tensorToArray,
} from '../../src/onnx/model.js';
import { AttributeType, DataType, type ModelProto } from '../../src/onnx/proto.js';
import { run } from './ort-helper.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Buffers and Uint8Arrays compare by content. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: hex(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = plain(x);
    return o;
  }
  return v;
}

test('field numbers match the ONNX spec (hand-encoded wire bytes)', () => {
  // ModelProto: ir_version = 1 (varint), producer_name = 2 (bytes)
  assert.equal(hex(encodeModel({ irVersion: 7, producerName: 'x' })), '0807120178');
  // graph = 7; GraphProto.node = 1; NodeProto.input = 1, output = 2, op_type = 4
  assert.equal(
    hex(encodeModel({ graph: { node: [{ input: ['a'], output: ['b'], opType: 'Relu' }] } })),
    `3a0e0a0c${'0a0161'}${'120162'}${'2204'}${Buffer.from('Relu').toString('hex')}`,
  );
  // opset_import = 8; OperatorSetIdProto.domain = 1, version = 2
  assert.equal(hex(encodeModel({ opsetImport: [{ domain: 'a', version: 18 }] })), '42050a01611012');
  // GraphProto.initializer = 5; TensorProto.dims = 1 (unpacked), data_type = 2, float_data = 4 (packed)
  const m: ModelProto = { graph: { initializer: [{ dims: [2], dataType: 1, floatData: [1, 2] }] } };
  assert.equal(hex(encodeModel(m)), '3a102a0e080210012208' + '0000803f00000040');
});

test('every message kind round-trips without losing fields', () => {
  const g = new GraphBuilder('rt', 18);
  const x = g.input('x', 'float32', ['batch', 3]);
  const y = g.op('Gemm', [x, g.init('w', Float32Array, [2, 3], (i) => i)], { alpha: 0.5, transB: 1 });
  g.output(y, 'y', 'float32', ['batch', 2]);
  const m = g.toModel('test');
  Object.assign(m, {
    docString: 'doc',
    modelVersion: 3,
    domain: 'vggrpo.test',
    metadataProps: [{ key: 'k', value: 'v' }],
    functions: [
      {
        name: 'F',
        domain: 'local',
        input: ['a'],
        output: ['b'],
        node: [{ opType: 'Neg', input: ['a'], output: ['b'] }],
      },
    ],
    trainingInfo: [{ initialization: { name: 'init' }, initializationBinding: [{ key: 'a', value: 'b' }] }],
  });
  m.opsetImport = [{ version: 18 }, { domain: 'com.microsoft', version: 1 }];
  const gr = m.graph!;
  gr.valueInfo = [
    {
      name: 'v',
      type: { tensorType: { elemType: 7, shape: { dim: [{ dimParam: 'n', denotation: 'BATCH' }] } } },
      docString: 'vi',
    },
  ];
  gr.sparseInitializer = [
    {
      values: { dims: [1], dataType: 1, floatData: [3] },
      indices: { dims: [1], dataType: 7, int64Data: [2] },
      dims: [4],
    },
  ];
  gr.quantizationAnnotation = [
    { tensorName: 't', quantParameterTensorNames: [{ key: 'SCALE_TENSOR', value: 's' }] },
  ];
  gr.initializer!.push(
    { name: 'i64', dims: [3], dataType: 7, int64Data: [-1, 2 ** 63, -(2 ** 63)] },
    {
      name: 'ext',
      dims: [2],
      dataType: 1,
      dataLocation: 1,
      externalData: [{ key: 'location', value: 'w.bin' }],
    },
    {
      name: 'seg',
      dims: [1],
      dataType: 11,
      doubleData: [0.25],
      segment: { begin: 1, end: 2 },
      docString: 'd',
    },
    { name: 'u64', dims: [1], dataType: 13, uint64Data: [7] },
    { name: 's', dims: [1], dataType: 8, stringData: [new Uint8Array([104, 105])] },
  );
  gr.node!.push({
    opType: 'Custom',
    domain: 'com.example',
    input: ['x'],
    output: ['z'],
    docString: 'nd',
    overload: 'o',
    metadataProps: [{ key: 'a', value: 'b' }],
    attribute: [
      { name: 'f', type: AttributeType.FLOAT, f: 1.5 },
      { name: 'i', type: AttributeType.INT, i: -3 },
      { name: 's', type: AttributeType.STRING, s: new Uint8Array([65]) },
      { name: 't', type: AttributeType.TENSOR, t: makeTensor('t', [2], Float32Array.of(1, 2)) },
      {
        name: 'g',
        type: AttributeType.GRAPH,
        g: { name: 'sub', node: [{ opType: 'Identity', input: ['x'], output: ['q'] }] },
      },
      { name: 'fs', type: AttributeType.FLOATS, floats: [0.5, 2] },
      { name: 'is', type: AttributeType.INTS, ints: [1, -2, 2 ** 63] },
      { name: 'ss', type: AttributeType.STRINGS, strings: [new Uint8Array([66])] },
      {
        name: 'tp',
        type: AttributeType.TYPE_PROTO,
        tp: { sequenceType: { elemType: { tensorType: { elemType: 1 } } } },
      },
      { name: 'r', refAttrName: 'outer', type: AttributeType.INT },
    ],
  });
  const bytes = encodeModel(m);
  const back = decodeModel(bytes);
  assert.deepEqual(plain(back), plain(m));
  assert.equal(hex(encodeModel(back)), hex(bytes));
  // scalars equal to their proto default (0, '') are not written; readers see the same default
  const z = decodeModel(
    encodeModel({ graph: { node: [{ opType: 'A', attribute: [{ name: 'i', type: 2, i: 0 }] }] } }),
  );
  assert.equal(z.graph!.node![0]!.attribute![0]!.i ?? 0, 0);
  // int64 sentinels survive (Slice ends use INT64_MAX)
  const i64 = tensorToArray(back.graph!.initializer!.find((t) => t.name === 'i64')!) as BigInt64Array;
  assert.deepEqual([...i64], [-1n, 9223372036854775807n, -9223372036854775808n]);
});

test('external data: written beside the model, read back by loadModel and by onnxruntime', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vggrpo-onnx-'));
  const g = new GraphBuilder('ext', 18);
  const x = g.input('x', 'float32', [1, 64]);
  const w = g.init('w', Float32Array, [64, 64], (i) => Math.sin(i));
  const b = g.init('b', Float32Array, [64], (i) => i / 10);
  g.output(g.op('Add', [g.op('MatMul', [x, w]), b]), 'y');
  const m = g.toModel();
  const path = join(dir, 'm.onnx');
  saveModel(m, path, { externalDataThreshold: 1024 });
  assert.deepEqual(readdirSync(dir).sort(), ['m.onnx', 'm.onnx.data']);
  assert.ok(statSync(path).size < 1024, 'weights moved out of the model file');
  const loaded = loadModel(path);
  const wl = loaded.graph!.initializer!.find((t) => t.name === 'w')!;
  assert.equal(wl.dataLocation, 1, 'external data stays on disk until its values are asked for');
  assert.deepEqual(tensorToArray(wl), tensorToArray(m.graph!.initializer![0]!));
  assert.equal(loaded.graph!.initializer!.find((t) => t.name === 'b')!.dataLocation, undefined);
  // the caller's model still holds its raw data
  assert.ok(m.graph!.initializer![0]!.rawData!.length === 64 * 64 * 4);
  const xin = { data: Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)), dims: [1, 64] };
  const expect = await run(m, { x: xin });
  const s = await ort.InferenceSession.create(path);
  const got = await s.run({ x: new ort.Tensor('float32', xin.data, xin.dims) });
  assert.deepEqual(got.y!.data, expect.y!.data);
  // plain save: one file, nothing temporary left behind
  saveModel(loaded, join(dir, 'plain.onnx'));
  assert.deepEqual(readdirSync(dir).sort(), ['m.onnx', 'm.onnx.data', 'plain.onnx']);
  const back = loadModel(join(dir, 'plain.onnx'));
  assert.ok(back.graph!.initializer!.every((t) => t.dataLocation === undefined && t.rawData));
  assert.equal(hex(encodeModel(back)), hex(encodeModel(m)), 'the inlined copy is the original model');
  rmSync(dir, { recursive: true });
});

test('tensor helpers read raw_data and the typed fields', () => {
  assert.deepEqual(
    [...(tensorToArray({ dims: [2], dataType: DataType.FLOAT, floatData: [1.5, -2] }) as Float32Array)],
    [1.5, -2],
  );
  assert.deepEqual(
    [...(tensorToArray({ dims: [2], dataType: DataType.INT64, int64Data: [5, -6] }) as BigInt64Array)],
    [5n, -6n],
  );
  assert.deepEqual(
    [...(tensorToArray({ dims: [1], dataType: DataType.DOUBLE, doubleData: [0.1] }) as Float64Array)],
    [0.1],
  );
  assert.deepEqual(
    [...(tensorToArray({ dims: [2], dataType: DataType.INT32, int32Data: [3, 4] }) as Int32Array)],
    [3, 4],
  );
  const t = makeTensor('b', [3], BigInt64Array.of(1n, -2n, 3n));
  assert.equal(t.dataType, DataType.INT64);
  // a misaligned raw_data view still reads
  const raw = new Uint8Array(13);
  raw.set(new Uint8Array(Float32Array.of(7, 8, 9).buffer), 1);
  assert.deepEqual(
    [...(tensorToArray({ dims: [3], dataType: 1, rawData: raw.subarray(1) }) as Float32Array)],
    [7, 8, 9],
  );
  assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff])), /not a valid ONNX model/);
});
