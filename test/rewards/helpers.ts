/** Shared builders for the reward tests: ground-truth samples from the toy world and rigid/scale edits. */
import { matMul3 } from '../../src/geometry/mat3.js';
import { expSO3 } from '../../src/geometry/so3.js';
import type { GeometrySample } from '../../src/rewards/types.js';
import { makeScene, makeTrajectory, renderVideo, type TrajectoryFamily } from '../../src/world/index.js';

export function groundTruth(
  family: TrajectoryFamily,
  opts: {
    seed?: number;
    dynamic?: boolean;
    frames?: number;
    size?: number;
    jitterPos?: number;
    jitterRot?: number;
  } = {},
): GeometrySample & { dynamicMask: Uint8Array } {
  const traj = makeTrajectory(family, {
    frames: opts.frames ?? 8,
    jitterPos: opts.jitterPos,
    jitterRot: opts.jitterRot,
    seed: opts.seed,
  });
  return renderVideo(makeScene(opts.seed ?? 1, { dynamic: opts.dynamic }), traj, { height: opts.size ?? 32 });
}

/**
 * The same geometry after X ↦ s·G·X + T (G a rotation): points and flow move, depth scales,
 * cameras become R' = R·Gᵀ, t' = s·t − R·Gᵀ·T.
 */
export function transformSample(g: GeometrySample, s: number, omega: number[], T: number[]): GeometrySample {
  const G = expSO3(omega);
  const points = new Float32Array(g.points.length);
  for (let p = 0; p < g.points.length; p += 3) {
    for (let r = 0; r < 3; r++) {
      points[p + r] =
        s * (G[3 * r]! * g.points[p]! + G[3 * r + 1]! * g.points[p + 1]! + G[3 * r + 2]! * g.points[p + 2]!) +
        T[r]!;
    }
  }
  let sceneFlow: Float32Array | undefined;
  if (g.sceneFlow) {
    const f = g.sceneFlow;
    sceneFlow = new Float32Array(f.length);
    for (let p = 0; p < f.length; p += 3) {
      for (let r = 0; r < 3; r++)
        sceneFlow[p + r] = s * (G[3 * r]! * f[p]! + G[3 * r + 1]! * f[p + 1]! + G[3 * r + 2]! * f[p + 2]!);
    }
  }
  const extrinsics = new Float64Array(g.extrinsics.length);
  const Gt = Float64Array.of(G[0]!, G[3]!, G[6]!, G[1]!, G[4]!, G[7]!, G[2]!, G[5]!, G[8]!);
  for (let f = 0; f < g.frames; f++) {
    const o = 12 * f;
    const R = Float64Array.from([0, 1, 2, 4, 5, 6, 8, 9, 10].map((k) => g.extrinsics[o + k]!));
    const RGt = matMul3(R, Gt);
    for (let r = 0; r < 3; r++) {
      let t = s * g.extrinsics[o + 4 * r + 3]!;
      for (let c = 0; c < 3; c++) {
        extrinsics[o + 4 * r + c] = RGt[3 * r + c]!;
        t -= RGt[3 * r + c]! * T[c]!;
      }
      extrinsics[o + 4 * r + 3] = t;
    }
  }
  return {
    ...g,
    depth: g.depth.map((d) => d * s),
    points,
    sceneFlow,
    extrinsics,
  };
}
