import { InputError } from '../errors.js';
import { ModelSession } from '../runtime/session.js';
import type { OnnxSummary } from './inspect.js';

/** Inputs and outputs through the runtime; op counts arrive with the ONNX graph layer. */
export async function inspectOnnx(path: string): Promise<OnnxSummary> {
  const s = await ModelSession.open(path, { graphOptimization: 'disabled' });
  try {
    return {
      type: 'onnx',
      path,
      opset: [],
      inputs: s.inputs.map((i) => ({ name: i.name, dtype: String(i.dtype), shape: i.shape })),
      outputs: s.outputs.map((i) => ({ name: i.name, dtype: String(i.dtype), shape: i.shape })),
      initializers: { count: 0, parameters: 0 },
      ops: {},
    };
  } catch (err) {
    throw new InputError(path, String(err));
  } finally {
    await s.release();
  }
}
