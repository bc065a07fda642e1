/**
 * The reward registry: adding a reward is one file exporting a `Reward` plus one line here.
 * Names are the config's `rewards.<name>` keys and the shard's `reward/<name>` tensors.
 *
 * @example
 *   const r = getReward('motion');
 *   r.compute(sample, r.parseOptions(config.rewards.motion.options));
 */
import { InputError } from '../errors.js';
import { motion } from './motion.js';
import { reprojection } from './reprojection.js';
import type { Reward } from './types.js';

export const REWARDS: Readonly<Record<string, Reward<any>>> = Object.freeze({
  [motion.name]: motion,
  [reprojection.name]: reprojection,
});

/** The reward called `name`; an unknown name is an InputError at `where`. */
export function getReward(name: string, where = `rewards.${name}`): Reward<any> {
  const r = REWARDS[name];
  if (!r) throw new InputError(where, `unknown reward '${name}' (known: ${Object.keys(REWARDS).join(', ')})`);
  return r;
}

export type { MotionOptions, Smoothness } from './motion.js';
export { cameraSmoothness, MOTION_DEFAULTS, motion } from './motion.js';
export type { MotionGradient } from './motion-vjp.js';
export { motionVjp } from './motion-vjp.js';
export { resolveOptions } from './options.js';
export type { ReprojectionDetail, ReprojectionOptions } from './reprojection.js';
export { REPROJECTION_DEFAULTS, reprojection, reprojectionConsistency } from './reprojection.js';
export type { ReprojectionGradient, ReprojectionTrace } from './reprojection-vjp.js';
export { frozenReprojection, reprojectionVjp, traceReprojection } from './reprojection-vjp.js';
export { sceneScale } from './scale.js';
export type { GeometrySample, Reward } from './types.js';
export { sliceGeometry } from './types.js';
