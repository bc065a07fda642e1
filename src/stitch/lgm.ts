/**
 * Assembling the latent geometry model LGM = Φ_{ℓ+1:L} ∘ C as one ONNX model that meets the LGM
 * contract (onnx/README.md): input `latents` [B, C, F', H, W] (batch dynamic), Φ's outputs by
 * Φ's names, the trained weights as initializers — or, for training, the parameters as graph
 * inputs with a fixed batch.
 *
 * The suffix Φ_{ℓ+1:L} is `cutModel(Φ, { from: ℓ })`; its trainable parameters are its weights
 * (`isWeight`: floating-point initializers of more than one element that are not generated constants).
 *
 * @example
 *   const { model } = buildStitchedLgm({ phi, at: 'blocks.1.output', spec: PAPER_CONNECTOR, latent: [8, 8, 16, 16], width: 64, layout: 'tokens' });
 */
import { InputError } from '../errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { cutModel } from '../onnx/cut.js';
import { makeTensor, numElements, tensorToArray } from '../onnx/model.js';
import {
  DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '../onnx/proto.js';
import { Net, type ParamInfo } from '../toy/nn.js';
import { addConnector, type ConnectorSpec, type StitchLayout } from './connector.js';

export interface LgmSpec {
  phi: ModelProto;
  /** The stitch tensor ℓ. */
  at: string;
  spec: ConnectorSpec;
  /** One latent sample's shape [C, F', H, W]. */
  latent: number[];
  /** Φ's width D at the stitch point. */
  width: number;
  layout: StitchLayout;
  /** The contract's input name (`lgm_outputs.latents_input`). */
  latentsInput?: string;
  /** Trained values (connector and suffix) by name; missing ones keep Φ's values (the connector: seeded). */
  weights?: ReadonlyMap<string, Float32Array>;
  /** Parameters as graph inputs, batch fixed to this (a training graph); else initializers, batch `B`. */
  trainBatch?: number;
  seed?: number;
}

export interface StitchedLgm {
  model: ModelProto;
  /** Trainable parameters: the connector's, then the suffix's. */
  params: ParamInfo[];
  /** The suffix's outputs (Φ's outputs). */
  outputs: string[];
}

/** Names the graph builder and PyTorch's exporters give constants of the graph's arithmetic (not weights). */
const GENERATED_CONSTANT = /^(const(_\d+)?|onnx::.*|_?val_\d+|.*Constant.*)$/;

/**
 * A floating-point initializer that is a weight: more than one element (scalars are constants)
 * and not a generated constant's name (ray directions, pixel grids and LayerNorm's fixed scale
 * keep their meaning only if they stay as they are).
 *
 * @example
 *   isWeight(makeTensor('blocks.0.fc1.weight', [4, 8], new Float32Array(32))); // true
 */
export function isWeight(t: TensorProto): boolean {
  return (
    t.dataType === DataType.FLOAT && numElements(t.dims ?? []) > 1 && !GENERATED_CONSTANT.test(t.name ?? '')
  );
}

/**
 * Build the stitched model: connector nodes first, then Φ's suffix reading their output.
 *
 * @example
 *   const { model, params } = buildStitchedLgm({ ...spec, trainBatch: 4 }); // params as inputs
 */
export function buildStitchedLgm(o: LgmSpec): StitchedLgm {
  const suffix = cutModel(o.phi, { from: o.at });
  const others = suffix.inputs.filter((i) => i !== o.at);
  if (others.length) {
    throw new InputError(
      '--at',
      `Φ after '${o.at}' still reads its input${others.length > 1 ? 's' : ''} ${others.join(', ')}: choose a later stitch point`,
    );
  }
  const sg = suffix.model.graph ?? {};
  const suffixNodes = sg.node ?? [];
  const params: ParamInfo[] = [];
  const initializer: TensorProto[] = [];
  const inputs: { name: string; dims: number[] }[] = [];
  for (const t of sg.initializer ?? []) {
    const name = t.name ?? '';
    const trained = o.weights?.get(name);
    if (!isWeight(t)) {
      initializer.push(t);
      continue;
    }
    const dims = [...(t.dims ?? [])];
    const value = trained ?? Float32Array.from(tensorToArray(t) as Float32Array);
    if (value.length !== numElements(dims)) {
      throw new InputError('--resume', `weights for '${name}': ${value.length} values for shape [${dims}]`);
    }
    params.push({ name, shape: dims, value });
    if (o.trainBatch !== undefined) inputs.push({ name, dims });
    else initializer.push(trained ? makeTensor(name, dims, trained) : t);
  }
  // The builder sees the suffix's names first, so the connector's generated names cannot clash.
  const graph: GraphProto & { node: NodeProto[] } = {
    name: `${o.phi.graph?.name ?? 'phi'}:lgm`,
    node: [...suffixNodes],
    initializer,
    input: [],
    output: [],
    valueInfo: [],
  };
  const opset = o.phi.opsetImport?.find((x) => !x.domain || x.domain === 'ai.onnx')?.version ?? 18;
  const g = new GraphBuilder(graph.name ?? 'lgm', opset, graph);
  const { net, y } = connectorOn(g, o);
  g.op('Identity', [y], {}, { outputs: [o.at] });
  for (const p of inputs) g.input(p.name, 'float32', p.dims);
  // Topological order: the connector's nodes (appended last by the builder) go first.
  const connectorNodes = graph.node.slice(suffixNodes.length);
  graph.node = [...connectorNodes, ...suffixNodes];
  graph.output = (sg.output ?? []).map((v) => (o.trainBatch === undefined ? v : { name: v.name }));
  return {
    model: { ...o.phi, graph },
    params: [...net.params, ...params],
    outputs: (sg.output ?? []).map((v) => v.name ?? ''),
  };
}

/**
 * The connector alone as a model (phase 1's forward, and its held-out check): latents → `at`.
 *
 * @example
 *   const { model } = buildConnectorModel({ ...spec, trainBatch: 4 });
 */
export function buildConnectorModel(o: Omit<LgmSpec, 'phi'> & { opset?: number }): StitchedLgm {
  const g = new GraphBuilder('connector', o.opset ?? 18);
  const { net, y } = connectorOn(g, o);
  g.output(y, o.at);
  return { model: g.toModel(), params: net.params, outputs: [o.at] };
}

/** The connector on a fresh latents input of `g`: its output and the Net that holds its parameters. */
function connectorOn(g: GraphBuilder, o: Omit<LgmSpec, 'phi'>): { net: Net; y: string } {
  const B = o.trainBatch ?? 'B';
  const latents = g.input(o.latentsInput ?? 'latents', 'float32', [B, ...o.latent]);
  const net = new Net(g, {
    seed: o.seed ?? 0,
    weights: o.weights,
    paramsAsInputs: o.trainBatch !== undefined,
  });
  const y = addConnector(net, latents, o.spec, { channels: o.latent[0]!, width: o.width, layout: o.layout });
  return { net, y };
}
