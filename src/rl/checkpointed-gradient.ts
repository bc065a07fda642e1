/**
 * The denoiser's gradient computed segment by segment (per-block gradient checkpointing,
 * onnx/README.md): a forward pass through the segments that keeps only the values crossing
 * segment boundaries, then, in reverse order, each segment's gradient graph (its forward
 * recomputed + its VJP), fed the kept inputs and the cotangents later segments returned. Only
 * one segment's activations are alive at a time, instead of every block's.
 *
 * It answers the gradient graph's contract (src/onnx/autodiff.ts): feeds are the model's inputs
 * plus `grad:Y` for each float output Y, results the outputs plus `grad:P` for each wrt name —
 * or, in place of `grad:velocity`, the affine cotangent inputs of `withAffineCotangent`
 * (src/rl/policy-gradient.ts), so the one-run first inner step works unchanged.
 *
 * @example
 *   const g = await CheckpointedGradient.open(loraModel, { wrt: ['lora:*'], shapes }, runtime, label);
 *   const out = await g.run({ ...feeds, 'grad:velocity': gV });
 */
import { buildGradientGraph, gradName } from '../onnx/autodiff.js';
import { globMatch } from '../onnx/graph.js';
import { floatToHalf } from '../onnx/half.js';
import { allTensors, encodeModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/proto.js';
import { cutSegments, type Segment } from '../onnx/segments.js';
import { isFloatType } from '../onnx/shapes.js';
import { cachedModelFile } from '../runtime/model-cache.js';
import { gradientRuntime, ModelSession, type RuntimeOptions } from '../runtime/session.js';
import { f32, type Tensor, tensor } from '../shards/tensor.js';
import { COTANGENT_OFFSET, COTANGENT_SCALE } from './policy-gradient.js';

export interface CheckpointOptions {
  /** Parameter names or globs (initializers or graph inputs), as buildGradientGraph's wrt. */
  wrt: string[];
  /** Static shapes of the inputs (the gradient graphs are shape-specific). */
  shapes: Record<string, number[]>;
  /** Boundary tensors; default: after every `blocks.N.` block (src/onnx/segments.ts). */
  boundaries?: string[];
  /**
   * Keep every segment's sessions open between runs. Default: only for models without external
   * data. Open sessions hold their segment's weights, so kept sessions of a big model would hold
   * all its weights twice more (forward and gradient segments); streamed, only one segment's
   * session is open at a time, at the cost of opening it each run.
   */
  keepSessions?: boolean;
}

/** A segment's model: its file in the model cache (external data) or its bytes. */
type Source = string | Uint8Array;

interface Stage {
  segment: Segment;
  forward: Source;
  /** Undefined when nothing upstream needs this segment's gradient. */
  gradient?: Source;
  /** The segment's wrt: selected parameters and the float values earlier segments produced. */
  wrt: string[];
  floatOutputs: string[];
}

export class CheckpointedGradient {
  private readonly open = new Map<Source, ModelSession>();

  private constructor(
    private readonly stages: Stage[],
    private readonly runtime: Partial<RuntimeOptions>,
    private readonly keep: boolean,
    private readonly params: string[],
    private readonly paramShapes: Map<string, number[]>,
    private readonly outputs: string[],
    private readonly label: string,
  ) {}

  get boundaries(): number {
    return this.stages.length - 1;
  }

  /** Cut the model, write each segment's forward and gradient graph and open them. */
  static async open(
    model: ModelProto,
    opts: CheckpointOptions,
    runtime: Partial<RuntimeOptions>,
    label: string,
  ): Promise<CheckpointedGradient> {
    const plan = cutSegments(model, { shapes: opts.shapes, boundaries: opts.boundaries });
    const graph = model.graph ?? {};
    const names = [
      ...(graph.initializer ?? []).map((t) => t.name ?? ''),
      ...(graph.input ?? []).map((v) => v.name ?? ''),
    ];
    const params = [...new Set(opts.wrt.flatMap((p) => names.filter((n) => globMatch(p, n))))];
    const wanted = new Set(params);
    const graphInputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
    const stages: Stage[] = [];
    const external = [...allTensors(model)].some((t) => t.dataLocation === 1);
    for (const segment of plan.segments) {
      const m = segment.model;
      const own = [
        ...(m.graph?.initializer ?? []).map((t) => t.name ?? ''),
        ...segment.inputs.filter((i) => graphInputs.has(i)),
      ].filter((n) => wanted.has(n));
      const upstream = segment.inputs.filter(
        (i) => !graphInputs.has(i) && isFloatType(plan.info.types.get(i)?.elemType ?? 0),
      );
      const wrt = [...new Set([...own, ...upstream])];
      const forward = source(m, external);
      const gradient = wrt.length ? source(buildGradientGraph(m, { wrt }).model, external) : undefined;
      const floatOutputs = segment.outputs.filter((o) => isFloatType(plan.info.types.get(o)?.elemType ?? 0));
      stages.push({ segment, forward, gradient, wrt, floatOutputs });
    }
    const shapes = new Map(params.map((p) => [p, plan.info.types.get(p)?.shape ?? []]));
    // Without arenas: each session would keep its segment's peak activations between runs.
    const rt = { ...gradientRuntime(runtime), memoryArena: false, memoryPattern: false };
    const cg = new CheckpointedGradient(
      stages,
      rt,
      opts.keepSessions ?? !external,
      params,
      shapes,
      (graph.output ?? []).map((o) => o.name ?? ''),
      label,
    );
    // Kept sessions open now (a segment onnxruntime cannot load fails here); streamed ones per run.
    if (cg.keep)
      for (const st of stages)
        for (const src of [st.forward, st.gradient]) if (src) await cg.session(src, st);
    return cg;
  }

  private async session(src: Source, st: Stage): Promise<ModelSession> {
    const hit = this.open.get(src);
    if (hit) return hit;
    const kind = src === st.forward ? '' : ' gradient';
    const s = await ModelSession.open(
      src,
      this.runtime,
      `${this.label} (segment ${st.segment.index}${kind})`,
    );
    this.open.set(src, s);
    return s;
  }

  /** Close a streamed session once its run is over. */
  private async done(s: ModelSession): Promise<void> {
    if (this.keep) return;
    for (const [k, v] of this.open) if (v === s) this.open.delete(k);
    await s.release();
  }

  /** Outputs and `grad:P` for every selected parameter, as one gradient-graph run would give. */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const values = new Map<string, Tensor>(Object.entries(feeds));
    for (const st of this.stages) {
      const fwd = await this.session(st.forward, st);
      const out = await fwd.run(pick(values, st.segment.inputs));
      await this.done(fwd);
      for (const [k, v] of Object.entries(out)) values.set(k, v);
    }
    const cot = new Map<string, Float32Array>();
    for (const y of this.outputs) cot.set(y, seedCotangent(feeds, values, y));
    const grads = new Map<string, Float32Array>();
    for (let s = this.stages.length - 1; s >= 0; s--) {
      const st = this.stages[s]!;
      if (!st.gradient) continue;
      const gFeeds = pick(values, st.segment.inputs);
      for (const y of st.floatOutputs) {
        const t = values.get(y)!;
        gFeeds[gradName(y)] = cotangentLike(t, cot.get(y) ?? new Float32Array(t.data.length));
      }
      const gs = await this.session(st.gradient, st);
      const out = await gs.run(gFeeds, st.wrt.map(gradName));
      await this.done(gs);
      for (const p of st.wrt) {
        const g = out[gradName(p)]!.data as Float32Array;
        const into = this.params.includes(p) ? grads : cot;
        const acc = into.get(p);
        if (acc) for (let j = 0; j < acc.length; j++) acc[j]! += g[j]!;
        else into.set(p, Float32Array.from(g));
      }
      // Boundary values and cotangents past this segment are not needed again.
      for (const y of st.segment.outputs) {
        cot.delete(y);
        if (!this.outputs.includes(y)) values.delete(y);
      }
    }
    const result: Record<string, Tensor> = {};
    for (const y of this.outputs) result[y] = values.get(y)!;
    for (const p of this.params) {
      const shape = this.paramShapes.get(p)!;
      result[gradName(p)] = f32(shape, grads.get(p) ?? new Float32Array(shape.reduce((a, d) => a * d, 1)));
    }
    return result;
  }

  async release(): Promise<void> {
    for (const s of this.open.values()) await s.release();
    this.open.clear();
  }
}

/** What ModelSession.open takes for a segment model (as openModel decides, src/runtime/model-cache.ts). */
function source(model: ModelProto, external: boolean): Source {
  return external ? cachedModelFile(model) : encodeModel(model);
}

/**
 * A cotangent in its value's element type: a float16 boundary (a float16 denoiser) takes it in
 * float16, while the segment below returned it in float32 (autodiff sums half-precision
 * parameters' gradients in float32), where it was accumulated.
 */
function cotangentLike(value: Tensor, g: Float32Array): Tensor {
  if (value.dtype !== 'F16') return f32(value.shape, g);
  return tensor('F16', value.shape, Uint16Array.from(g, floatToHalf));
}

function pick(values: Map<string, Tensor>, names: string[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const n of names) {
    const v = values.get(n);
    if (!v) throw new Error(`checkpointed gradient: no value for '${n}'`);
    out[n] = v;
  }
  return out;
}

/**
 * ∂L/∂Y for a graph output: `grad:Y` as fed, or offset + scale·Y (the one-run form; float32
 * products and sums, as the graph withAffineCotangent writes computes them).
 */
/** The output whose cotangent the one-run form writes (grpo-step's `withAffineCotangent(…, 'velocity', …)`). */
const AFFINE_OUTPUT = 'velocity';

function seedCotangent(feeds: Record<string, Tensor>, values: Map<string, Tensor>, y: string): Float32Array {
  const given = feeds[gradName(y)];
  if (given) return given.data as Float32Array;
  const offset = feeds[COTANGENT_OFFSET];
  const scale = feeds[COTANGENT_SCALE];
  const v = values.get(y)!.data as Float32Array;
  if (!offset || !scale || y !== AFFINE_OUTPUT) return new Float32Array(v.length);
  const s = scale.data as Float32Array;
  const per = v.length / s.length;
  const o = offset.data as Float32Array;
  const g = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) g[j] = o[j]! + Math.fround(s[Math.floor(j / per)]! * v[j]!);
  return g;
}
