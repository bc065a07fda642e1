/**
 * Plots for the report: vega-lite specs compiled with vega-lite and rendered to SVG strings by
 * vega's View in Node (renderer 'none', no browser, no canvas). Missing values (null / NaN)
 * are left out of lines and bars rather than drawn as 0.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec };

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif';

/** Shared look: quiet axes, light grid, the report's font. */
const CONFIG = {
  font: FONT,
  view: { stroke: null },
  axis: {
    gridColor: '#e6e8eb',
    domainColor: '#9aa1a9',
    tickColor: '#9aa1a9',
    labelColor: '#3c4148',
    titleColor: '#3c4148',
  },
  legend: { labelColor: '#3c4148', titleColor: '#3c4148', orient: 'bottom' },
  title: { anchor: 'start', color: '#1d2126', fontSize: 14, fontWeight: 600 },
  range: { category: { scheme: 'tableau10' } },
} as const;

/**
 * Render a vega-lite spec to an SVG string.
 *
 * @example
 *   const svg = await renderSvg(lineSpec({ title: 'reward', series: [{ name: 'motion', y: [0.5, 0.6] }] }));
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const withConfig = { ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const view = new View(parse(compile(withConfig).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

export interface Curve {
  name: string;
  /** y values; null or NaN for a missing point (a gap, not a 0). */
  y: readonly (number | null)[];
  /** x values (default 0, 1, 2, …). */
  x?: readonly number[];
}

/**
 * Line plot of several curves over iterations (one line per curve, points marked).
 *
 * @example
 *   lineSpec({ title: 'Mean reward', xTitle: 'iteration', yTitle: 'reward', series: [{ name: 'motion', y }] });
 */
export function lineSpec(opts: {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  series: readonly Curve[];
  width?: number;
  height?: number;
}): TopLevelSpec {
  const values = opts.series.flatMap((s) =>
    s.y.map((y, i) => ({ series: s.name, x: s.x?.[i] ?? i, y: finite(y) ? y : null })),
  );
  const integerX = values.every((v) => Number.isInteger(v.x));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: opts.title } : {}),
    width: opts.width ?? 420,
    height: opts.height ?? 240,
    data: { values },
    // A missing value breaks the line (a gap) instead of bridging or dropping to 0.
    mark: { type: 'line', point: { size: 30 }, strokeWidth: 2, invalid: 'break-paths-filter-domains' },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: opts.xTitle ?? 'iteration',
        scale: { zero: false },
        ...(integerX ? { axis: { tickMinStep: 1, format: 'd' } } : {}),
      },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle ?? '', scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: opts.series.map((s) => s.name) },
    },
  };
}

export interface CameraPath {
  name: string;
  /** Camera centres [N, 3] (world, OpenCV axes: x right, y down, z forward). */
  centres: ArrayLike<number>;
}

/** The square of the x–z plane a camera-path plot shows: its centre and half its side. */
export interface CameraView {
  x: number;
  z: number;
  half: number;
}

/** Base and final in one colour pair, everywhere the report sets them against each other. */
export const PAIR_COLOURS = { base: '#4c78a8', final: '#f58518', other: '#79706e' } as const;

/**
 * The square that holds every finite x–z camera centre of `paths`, with a 10% margin, so panels
 * drawn with one view compare at a glance (a circle stays a circle).
 *
 * @example
 *   const view = cameraView([...base.paths, ...final.paths]);
 */
export function cameraView(paths: readonly CameraPath[]): CameraView {
  const xs: number[] = [];
  const zs: number[] = [];
  for (const p of paths)
    for (let i = 0; i + 2 < p.centres.length; i += 3)
      if (finite(p.centres[i]) && finite(p.centres[i + 2])) {
        xs.push(p.centres[i]!);
        zs.push(p.centres[i + 2]!);
      }
  const mid = (a: number[]) => (a.length ? (Math.min(...a) + Math.max(...a)) / 2 : 0);
  const range = (a: number[]) => (a.length ? Math.max(...a) - Math.min(...a) : 0);
  return { x: mid(xs), z: mid(zs), half: (Math.max(range(xs), range(zs)) || 1) * 0.55 };
}

/**
 * Top-down camera paths: x against z of each path's camera centres, in frame order, with equal
 * units on both axes and a mark at each path's first camera. With `colour`, every path is drawn
 * in it and the legend is left out (a panel of one set's samples); otherwise one colour a path.
 * The plot area is `size` pixels square; `view` defaults to cameraView(paths).
 *
 * @example
 *   cameraPathSpec({ title: 'Cameras', paths: [{ name: 'reference', centres: cameraCentres(ext) }] });
 */
export function cameraPathSpec(opts: {
  title?: string;
  paths: readonly CameraPath[];
  size?: number;
  view?: CameraView;
  colour?: string;
}): TopLevelSpec {
  const values = opts.paths.flatMap((p) =>
    Array.from({ length: p.centres.length / 3 }, (_, i) => ({
      path: p.name,
      frame: i,
      x: p.centres[3 * i]!,
      z: p.centres[3 * i + 2]!,
      start: i === 0,
    })).filter((v) => finite(v.x) && finite(v.z)),
  );
  const v = opts.view ?? cameraView(opts.paths);
  const size = opts.size ?? 340;
  const colour = opts.colour
    ? { color: { value: opts.colour }, detail: { field: 'path', type: 'nominal' } }
    : { color: { field: 'path', type: 'nominal', title: null, sort: opts.paths.map((p) => p.name) } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: opts.title } : {}),
    width: size,
    height: size,
    data: { values },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: 'x (right)',
        scale: { domain: [v.x - v.half, v.x + v.half], nice: false },
      },
      y: {
        field: 'z',
        type: 'quantitative',
        title: 'z (forward)',
        scale: { domain: [v.z - v.half, v.z + v.half], nice: false },
      },
      ...colour,
    },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 2, opacity: opts.colour ? 0.75 : 1, point: { size: 14 } },
        encoding: { order: { field: 'frame' } },
      },
      {
        transform: [{ filter: 'datum.start' }],
        mark: { type: 'point', shape: 'square', size: 70, filled: true },
      },
    ],
  } as TopLevelSpec;
}

export interface Bar {
  label: string;
  value: number | null;
  /** Bars with the same label and different groups stand side by side. */
  group?: string;
}

/**
 * Bar chart of labelled values, grouped side by side when bars carry a group.
 *
 * @example
 *   barSpec({ title: 'Epipolar error', bars: [{ label: 'base', value: 0.13 }, { label: 'vggrpo', value: 0.10 }] });
 */
export function barSpec(opts: {
  title?: string;
  yTitle?: string;
  bars: readonly Bar[];
  width?: number;
  height?: number;
}): TopLevelSpec {
  const grouped = opts.bars.some((b) => b.group !== undefined);
  const values = opts.bars
    .filter((b) => finite(b.value))
    .map((b) => ({ label: b.label, value: b.value, group: b.group ?? '' }));
  const labels = [...new Set(opts.bars.map((b) => b.label))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: opts.title } : {}),
    width: opts.width ?? Math.max(160, 60 * labels.length * (grouped ? 1.5 : 1)),
    height: opts.height ?? 220,
    data: { values },
    mark: { type: 'bar', cornerRadiusTopLeft: 2, cornerRadiusTopRight: 2 },
    encoding: {
      x: { field: 'label', type: 'nominal', title: null, sort: labels, axis: { labelAngle: 0 } },
      y: { field: 'value', type: 'quantitative', title: opts.yTitle ?? '' },
      ...(grouped
        ? {
            xOffset: { field: 'group', type: 'nominal' },
            color: { field: 'group', type: 'nominal', title: null },
          }
        : { color: { value: '#4c78a8' } }),
      tooltip: [{ field: 'label' }, { field: 'value', format: '.4g' }],
    },
  } as TopLevelSpec;
}
