import { Args, Flags } from '@oclif/core';
import { VggrpoCommand } from '../../cli/base.js';

export default class OnnxConvert extends VggrpoCommand {
  static override summary =
    'Convert a float32 model to float16 or bfloat16, as an export in that precision would be.';
  static override description =
    'Every float32 input, output, weight, constant and Cast to float32 becomes float16 (--to fp16) or bfloat16 (--to bf16), rounded to nearest even; inputs ONNX keeps float32 (Resize scales) stay. sample and grpo-step run such a denoiser with float32 latents, LoRA weights and optimiser state (onnx/README.md, "Half-precision exports"); a bfloat16 one is widened to float32 when loaded, so on the CPU it saves disk only.';
  static override examples = [
    '<%= config.bin %> onnx convert onnx/fixtures/denoiser.onnx --to fp16 --out /tmp/denoiser-fp16.onnx',
  ];
  static override args = { model: Args.string({ description: 'float32 model (.onnx)', required: true }) };
  static override outIsFolder = false;
  static override flags = {
    out: Flags.string({ description: 'model to write', required: true }),
    to: Flags.string({ description: 'precision to convert to', options: ['fp16', 'bf16'], required: true }),
    'external-data': Flags.integer({
      description: 'move tensors of at least this many bytes to OUT.data (models > 2 GB)',
    }),
  };

  async run(): Promise<{ out: string; precision: string }> {
    const { loadModel, saveModel } = await import('../../onnx/model.js');
    const { modelPrecision, toHalfModel } = await import('../../onnx/precision.js');
    const { DataType } = await import('../../onnx/proto.js');
    const { InputError } = await import('../../errors.js');
    const { args, flags } = await this.parse(OnnxConvert);
    const model = loadModel(args.model);
    const from = modelPrecision(model, args.model);
    if (from !== 'float32') throw new InputError(args.model, `is already ${from}; give a float32 model`);
    const et = flags.to === 'fp16' ? DataType.FLOAT16 : DataType.BFLOAT16;
    saveModel(toHalfModel(model, et), flags.out, { externalDataThreshold: flags['external-data'] });
    const precision = flags.to === 'fp16' ? 'float16' : 'bfloat16';
    this.note(`onnx convert: ${args.model} → ${flags.out} (${precision})`);
    this.log(flags.out);
    return { out: flags.out, precision };
  }
}
