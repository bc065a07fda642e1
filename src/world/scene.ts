/**
 * Procedural toy scenes: a bounded room (floor, ceiling, four walls — bounded so no far surface
 * dominates a depth error, docs/METHOD.md pitfall 1) with a few textured boxes and spheres; in a
 * dynamic scene some objects move rigidly (oscillating translation plus a spin about the vertical).
 * World axes: y up, the room centred on the origin in x and z, floor at y = 0.
 */
import { Rng } from './random.js';

export type Pattern = 'checker' | 'stripes' | 'plain';

export interface Material {
  /** Base colour, components in [0, 1]. */
  color: [number, number, number];
  pattern: Pattern;
  /** Texture period in world (room) or object-local units. */
  period: number;
}

/**
 * Rigid motion of an object: its centre runs around a small horizontal circle at constant speed
 * (radius·ω per frame — never pausing, so its scene flow is never near zero) and it spins about the
 * vertical: centre(t) = p0 + radius·(cos(ωt+φ) − cos φ, 0, sin(ωt+φ) − sin φ), yaw = yaw0 + spin·t.
 */
export interface Motion {
  radius: number;
  omega: number;
  phase: number;
  spin: number;
}

export interface SceneObject {
  kind: 'box' | 'sphere';
  /** Box half-extents (x, y, z) or, for a sphere, [radius, radius, radius]. */
  half: [number, number, number];
  /** Centre at rest. */
  position: [number, number, number];
  /** Rotation about the vertical axis at rest (radians). */
  yaw: number;
  material: Material;
  /** Present on moving objects only. */
  motion?: Motion;
}

export interface Room {
  min: [number, number, number];
  max: [number, number, number];
  floor: Material;
  ceiling: Material;
  walls: Material;
}

export interface Scene {
  seed: number;
  room: Room;
  objects: SceneObject[];
}

export interface SceneOptions {
  /** Make some objects move rigidly. Default false. */
  dynamic?: boolean;
  /** How many objects (default 3 to 5 by the seed). */
  objects?: number;
  /** How many of them move when dynamic (default 1). */
  moving?: number;
}

/** Pose of an object at time t: rotation (object-to-world, row-major 3×3, a yaw) and centre. */
export interface ObjectPose {
  rotation: Float64Array;
  centre: Float64Array;
}

/**
 * Object pose at (possibly fractional) frame time t.
 *
 * @example
 *   objectPose(scene.objects[0], 3); // { rotation, centre }
 */
export function objectPose(o: SceneObject, t: number, out?: ObjectPose): ObjectPose {
  const pose = out ?? { rotation: new Float64Array(9), centre: new Float64Array(3) };
  let yaw = o.yaw;
  const c = pose.centre;
  c[0] = o.position[0];
  c[1] = o.position[1];
  c[2] = o.position[2];
  if (o.motion) {
    const m = o.motion;
    yaw += m.spin * t;
    c[0] += m.radius * (Math.cos(m.omega * t + m.phase) - Math.cos(m.phase));
    c[2] += m.radius * (Math.sin(m.omega * t + m.phase) - Math.sin(m.phase));
  }
  const cy = Math.cos(yaw);
  const sy = Math.sin(yaw);
  pose.rotation.set([cy, 0, sy, 0, 1, 0, -sy, 0, cy]);
  return pose;
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const k = (n: number) => (n + h * 6) % 6;
  const f = (n: number) => v - v * s * Math.max(0, Math.min(k(n), 4 - k(n), 1));
  return [f(5), f(3), f(1)];
}

/**
 * A deterministic room with 3–5 objects near its middle (the region cameras look at).
 *
 * @example
 *   const scene = makeScene(1, { dynamic: true });
 */
export function makeScene(seed: number, options: SceneOptions = {}): Scene {
  const rng = new Rng(seed);
  const room: Room = {
    min: [-4, 0, -4],
    max: [4, 3, 4],
    floor: { color: [0.75, 0.7, 0.6], pattern: 'checker', period: 0.5 },
    ceiling: { color: [0.9, 0.9, 0.92], pattern: 'plain', period: 1 },
    walls: { color: [0.55, 0.65, 0.8], pattern: 'stripes', period: 0.4 },
  };
  const count = options.objects ?? rng.int(3, 5);
  const objects: SceneObject[] = [];
  const hue0 = rng.next();
  for (let k = 0; k < count; k++) {
    const kind = rng.next() < 0.5 ? 'box' : 'sphere';
    const size = rng.uniform(0.25, 0.55);
    const half: [number, number, number] =
      kind === 'box' ? [size, rng.uniform(0.25, 0.7), rng.uniform(0.25, 0.55)] : [size, size, size];
    const bound = Math.hypot(half[0], half[2]);
    // Rejection sampling keeps objects apart, with a margin for the motion (at most 2·0.3).
    let position: [number, number, number] = [0, half[1], 0];
    for (let attempt = 0; attempt < 200; attempt++) {
      const r = rng.uniform(0, 1.5);
      const a = rng.uniform(0, 2 * Math.PI);
      position = [r * Math.cos(a), half[1], r * Math.sin(a)];
      const clear = objects.every((o) => {
        const ob = Math.hypot(o.half[0], o.half[2]);
        return Math.hypot(o.position[0] - position[0], o.position[2] - position[2]) > bound + ob + 0.7;
      });
      if (clear) break;
    }
    const pattern: Pattern = (['checker', 'stripes', 'plain'] as const)[rng.int(0, 2)]!;
    objects.push({
      kind,
      half,
      position,
      yaw: rng.uniform(0, Math.PI),
      material: {
        color: hsv((hue0 + k / count) % 1, rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95)),
        pattern,
        period: rng.uniform(0.1, 0.25),
      },
    });
  }
  if (options.dynamic) {
    const moving = Math.min(options.moving ?? 1, objects.length);
    for (let k = 0; k < moving; k++) {
      objects[k]!.motion = {
        radius: rng.uniform(0.2, 0.3),
        omega: rng.uniform(0.3, 0.5) * (rng.next() < 0.5 ? -1 : 1),
        phase: rng.uniform(0, 2 * Math.PI),
        spin: rng.uniform(0.03, 0.08) * (rng.next() < 0.5 ? -1 : 1),
      };
    }
  }
  return { seed, room, objects };
}
