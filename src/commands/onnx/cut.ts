import { Args, Flags } from '@oclif/core';
import { VggrpoCommand } from '../../cli/base.js';
import { InputError } from '../../errors.js';

export interface CutCommandResult {
  out: string;
  inputs: string[];
  outputs: string[];
  nodes: number;
  droppedInitializers: number;
}

export default class OnnxCut extends VggrpoCommand {
  static override summary =
    'Cut a model at a named tensor: the suffix after it (--from) or the prefix up to it (--to).';
  static override description =
    'With --from TENSOR the new model takes TENSOR as its input (with its inferred shape; a symbolic batch dim stays symbolic) and keeps only the nodes its outputs still need; an output that still reads an original input keeps that input. With --to TENSOR, TENSOR becomes the only output. Both: the segment between them. Unused initializers are dropped. This is the graph surgery `vggrpo stitch` does (onnx/README.md, Stitching).';
  static override examples = [
    '<%= config.bin %> onnx cut geometry_rgb.onnx --from blocks.1.output --out phi-suffix.onnx',
    '<%= config.bin %> onnx cut geometry_rgb.onnx --to blocks.1.output --out phi-prefix.onnx',
  ];
  static override args = { model: Args.string({ description: 'model to cut (.onnx)', required: true }) };
  static override outIsFolder = false;
  static override flags = {
    out: Flags.string({ description: 'model to write', required: true }),
    from: Flags.string({ description: 'tensor that becomes the input (the suffix)' }),
    to: Flags.string({ description: 'tensor that becomes the output (the prefix)' }),
    shape: Flags.string({
      description: 'INPUT=d0,d1,… or DIM=value for a dynamic input or dim (repeatable)',
      multiple: true,
    }),
    'external-data': Flags.integer({
      description: 'move tensors of at least this many bytes to OUT.data (models > 2 GB)',
    }),
  };

  async run(): Promise<CutCommandResult> {
    const { cutModel } = await import('../../onnx/cut.js');
    const { parseShapes } = await import('../../onnx/cli-ops.js');
    const { loadModel, saveModel } = await import('../../onnx/model.js');
    const { args, flags } = await this.parse(OnnxCut);
    if (flags.from === undefined && flags.to === undefined)
      throw new InputError('--from', 'give --from TENSOR or --to TENSOR');
    let r: ReturnType<typeof cutModel>;
    try {
      r = cutModel(loadModel(args.model), {
        from: flags.from,
        to: flags.to,
        shapes: parseShapes(flags.shape),
      });
    } catch (err) {
      if (err instanceof InputError && err.where === 'model') throw new InputError(args.model, err.fault);
      if (err instanceof InputError && err.where.startsWith('--'))
        throw new InputError(`${err.where} (${args.model})`, err.fault);
      throw err;
    }
    saveModel(r.model, flags.out, { externalDataThreshold: flags['external-data'] });
    this.note(
      `onnx cut: ${r.nodes} nodes, inputs ${r.inputs.join(', ')}; outputs ${r.outputs.join(', ')}; ${r.droppedInitializers} initializers dropped → ${flags.out}`,
    );
    this.log(flags.out);
    return {
      out: flags.out,
      inputs: r.inputs,
      outputs: r.outputs,
      nodes: r.nodes,
      droppedInitializers: r.droppedInitializers,
    };
  }
}
