/**
 * What a toy prompt means to the toy world: its words pick the camera-path family (orbit,
 * dolly/push, pan/sweep, arc/rise), whether something moves (moving, rolling, sliding), and — by
 * a hash of the whole prompt — the scene seed. The pretraining data pairs each prompt with videos
 * of that scenario, smooth and jittery, so the base policy's samples differ in camera smoothness.
 *
 * @example
 *   promptScenario('orbit around the red box in a small room'); // { family: 'orbit', dynamic: false, sceneSeed: … }
 */
import type { TrajectoryFamily } from '../world/trajectory.js';

export interface PromptScenario {
  family: TrajectoryFamily;
  dynamic: boolean;
  sceneSeed: number;
}

const FAMILY_WORDS: [RegExp, TrajectoryFamily][] = [
  [/\b(orbit|orbits|orbiting|circle|circling)\b/, 'orbit'],
  [/\b(dolly|push|pushes|toward|towards|approach)\b/, 'dolly'],
  [/\b(pan|pans|panning|sweep|sweeps|across)\b/, 'pan'],
  [/\b(arc|arcs|rise|rising|upward|over)\b/, 'arc'],
];
const FAMILY_ORDER: TrajectoryFamily[] = ['orbit', 'dolly', 'pan', 'arc'];

/** 32-bit FNV-1a of the prompt's UTF-16 code units. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * The scenario a prompt describes (first matching family word wins; no family word: by hash).
 *
 * @example
 *   promptScenario('pan across a room with a moving box').dynamic; // true
 */
export function promptScenario(prompt: string): PromptScenario {
  const text = prompt.toLowerCase();
  const h = hash(text.trim());
  let family = FAMILY_ORDER[h % 4]!;
  let first = Number.POSITIVE_INFINITY;
  for (const [re, fam] of FAMILY_WORDS) {
    const m = re.exec(text);
    if (m && m.index < first) {
      first = m.index;
      family = fam;
    }
  }
  return { family, dynamic: /\b(moving|rolling|sliding|drifting)\b/.test(text), sceneSeed: h % 100_000 };
}

const VERBS: Record<TrajectoryFamily, string[]> = {
  orbit: ['orbit around', 'circle around', 'orbit slowly around'],
  dolly: ['dolly toward', 'push in on', 'slowly push toward'],
  pan: ['pan across', 'pan slowly over', 'sweep across'],
  arc: ['arc upward around', 'arc over', 'rise in an arc around'],
};
const COLOURS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'white', 'teal'];
const THINGS = ['box', 'sphere', 'boxes', 'spheres'];
const PLACES = [
  'in a small room',
  'on a checkered floor',
  'near the striped wall',
  'in the middle of the room',
];

/**
 * `n` synthetic prompts from the toy grammar (verb, colour, object, place; some with a moving
 * object), deterministic from `seed`, skipping any in `exclude` — the pretraining prompt pool
 * beside examples/toy/prompts.txt.
 *
 * @example
 *   syntheticPrompts(64, 0, heldOut); // ['circle around the teal spheres near the striped wall', …]
 */
export function syntheticPrompts(n: number, seed: number, exclude: readonly string[] = []): string[] {
  const skip = new Set(exclude.map((p) => p.trim().toLowerCase()));
  const out: string[] = [];
  let s = (seed * 2654435761 + 12345) >>> 0;
  const next = (k: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 4294967296) * k);
  };
  for (let guard = 0; out.length < n && guard < 100 * n; guard++) {
    const fam = FAMILY_ORDER[next(4)]!;
    const verb = VERBS[fam][next(3)]!;
    const moving = next(2) === 1 ? 'the moving ' : 'the ';
    const p = `${verb} ${moving}${COLOURS[next(COLOURS.length)]} ${THINGS[next(THINGS.length)]} ${PLACES[next(PLACES.length)]}`;
    if (!skip.has(p) && !out.includes(p)) out.push(p);
  }
  return out;
}
