/**
 * The evaluation's metric table, declared once: each metric's key (report.json, metrics.csv),
 * its column title (the HTML summary), which way is better, and whether it needs ground truth.
 * Rewards join it as `reward/<name>` columns. One row per video carries every value, so the
 * summary, the intervals and metrics.csv all come from the same rows.
 */
import type { VideoMetrics } from './consistency.js';

export interface MetricColumn {
  key: string;
  title: string;
  better: 'lower' | 'higher';
  /** Only defined when the shard carries ground truth (`world` scenes). */
  groundTruth?: boolean;
}

export const GEOMETRY_METRICS: readonly MetricColumn[] = [
  { key: 'sTrans', title: 'S_trans', better: 'lower' },
  { key: 'sRot', title: 'S_rot', better: 'lower' },
  { key: 'reprojMean', title: 'reproj err', better: 'lower' },
  { key: 'reprojWorst3', title: 'worst-3', better: 'lower' },
  { key: 'coverage', title: 'coverage', better: 'higher' },
  { key: 'epipolar', title: 'epipolar', better: 'lower' },
  { key: 'ate', title: 'ATE', better: 'lower', groundTruth: true },
  { key: 'rpeTrans', title: 'RPE trans', better: 'lower', groundTruth: true },
  { key: 'rpeRotDeg', title: 'RPE rot°', better: 'lower', groundTruth: true },
  { key: 'rotErrDeg', title: 'rot err°', better: 'lower', groundTruth: true },
  { key: 'depthRelErr', title: 'depth rel err', better: 'lower', groundTruth: true },
];

export function rewardColumn(name: string): MetricColumn {
  return { key: `reward/${name}`, title: `r_${name}`, better: 'higher' };
}

/** The same metric read from the independent judge's geometry (src/stages/judge.ts). */
export function judgeColumn(c: MetricColumn): MetricColumn {
  return { ...c, key: `judge/${c.key}`, title: `judge ${c.title}` };
}

/** One video of a set, with every metric (null where undefined). */
export interface VideoRow {
  set: string;
  promptIndex: number;
  prompt: string;
  /** The sample's seed (from its trajectory), or null when the trajectory is not at hand. */
  seed: string | null;
  /** Position among the set's videos of the same prompt: pairs videos when seeds are unknown. */
  member: number;
  values: Record<string, number | null>;
  /** Epipolar frame pairs of this video: defined (≥ min matches) and tried, and their matches. */
  epipolarPairs?: { defined: number; tried: number; matches: number[] };
}

/** The per-video metric values of the geometry model's outputs. */
export function geometryValues(m: VideoMetrics): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const c of GEOMETRY_METRICS) {
    if (c.key === 'epipolar') continue;
    const v = m[c.key as keyof VideoMetrics];
    out[c.key] = v !== null && Number.isFinite(v) ? v : null;
  }
  return out;
}

/** metrics.csv: one row per video — set, prompt, seed and every metric — for analysis elsewhere. */
export function metricsCsv(rows: readonly VideoRow[], columns: readonly MetricColumn[]): string {
  const head = [
    'set',
    'prompt_index',
    'prompt',
    'seed',
    'member',
    ...columns.map((c) => c.key),
    'epipolar_pairs_defined',
    'epipolar_pairs_tried',
    'epipolar_matches',
  ];
  const lines = [head.join(',')];
  for (const r of rows) {
    const e = r.epipolarPairs;
    lines.push(
      [
        csvText(r.set),
        r.promptIndex,
        csvText(r.prompt),
        r.seed ?? '',
        r.member,
        ...columns.map((c) => (r.values[c.key] ?? '') as number | string),
        e?.defined ?? '',
        e?.tried ?? '',
        e ? e.matches.join(' ') : '',
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

function csvText(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
