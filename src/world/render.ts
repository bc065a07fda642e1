/**
 * Ray-cast renderer of the toy world: per frame an RGB image and the exact geometry a perfect
 * geometry model would output — depth, world points, cameras, scene flow and a dynamic mask —
 * in the geometry-shard layout of README.md (Shard formats) (depth [F,h,w], points [F,h,w,3], extrinsics [F,3,4],
 * intrinsics [F,3,3], scene_flow [F,h,w,3]). Pixel (row i, column j) is the ray through
 * (u = j, v = i), principal point (W/2, H/2), the same convention the rewards unproject with, so
 * depth and points agree exactly.
 */
import { intrinsicsFromFov } from '../geometry/cameras.js';
import type { Material, ObjectPose, Scene } from './scene.js';
import { objectPose } from './scene.js';
import type { Trajectory } from './trajectory.js';

export interface RenderOptions {
  /** Image height (default 64). */
  height?: number;
  /** Image width (default = height). */
  width?: number;
  /** Vertical field of view in radians (default 60°); the horizontal one follows from square pixels. */
  fov?: number;
}

export interface RenderedVideo {
  frames: number;
  height: number;
  width: number;
  /** [F,h,w,3] 8-bit colour. */
  rgb: Uint8Array;
  /** [F,h,w] depth along the optical axis. */
  depth: Float32Array;
  /** [F,h,w,3] world points. */
  points: Float32Array;
  /** [F,3,4] camera-from-world. */
  extrinsics: Float32Array;
  /** [F,3,3] pixel intrinsics. */
  intrinsics: Float32Array;
  /** [F,h,w,3] world displacement of each surface point from frame f to frame f+1 (0 on static surfaces). */
  sceneFlow: Float32Array;
  /** [F,h,w] 1 where the pixel sees a moving object. */
  dynamicMask: Uint8Array;
  /** [F,h,w] all ones: ground truth is fully confident. */
  confidence: Float32Array;
}

const LIGHT = (() => {
  const l = [0.4, 1, 0.3];
  const n = Math.hypot(l[0]!, l[1]!, l[2]!);
  return [l[0]! / n, l[1]! / n, l[2]! / n];
})();

function texture(m: Material, x: number, y: number, z: number): number {
  const p = m.period;
  if (m.pattern === 'checker') {
    return (Math.floor(x / p) + Math.floor(y / p) + Math.floor(z / p)) & 1 ? 0.62 : 1;
  }
  if (m.pattern === 'stripes') return Math.floor((x + 0.5 * y + z) / p) & 1 ? 0.7 : 1;
  return 1;
}

/**
 * Render `traj` through `scene`. 8 frames at 64×64 take a few milliseconds.
 *
 * @example
 *   const video = renderVideo(makeScene(0), makeTrajectory('orbit', { frames: 8 }), { height: 32 });
 */
export function renderVideo(scene: Scene, traj: Trajectory, options: RenderOptions = {}): RenderedVideo {
  const height = options.height ?? 64;
  const width = options.width ?? height;
  const fov = options.fov ?? Math.PI / 3;
  const fovW = 2 * Math.atan((width / height) * Math.tan(fov / 2));
  const frames = traj.frames;
  const hw = height * width;
  const n = frames * hw;
  const rgb = new Uint8Array(n * 3);
  const depth = new Float32Array(n);
  const points = new Float32Array(n * 3);
  const extrinsics = Float32Array.from(traj.extrinsics);
  const intrinsics = new Float32Array(frames * 9);
  const sceneFlow = new Float32Array(n * 3);
  const dynamicMask = new Uint8Array(n);
  const confidence = new Float32Array(n).fill(1);

  const { room, objects } = scene;
  const nObj = objects.length;
  const poses: ObjectPose[] = objects.map(() => ({
    rotation: new Float64Array(9),
    centre: new Float64Array(3),
  }));
  const next: ObjectPose[] = objects.map(() => ({
    rotation: new Float64Array(9),
    centre: new Float64Array(3),
  }));
  const ol = new Float64Array(3);
  const dl = new Float64Array(3);

  for (let f = 0; f < frames; f++) {
    const K = intrinsicsFromFov(fov, fovW, height, width, intrinsics.subarray(9 * f, 9 * f + 9));
    const fx = K[0]!;
    const cx = K[2]!;
    const fy = K[4]!;
    const cy = K[5]!;
    const e = traj.extrinsics;
    const eo = 12 * f;
    // Camera centre c = −Rᵀt (float64, from the exact trajectory).
    const c0 = -(e[eo]! * e[eo + 3]! + e[eo + 4]! * e[eo + 7]! + e[eo + 8]! * e[eo + 11]!);
    const c1 = -(e[eo + 1]! * e[eo + 3]! + e[eo + 5]! * e[eo + 7]! + e[eo + 9]! * e[eo + 11]!);
    const c2 = -(e[eo + 2]! * e[eo + 3]! + e[eo + 6]! * e[eo + 7]! + e[eo + 10]! * e[eo + 11]!);
    const org = [c0, c1, c2];
    for (let k = 0; k < nObj; k++) {
      objectPose(objects[k]!, f, poses[k]);
      objectPose(objects[k]!, f + 1, next[k]);
    }
    for (let i = 0; i < height; i++) {
      const yn = (i - cy) / fy;
      for (let j = 0; j < width; j++) {
        const xn = (j - cx) / fx;
        // World ray direction Rᵀ[xn, yn, 1]: its parameter t is the depth along the optical axis.
        const d0 = e[eo]! * xn + e[eo + 4]! * yn + e[eo + 8]!;
        const d1 = e[eo + 1]! * xn + e[eo + 5]! * yn + e[eo + 9]!;
        const d2 = e[eo + 2]! * xn + e[eo + 6]! * yn + e[eo + 10]!;
        // Room: the nearest exit through one of its six inner faces.
        let tBest = Number.POSITIVE_INFINITY;
        let axis = 0;
        const dirs = [d0, d1, d2];
        for (let a = 0; a < 3; a++) {
          const d = dirs[a]!;
          if (d === 0) continue;
          const t = ((d > 0 ? room.max[a]! : room.min[a]!) - org[a]!) / d;
          if (t < tBest) {
            tBest = t;
            axis = a;
          }
        }
        let hit = -1; // -1: room
        let nl0 = 0;
        let nl1 = 0;
        let nl2 = 0;
        for (let k = 0; k < nObj; k++) {
          const o = objects[k]!;
          const R = poses[k]!.rotation;
          const T = poses[k]!.centre;
          // Ray in the object's frame: Rᵀ(c − T), Rᵀd.
          const q0 = c0 - T[0]!;
          const q1 = c1 - T[1]!;
          const q2 = c2 - T[2]!;
          for (let a = 0; a < 3; a++) {
            ol[a] = R[a]! * q0 + R[3 + a]! * q1 + R[6 + a]! * q2;
            dl[a] = R[a]! * d0 + R[3 + a]! * d1 + R[6 + a]! * d2;
          }
          if (o.kind === 'sphere') {
            const r = o.half[0];
            const A = dl[0]! * dl[0]! + dl[1]! * dl[1]! + dl[2]! * dl[2]!;
            const B = ol[0]! * dl[0]! + ol[1]! * dl[1]! + ol[2]! * dl[2]!;
            const C = ol[0]! * ol[0]! + ol[1]! * ol[1]! + ol[2]! * ol[2]! - r * r;
            const disc = B * B - A * C;
            if (disc < 0) continue;
            const t = (-B - Math.sqrt(disc)) / A;
            if (t > 1e-6 && t < tBest) {
              tBest = t;
              hit = k;
              nl0 = (ol[0]! + t * dl[0]!) / r;
              nl1 = (ol[1]! + t * dl[1]!) / r;
              nl2 = (ol[2]! + t * dl[2]!) / r;
            }
          } else {
            let tn = Number.NEGATIVE_INFINITY;
            let tf = Number.POSITIVE_INFINITY;
            let na = 0;
            let ns = 0;
            let miss = false;
            for (let a = 0; a < 3; a++) {
              const h = o.half[a]!;
              const d = dl[a]!;
              const p = ol[a]!;
              if (d === 0) {
                if (p < -h || p > h) miss = true;
                continue;
              }
              let t1 = (-h - p) / d;
              let t2 = (h - p) / d;
              let s = -1;
              if (t1 > t2) {
                const tt = t1;
                t1 = t2;
                t2 = tt;
                s = 1;
              }
              if (t1 > tn) {
                tn = t1;
                na = a;
                ns = s;
              }
              if (t2 < tf) tf = t2;
            }
            if (!miss && tn <= tf && tn > 1e-6 && tn < tBest) {
              tBest = tn;
              hit = k;
              nl0 = na === 0 ? ns : 0;
              nl1 = na === 1 ? ns : 0;
              nl2 = na === 2 ? ns : 0;
            }
          }
        }
        const p = f * hw + i * width + j;
        const x0 = c0 + tBest * d0;
        const x1 = c1 + tBest * d1;
        const x2 = c2 + tBest * d2;
        depth[p] = tBest;
        points[3 * p] = x0;
        points[3 * p + 1] = x1;
        points[3 * p + 2] = x2;
        let n0: number;
        let n1: number;
        let n2: number;
        let base: number[];
        let tex: number;
        if (hit < 0) {
          const d = dirs[axis]!;
          n0 = axis === 0 ? -Math.sign(d) : 0;
          n1 = axis === 1 ? -Math.sign(d) : 0;
          n2 = axis === 2 ? -Math.sign(d) : 0;
          const m = axis === 1 ? (d < 0 ? room.floor : room.ceiling) : room.walls;
          base = m.color;
          // Texture a hair inside the face so the face's own coordinate does not flicker across a cell edge.
          tex = texture(m, x0 + 1e-4 * n0, x1 + 1e-4 * n1, x2 + 1e-4 * n2);
        } else {
          const o = objects[hit]!;
          const R = poses[hit]!.rotation;
          const T = poses[hit]!.centre;
          n0 = R[0]! * nl0 + R[1]! * nl1 + R[2]! * nl2;
          n1 = R[3]! * nl0 + R[4]! * nl1 + R[5]! * nl2;
          n2 = R[6]! * nl0 + R[7]! * nl1 + R[8]! * nl2;
          base = o.material.color;
          const q0 = x0 - T[0]!;
          const q1 = x1 - T[1]!;
          const q2 = x2 - T[2]!;
          // Texture in object coordinates so it moves with the object.
          const l0 = R[0]! * q0 + R[3]! * q1 + R[6]! * q2;
          const l1 = R[1]! * q0 + R[4]! * q1 + R[7]! * q2;
          const l2 = R[2]! * q0 + R[5]! * q1 + R[8]! * q2;
          tex = texture(o.material, l0 - 1e-4 * nl0, l1 - 1e-4 * nl1, l2 - 1e-4 * nl2);
          if (o.motion) {
            dynamicMask[p] = 1;
            const Rn = next[hit]!.rotation;
            const Tn = next[hit]!.centre;
            sceneFlow[3 * p] = Rn[0]! * l0 + Rn[1]! * l1 + Rn[2]! * l2 + Tn[0]! - x0;
            sceneFlow[3 * p + 1] = Rn[3]! * l0 + Rn[4]! * l1 + Rn[5]! * l2 + Tn[1]! - x1;
            sceneFlow[3 * p + 2] = Rn[6]! * l0 + Rn[7]! * l1 + Rn[8]! * l2 + Tn[2]! - x2;
          }
        }
        const shade = (0.35 + 0.65 * Math.max(0, n0 * LIGHT[0]! + n1 * LIGHT[1]! + n2 * LIGHT[2]!)) * tex;
        for (let ch = 0; ch < 3; ch++) {
          rgb[3 * p + ch] = Math.max(0, Math.min(255, Math.round(255 * base[ch]! * shade)));
        }
      }
    }
  }
  return {
    frames,
    height,
    width,
    rgb,
    depth,
    points,
    extrinsics,
    intrinsics,
    sceneFlow,
    dynamicMask,
    confidence,
  };
}
