import { Args, Flags } from '@oclif/core';
import { VggrpoCommand } from '../../cli/base.js';
import { InputError } from '../../errors.js';
import type { GradCommandResult } from '../../onnx/cli-ops.js';

export default class OnnxGrad extends VggrpoCommand {
  static override summary =
    'Write a gradient model: the forward graph plus vector–Jacobian products, in standard ONNX ops.';
  static override description =
    'The new model has every input of MODEL plus grad:Y (the cotangent, shaped like Y) for each float output Y, and every output plus grad:P for each selected parameter P (Σ_Y (∂Y/∂P)ᵀ·grad:Y). --wrt defaults to every floating-point initializer (a name the exporter writes as Identity of a shared initializer is a parameter of its own); graph inputs may be named too (e.g. gradients w.r.t. latents for reward guidance). Dynamic dimensions need --shape. Shape-like inputs (Reshape/Expand shapes, Slice starts/ends/axes/steps, Squeeze/Unsqueeze/reduction axes, Split sizes, Tile repeats, Pad pads, Gather indices, Range bounds) may stay graph inputs: the gradient model computes what it needs from the fed values at run time, so one model serves every value; Resize scales/sizes and Dropout ratio/mode must be constants. Half precision: a float16 graph gets a float16 gradient graph (constants in float16, onnxruntime has the CPU kernels), with every grad:P summed and returned in float32; a bfloat16 graph is differentiated as its float32 widening (inputs, outputs, parameters and grad:P float32, Casts to bfloat16 keep their rounding), since onnxruntime-node has no bfloat16 arithmetic kernels on the CPU and cannot create bfloat16 tensors.';
  static override examples = [
    '<%= config.bin %> onnx grad onnx/fixtures/denoiser.onnx --out /tmp/den.grad.onnx --shape B=2',
    '<%= config.bin %> onnx grad lgm.onnx --out lgm.grad.onnx --wrt latents --shape latents=1,16,5,60,104',
  ];
  static override args = { model: Args.string({ description: 'forward model (.onnx)', required: true }) };
  /** --out names the model file to write. */
  static override outIsFolder = false;
  static override flags = {
    out: Flags.string({ description: 'gradient model to write', required: true }),
    wrt: Flags.string({
      description: 'parameter name or glob (repeatable; default: every float initializer)',
      multiple: true,
    }),
    shape: Flags.string({
      description: 'INPUT=d0,d1,… or DIM=value for a dynamic input or dim (repeatable)',
      multiple: true,
    }),
    'external-data': Flags.integer({
      description: 'move tensors of at least this many bytes to OUT.data (models > 2 GB)',
    }),
  };

  async run(): Promise<GradCommandResult> {
    // Modules load on use, so oclif's command discovery stays cheap.
    const { gradCommand, parseShapes } = await import('../../onnx/cli-ops.js');
    const { loadModel } = await import('../../onnx/model.js');
    const { args, flags } = await this.parse(OnnxGrad);
    let wrt = flags.wrt;
    if (!wrt) {
      // Default: every floating-point initializer (F32, F16, F64, BF16) and tied name.
      const { defaultParams } = await import('../../onnx/autodiff.js');
      wrt = defaultParams(loadModel(args.model));
      if (wrt.length === 0)
        throw new InputError(args.model, 'has no floating-point initializer; name parameters with --wrt');
    }
    let r: GradCommandResult;
    try {
      r = gradCommand({
        model: args.model,
        out: flags.out,
        wrt,
        shapes: parseShapes(flags.shape),
        externalDataThreshold: flags['external-data'],
      });
    } catch (err) {
      // The graph layer says 'model'; a user needs the file.
      if (err instanceof InputError && err.where === 'model') throw new InputError(args.model, err.fault);
      throw err;
    }
    for (const w of r.warnings) this.note(`warning: ${w}`);
    this.note(`onnx grad: ${r.params.length} parameters, ${r.nodes} nodes → ${r.out}`);
    this.log(r.out);
    return r;
  }
}
