/**
 * The ONNX protobuf schema (onnx.proto / onnx-ml.proto, IR version 10), written as a protobufjs
 * JSON descriptor from the spec's field numbers, and the plain-object types the rest of
 * `src/onnx/` works on. Fields newer than IR 10 (multi-device configuration) are not in the
 * schema and would be dropped on a round trip.
 *
 * Field names are camelCase (`opType`, `rawData`): protobufjs only uses the numbers on the wire.
 * int64 scalars (dims, attribute ints, versions) are plain numbers in memory: values beyond 2^53
 * only occur as ±INT64 sentinels (Slice ends), which protobufjs saturates back exactly.
 *
 * @example
 *   const model = ModelProtoType.toObject(ModelProtoType.decode(bytes), TO_OBJECT) as ModelProto;
 */
import protobuf from 'protobufjs';

// onnx.proto is proto2: only the *_data fields are packed; other repeated numbers are not
const packed = { packed: true };
const unpacked = { packed: false };
const f = (id: number, type: string, rule?: 'repeated', options?: Record<string, unknown>) => ({
  id,
  type,
  ...(rule ? { rule } : {}),
  ...(options ? { options } : {}),
});

const descriptor = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: f(1, 'string'),
            refAttrName: f(21, 'string'),
            docString: f(13, 'string'),
            type: f(20, 'AttributeType'),
            f: f(2, 'float'),
            i: f(3, 'int64'),
            s: f(4, 'bytes'),
            t: f(5, 'TensorProto'),
            g: f(6, 'GraphProto'),
            sparseTensor: f(22, 'SparseTensorProto'),
            tp: f(14, 'TypeProto'),
            floats: f(7, 'float', 'repeated', unpacked),
            ints: f(8, 'int64', 'repeated', unpacked),
            strings: f(9, 'bytes', 'repeated'),
            tensors: f(10, 'TensorProto', 'repeated'),
            graphs: f(11, 'GraphProto', 'repeated'),
            sparseTensors: f(23, 'SparseTensorProto', 'repeated'),
            typeProtos: f(15, 'TypeProto', 'repeated'),
          },
          nested: {
            AttributeType: {
              values: {
                UNDEFINED: 0,
                FLOAT: 1,
                INT: 2,
                STRING: 3,
                TENSOR: 4,
                GRAPH: 5,
                SPARSE_TENSOR: 11,
                TYPE_PROTO: 13,
                FLOATS: 6,
                INTS: 7,
                STRINGS: 8,
                TENSORS: 9,
                GRAPHS: 10,
                SPARSE_TENSORS: 12,
                TYPE_PROTOS: 14,
              },
            },
          },
        },
        ValueInfoProto: {
          fields: {
            name: f(1, 'string'),
            type: f(2, 'TypeProto'),
            docString: f(3, 'string'),
            metadataProps: f(4, 'StringStringEntryProto', 'repeated'),
          },
        },
        NodeProto: {
          fields: {
            input: f(1, 'string', 'repeated'),
            output: f(2, 'string', 'repeated'),
            name: f(3, 'string'),
            opType: f(4, 'string'),
            domain: f(7, 'string'),
            overload: f(8, 'string'),
            attribute: f(5, 'AttributeProto', 'repeated'),
            docString: f(6, 'string'),
            metadataProps: f(9, 'StringStringEntryProto', 'repeated'),
          },
        },
        TrainingInfoProto: {
          fields: {
            initialization: f(1, 'GraphProto'),
            algorithm: f(2, 'GraphProto'),
            initializationBinding: f(3, 'StringStringEntryProto', 'repeated'),
            updateBinding: f(4, 'StringStringEntryProto', 'repeated'),
          },
        },
        ModelProto: {
          fields: {
            irVersion: f(1, 'int64'),
            opsetImport: f(8, 'OperatorSetIdProto', 'repeated'),
            producerName: f(2, 'string'),
            producerVersion: f(3, 'string'),
            domain: f(4, 'string'),
            modelVersion: f(5, 'int64'),
            docString: f(6, 'string'),
            graph: f(7, 'GraphProto'),
            metadataProps: f(14, 'StringStringEntryProto', 'repeated'),
            trainingInfo: f(20, 'TrainingInfoProto', 'repeated'),
            functions: f(25, 'FunctionProto', 'repeated'),
          },
        },
        StringStringEntryProto: { fields: { key: f(1, 'string'), value: f(2, 'string') } },
        TensorAnnotation: {
          fields: {
            tensorName: f(1, 'string'),
            quantParameterTensorNames: f(2, 'StringStringEntryProto', 'repeated'),
          },
        },
        GraphProto: {
          fields: {
            node: f(1, 'NodeProto', 'repeated'),
            name: f(2, 'string'),
            initializer: f(5, 'TensorProto', 'repeated'),
            sparseInitializer: f(15, 'SparseTensorProto', 'repeated'),
            docString: f(10, 'string'),
            input: f(11, 'ValueInfoProto', 'repeated'),
            output: f(12, 'ValueInfoProto', 'repeated'),
            valueInfo: f(13, 'ValueInfoProto', 'repeated'),
            quantizationAnnotation: f(14, 'TensorAnnotation', 'repeated'),
            metadataProps: f(16, 'StringStringEntryProto', 'repeated'),
          },
        },
        TensorProto: {
          fields: {
            dims: f(1, 'int64', 'repeated', unpacked),
            dataType: f(2, 'int32'),
            segment: f(3, 'Segment'),
            floatData: f(4, 'float', 'repeated', packed),
            int32Data: f(5, 'int32', 'repeated', packed),
            stringData: f(6, 'bytes', 'repeated'),
            int64Data: f(7, 'int64', 'repeated', packed),
            name: f(8, 'string'),
            docString: f(12, 'string'),
            rawData: f(9, 'bytes'),
            externalData: f(13, 'StringStringEntryProto', 'repeated'),
            dataLocation: f(14, 'DataLocation'),
            doubleData: f(10, 'double', 'repeated', packed),
            uint64Data: f(11, 'uint64', 'repeated', packed),
            metadataProps: f(16, 'StringStringEntryProto', 'repeated'),
          },
          nested: {
            Segment: { fields: { begin: f(1, 'int64'), end: f(2, 'int64') } },
            DataLocation: { values: { DEFAULT: 0, EXTERNAL: 1 } },
          },
        },
        SparseTensorProto: {
          fields: {
            values: f(1, 'TensorProto'),
            indices: f(2, 'TensorProto'),
            dims: f(3, 'int64', 'repeated', unpacked),
          },
        },
        TensorShapeProto: {
          fields: { dim: f(1, 'Dimension', 'repeated') },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
              fields: { dimValue: f(1, 'int64'), dimParam: f(2, 'string'), denotation: f(3, 'string') },
            },
          },
        },
        TypeProto: {
          oneofs: {
            value: {
              oneof: [
                'tensorType',
                'sequenceType',
                'mapType',
                'optionalType',
                'sparseTensorType',
                'opaqueType',
              ],
            },
          },
          fields: {
            tensorType: f(1, 'Tensor'),
            sequenceType: f(4, 'Sequence'),
            mapType: f(5, 'Map'),
            optionalType: f(9, 'Optional'),
            sparseTensorType: f(8, 'SparseTensor'),
            opaqueType: f(7, 'Opaque'),
            denotation: f(6, 'string'),
          },
          nested: {
            Tensor: { fields: { elemType: f(1, 'int32'), shape: f(2, 'TensorShapeProto') } },
            Sequence: { fields: { elemType: f(1, 'TypeProto') } },
            Map: { fields: { keyType: f(1, 'int32'), valueType: f(2, 'TypeProto') } },
            Optional: { fields: { elemType: f(1, 'TypeProto') } },
            SparseTensor: { fields: { elemType: f(1, 'int32'), shape: f(2, 'TensorShapeProto') } },
            Opaque: { fields: { domain: f(1, 'string'), name: f(2, 'string') } },
          },
        },
        OperatorSetIdProto: { fields: { domain: f(1, 'string'), version: f(2, 'int64') } },
        FunctionProto: {
          fields: {
            name: f(1, 'string'),
            input: f(4, 'string', 'repeated'),
            output: f(5, 'string', 'repeated'),
            attribute: f(6, 'string', 'repeated'),
            attributeProto: f(11, 'AttributeProto', 'repeated'),
            node: f(7, 'NodeProto', 'repeated'),
            docString: f(8, 'string'),
            opsetImport: f(9, 'OperatorSetIdProto', 'repeated'),
            domain: f(10, 'string'),
            overload: f(13, 'string'),
            valueInfo: f(12, 'ValueInfoProto', 'repeated'),
            metadataProps: f(14, 'StringStringEntryProto', 'repeated'),
          },
        },
      },
    },
  },
};

export const onnxRoot = protobuf.Root.fromJSON(descriptor);
export const ModelProtoType = onnxRoot.lookupType('onnx.ModelProto');
export const TensorProtoType = onnxRoot.lookupType('onnx.TensorProto');

/** toObject options: numbers for int64, enums as numbers, bytes kept as Uint8Array views. */
export const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: false };

/** TensorProto.DataType values. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

/** AttributeProto.AttributeType values. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export interface StringStringEntryProto {
  key?: string;
  value?: string;
}

export interface TensorProto {
  dims?: number[];
  dataType?: number;
  segment?: { begin?: number; end?: number };
  floatData?: number[];
  int32Data?: number[];
  stringData?: Uint8Array[];
  int64Data?: number[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData?: StringStringEntryProto[];
  dataLocation?: number;
  doubleData?: number[];
  uint64Data?: number[];
  metadataProps?: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims?: number[];
}

export interface TensorShapeProto {
  dim?: { dimValue?: number; dimParam?: string; denotation?: string }[];
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: TensorShapeProto };
  sequenceType?: { elemType?: TypeProto };
  mapType?: { keyType?: number; valueType?: TypeProto };
  optionalType?: { elemType?: TypeProto };
  sparseTensorType?: { elemType?: number; shape?: TensorShapeProto };
  opaqueType?: { domain?: string; name?: string };
  denotation?: string;
}

export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  docString?: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparseTensors?: SparseTensorProto[];
  typeProtos?: TypeProto[];
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  overload?: string;
  attribute?: AttributeProto[];
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  sparseInitializer?: SparseTensorProto[];
  docString?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  quantizationAnnotation?: { tensorName?: string; quantParameterTensorNames?: StringStringEntryProto[] }[];
  metadataProps?: StringStringEntryProto[];
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: number;
}

export interface FunctionProto {
  name?: string;
  input?: string[];
  output?: string[];
  attribute?: string[];
  attributeProto?: AttributeProto[];
  node?: NodeProto[];
  docString?: string;
  opsetImport?: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  valueInfo?: ValueInfoProto[];
  metadataProps?: StringStringEntryProto[];
}

export interface ModelProto {
  irVersion?: number;
  opsetImport?: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  metadataProps?: StringStringEntryProto[];
  trainingInfo?: { initialization?: GraphProto; algorithm?: GraphProto }[];
  functions?: FunctionProto[];
}
