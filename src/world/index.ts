/**
 * The synthetic toy world: seeded scenes, camera paths and a renderer producing ground-truth
 * geometry in the geometry-shard layout — what tests, benchmarks and the toy experiment use in
 * place of a real video model.
 *
 * @example
 *   import { makeScene, makeTrajectory, renderVideo } from '../world/index.js';
 *   const video = renderVideo(makeScene(0, { dynamic: true }), makeTrajectory('arc', { frames: 8 }), { height: 32 });
 */
export type { GeometryBatch } from './batch.js';
export { batchGeometry } from './batch.js';
export { Rng } from './random.js';
export type { RenderedVideo, RenderOptions } from './render.js';
export { renderVideo } from './render.js';
export type { Material, Motion, ObjectPose, Room, Scene, SceneObject, SceneOptions } from './scene.js';
export { makeScene, objectPose } from './scene.js';
export type { Trajectory, TrajectoryFamily, TrajectoryOptions } from './trajectory.js';
export { makeTrajectory, TRAJECTORY_FAMILIES } from './trajectory.js';
