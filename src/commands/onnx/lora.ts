import { join } from 'node:path';
import { Args, Flags } from '@oclif/core';
import { numberFlag, VggrpoCommand } from '../../cli/base.js';
import { InputError } from '../../errors.js';

export default class OnnxLora extends VggrpoCommand {
  static override summary =
    'Inject LoRA branches into MatMul/Gemm weights, or merge a trained adapter into them.';
  static override description =
    'Each MatMul/Gemm whose weight initializer matches a --target glob becomes y = xW + (α/r)·(x·A)·B with A [in, r] and B [r, out] as new graph inputs lora:<weight>:A and lora:<weight>:B (Gemm transB honoured). With A = B = 0 the graph is the reference model. --merge CHECKPOINT_DIR instead folds a trained adapter into the weights (a plain model for deployment).';
  static override examples = [
    '<%= config.bin %> onnx lora onnx/fixtures/denoiser.onnx --out /tmp/den.lora.onnx --rank 4 --alpha 8 --target "*attn*.weight"',
    '<%= config.bin %> onnx lora onnx/fixtures/denoiser.onnx --merge runs/toy/iter-0029/policy --out denoiser.merged.onnx',
  ];
  static override args = { model: Args.string({ description: 'base model (.onnx)', required: true }) };
  /** --out names the model file to write. */
  static override outIsFolder = false;
  static override flags = {
    out: Flags.string({ description: 'model to write', required: true }),
    rank: Flags.integer({ description: 'LoRA rank r', min: 1, default: 4 }),
    alpha: Flags.string({ description: 'LoRA α (scale α/r)', default: '8' }),
    target: Flags.string({ description: 'weight-initializer glob (repeatable)', multiple: true }),
    merge: Flags.string({ description: 'policy checkpoint folder to fold into the weights' }),
    'external-data': Flags.integer({
      description: 'move tensors of at least this many bytes to OUT.data (models > 2 GB)',
    }),
  };

  async run(): Promise<{ out: string; adapters: { weight: string; inDim: number; outDim: number }[] }> {
    // Modules load on use, so oclif's command discovery stays cheap.
    const { loraCommand } = await import('../../onnx/cli-ops.js');
    const { injectLora, mergeLora } = await import('../../onnx/lora.js');
    const { loadModel, saveModel } = await import('../../onnx/model.js');
    const { loadCheckpoint } = await import('../../rl/checkpoint.js');
    const { args, flags } = await this.parse(OnnxLora);
    if (flags.merge) {
      const ckpt = loadCheckpoint(flags.merge, { adapterOnly: true });
      const base = loadModel(args.model);
      // injectLora rewrites the graph it is given: find the adapters on a copy.
      const { adapters } = injectLora(loadModel(args.model), {
        rank: ckpt.lora.rank,
        alpha: ckpt.lora.alpha,
        targets: ckpt.lora.adapters.map((a) => a.weight.replace(/[*?[\]]/g, '?')),
      });
      const missing = ckpt.lora.adapters.filter((a) => !adapters.some((b) => b.weight === a.weight));
      if (missing.length) {
        throw new InputError(
          join(flags.merge, 'adapter_model.safetensors'),
          `adapter for '${missing[0]!.weight}' matches no MatMul/Gemm weight of ${args.model}`,
        );
      }
      const merged = mergeLora(base, adapters, Object.fromEntries(ckpt.lora.params));
      saveModel(merged, flags.out, { externalDataThreshold: flags['external-data'] });
      this.note(`onnx lora: merged ${adapters.length} adapters → ${flags.out}`);
      this.log(flags.out);
      return { out: flags.out, adapters };
    }
    if (!flags.target?.length)
      throw new InputError('--target', 'give at least one weight glob (or --merge CHECKPOINT_DIR)');
    const r = loraCommand({
      model: args.model,
      out: flags.out,
      rank: flags.rank,
      alpha: numberFlag(flags.alpha, 'alpha')!,
      targets: flags.target,
      externalDataThreshold: flags['external-data'],
    });
    this.note(`onnx lora: ${r.adapters.length} adapters (rank ${flags.rank}) → ${r.out}`);
    this.log(r.out);
    return r;
  }
}
