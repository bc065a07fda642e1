/**
 * The independent judge (`eval.judge`): a geometry model that shares no weights with the reward's
 * latent geometry model, run on the decoded frames of each evaluated video — the RGB path of
 * src/stages/rgb-path.ts with the judge in Φ's place. A policy that learns to fool its reward
 * model does not fool a model it never saw, so `eval` reports the rewards and metrics the judge
 * reads beside the reward model's (as `judge/…` columns) and flags a base → final change on
 * which the two disagree in sign. Φ itself is not independent of a stitched LGM (the LGM keeps
 * Φ's later layers): judge with another model (the toy's `judge.onnx`; VGGT for an Any4D LGM).
 *
 * Frames are the 8-bit frames of the video (what the epipolar metric and the mp4 see), brought
 * to `eval.judge_outputs.frames_size` when it is set.
 *
 * @example
 *   const judge = await openJudge(config);                  // undefined when eval.judge is null
 *   const g = judge && (await judgeVideo(judge, decoded)); // geometry of one video
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { type DecodedVideo, rgb8ToUnitFrames } from '../media/vae.js';
import { type GeometrySample, sliceGeometry } from '../rewards/types.js';
import { runtimeOptions } from '../rl/policy.js';
import { checkFeedShape } from '../runtime/contract.js';
import { ModelSession } from '../runtime/session.js';
import { f32 } from '../shards/tensor.js';
import { batchArrays, checkGeometryOutputs, geometryFetch, readGeometryOutputs } from './geometry-outputs.js';
import { fitFrames } from './rgb-path.js';

export interface Judge {
  session: ModelSession;
  outputs: Config['eval']['judge_outputs'];
  release(): Promise<void>;
}

/**
 * Open `eval.judge` and check its contract (frames input, every mapped output); undefined when
 * no judge is configured. Exit 2 naming the key or file.
 *
 * @example
 *   const judge = await openJudge(config);
 */
export async function openJudge(config: Config): Promise<Judge | undefined> {
  const path = config.eval.judge;
  if (!path) return undefined;
  if (!existsSync(path)) throw new InputError(path, 'judge model not found (eval.judge)');
  const session = await ModelSession.open(path, runtimeOptions(config));
  const o = config.eval.judge_outputs;
  try {
    if (!session.inputNames.includes(o.frames_input))
      throw new InputError(
        session.source,
        `judge has no input '${o.frames_input}' (eval.judge_outputs.frames_input); it has ${session.inputNames.join(', ')}`,
      );
    checkGeometryOutputs(session, o, 'eval.judge_outputs');
  } catch (err) {
    await session.release();
    throw err;
  }
  return { session, outputs: o, release: () => session.release() };
}

/**
 * The judge's geometry of one decoded video (cameras converted as the mapping says).
 *
 * @example
 *   const g = await judgeVideo(judge, { rgb, frames: 8, height: 64, width: 64 });
 *   motion.compute(g);
 */
export async function judgeVideo(
  judge: Judge,
  video: DecodedVideo,
  from = 'decoded frames',
): Promise<GeometrySample> {
  const o = judge.outputs;
  const frames = fitFrames(
    f32(
      [1, video.frames, 3, video.height, video.width],
      rgb8ToUnitFrames(video.rgb, video.frames, video.height, video.width),
    ),
    o.frames_size,
  );
  checkFeedShape(judge.session.inputs, judge.session.source, o.frames_input, frames.shape, from, 'frames');
  const outs = await judge.session.run({ [o.frames_input]: frames }, geometryFetch(judge.session, o));
  const g = readGeometryOutputs(outs, o, 'eval.judge_outputs', judge.session.source);
  const [, F, h, w] = g.depth.shape as [number, number, number, number];
  return sliceGeometry(batchArrays(g), 0, F, h, w);
}
