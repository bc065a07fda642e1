/**
 * Colour maps for depth images, applied in code (sharp has none). The colours come from vega's
 * own schemes (the d3 turbo and viridis definitions), sampled once into a 256-entry table, so the
 * depth thumbnails and the report's plots speak the same palette.
 */
import { scheme } from 'vega';
import { check } from '../errors.js';

export type ColormapName = 'turbo' | 'viridis';

const tables = new Map<ColormapName, Uint8Array>();

/**
 * 256 × RGB lookup table of a colour map.
 *
 * @example
 *   const lut = colormapTable('turbo'); // lut[3*i .. 3*i+2] is the colour of i/255
 */
export function colormapTable(name: ColormapName): Uint8Array {
  let lut = tables.get(name);
  if (lut) return lut;
  const interpolate = scheme(name) as ((t: number) => string) | undefined;
  check(typeof interpolate === 'function', 'colormap', `unknown colour map '${name}'`);
  lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const m = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(interpolate(i / 255));
    check(m !== null, 'colormap', `unexpected colour '${interpolate(i / 255)}' from scheme '${name}'`);
    lut.set([Number(m[1]), Number(m[2]), Number(m[3])], 3 * i);
  }
  tables.set(name, lut);
  return lut;
}

export interface ColormapOptions {
  name?: ColormapName;
  /** Value mapped to the first colour; default the `lowPercentile` of the valid values. */
  min?: number;
  /** Value mapped to the last colour; default the `highPercentile` of the valid values. */
  max?: number;
  /** Percentiles (0–100) for the automatic range, so a few far pixels do not flatten the rest. Default 2 / 98. */
  lowPercentile?: number;
  highPercentile?: number;
  /** Map high values to the first colour (near = warm for depth with turbo). Default false. */
  reverse?: boolean;
  /** Colour of invalid values (non-finite, or outside `valid`). Default black. */
  invalidColor?: [number, number, number];
  /** Which values count as valid; default finite ones. Depth uses v > 0. */
  valid?: (v: number) => boolean;
}

export interface Colormapped {
  rgb: Uint8Array;
  min: number;
  max: number;
}

/**
 * Map scalars to RGB bytes through a colour map, clamping to [min, max].
 *
 * @example
 *   const { rgb } = applyColormap(depth, { name: 'turbo', reverse: true, valid: (d) => d > 0 });
 */
export function applyColormap(values: ArrayLike<number>, opts: ColormapOptions = {}): Colormapped {
  const lut = colormapTable(opts.name ?? 'turbo');
  const isValid = (v: number) => Number.isFinite(v) && (opts.valid ? opts.valid(v) : true);
  let { min, max } = opts;
  if (min === undefined || max === undefined) {
    const valid: number[] = [];
    for (let i = 0; i < values.length; i++) if (isValid(values[i]!)) valid.push(values[i]!);
    valid.sort((a, b) => a - b);
    const at = (p: number) => (valid.length ? valid[Math.round((p / 100) * (valid.length - 1))]! : 0);
    min ??= at(opts.lowPercentile ?? 2);
    max ??= at(opts.highPercentile ?? 98);
  }
  const span = max > min ? max - min : 1;
  const bad = opts.invalidColor ?? [0, 0, 0];
  const rgb = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!isValid(v)) {
      rgb.set(bad, 3 * i);
      continue;
    }
    let t = Math.min(1, Math.max(0, (v - min) / span));
    if (opts.reverse) t = 1 - t;
    const k = 3 * Math.round(t * 255);
    rgb[3 * i] = lut[k]!;
    rgb[3 * i + 1] = lut[k + 1]!;
    rgb[3 * i + 2] = lut[k + 2]!;
  }
  return { rgb, min, max };
}
