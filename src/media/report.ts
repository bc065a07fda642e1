/**
 * The evaluation report: `report.json` for scripts and a self-contained `report.html` for
 * people, written side by side into one folder. The page needs nothing from outside: plots are
 * inline SVG, images inline data-URI PNGs, and videos are `<video>` elements whose relative
 * `src` names MP4 files inside the same folder (so the folder can be moved or served as is).
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { check } from '../errors.js';
import { atomicWrite } from '../shards/atomic.js';
import { pngDataUri } from './png.js';

/** A mean with its 95% interval; `resolved` on a difference whose interval excludes zero. */
export interface IntervalCell {
  mean: number;
  lo: number;
  hi: number;
  resolved?: boolean;
}

export type Cell = string | number | boolean | null | IntervalCell;

export interface ReportTable {
  title?: string;
  columns: string[];
  rows: Cell[][];
  caption?: string;
}

export interface ReportPlot {
  title?: string;
  /** What the plot shows, as the figure's data-key (e.g. the set of a camera-path panel). */
  key?: string;
  /** SVG markup, e.g. from `renderSvg`. */
  svg: string;
  caption?: string;
  /** The vega-lite spec it came from, kept in report.json so the plot can be re-rendered. */
  spec?: unknown;
}

export interface ReportImage {
  title?: string;
  /** PNG bytes, inlined as a data URI. */
  png: Uint8Array;
  alt: string;
  caption?: string;
  /** Display width in CSS pixels (default: the PNG's own). */
  width?: number;
}

export interface ReportVideo {
  title?: string;
  /** Path of an MP4 file relative to the report folder (it must exist there). */
  src: string;
  caption?: string;
  width?: number;
  height?: number;
}

export interface ReportLink {
  title: string;
  href: string;
}

/** One video's media stacked top to bottom: the clip, then its strips (frames, depth). */
export interface ReportPanel {
  title?: string;
  caption?: string;
  /** What the panel shows, as its data-key (e.g. the video 'final-x #0'). */
  key?: string;
  /** A CSS colour for the panel's top edge, e.g. base vs final. */
  accent?: string;
  videos?: ReportVideo[];
  images?: ReportImage[];
}

/** Panels that belong together, side by side: e.g. base and final of one prompt and seed. */
export interface ReportGroup {
  title?: string;
  caption?: string;
  key?: string;
  panels: ReportPanel[];
}

export interface ReportSection {
  title: string;
  /** Plain text; blank lines separate paragraphs. */
  text?: string;
  /** Links listed under the text (e.g. raters' links to a rating session). */
  links?: ReportLink[];
  tables?: ReportTable[];
  plots?: ReportPlot[];
  images?: ReportImage[];
  videos?: ReportVideo[];
  groups?: ReportGroup[];
}

/** Every video of a section, its groups' included. */
function videosOf(s: ReportSection): ReportVideo[] {
  return [...(s.videos ?? []), ...(s.groups ?? []).flatMap((g) => g.panels.flatMap((p) => p.videos ?? []))];
}

export interface ReportData {
  title: string;
  subtitle?: string;
  /** ISO time; default now. */
  createdAt?: string;
  /** Key metrics shown first. `null` reads as "undefined" (e.g. an epipolar error with too few matches). */
  summary?: ReportTable;
  sections: ReportSection[];
  /** Anything else for report.json (config, inputs, versions); not shown in the page. */
  meta?: Record<string, unknown>;
}

/**
 * Write `report.json` and `report.html` into `dir` (each atomically). Returns their paths.
 *
 * @example
 *   const { html } = writeReport('runs/x/eval', {
 *     title: 'Toy run', summary: { columns: ['metric', 'value'], rows: [['ATE', 0.012]] },
 *     sections: [{ title: 'Rewards', plots: [{ svg: await renderSvg(lineSpec({ series })) }] }],
 *   });
 */
export function writeReport(dir: string, report: ReportData): { json: string; html: string } {
  check(report.title.length > 0, 'writeReport', 'a report needs a title');
  for (const section of report.sections) {
    for (const v of videosOf(section)) {
      const rel = normalize(v.src);
      check(
        !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`),
        'writeReport',
        `video '${v.src}' must be a path inside the report folder`,
      );
      check(existsSync(join(dir, rel)), 'writeReport', `video '${v.src}' not found in ${dir}`);
    }
    for (const t of [...(section.tables ?? []), ...(report.summary ? [report.summary] : [])]) {
      for (const row of t.rows) {
        check(
          row.length === t.columns.length,
          'writeReport',
          `table '${t.title ?? ''}' has a row of ${row.length} cells for ${t.columns.length} columns`,
        );
      }
    }
  }
  const createdAt = report.createdAt ?? new Date().toISOString();
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  atomicWrite(json, `${JSON.stringify(reportJson({ ...report, createdAt }), null, 2)}\n`);
  atomicWrite(html, renderReportHtml({ ...report, createdAt }));
  return { json, html };
}

/** The JSON form: everything but the bulky inline bytes (PNG sizes and SVG lengths stand in). */
function reportJson(r: ReportData): unknown {
  return {
    title: r.title,
    subtitle: r.subtitle,
    createdAt: r.createdAt,
    summary: r.summary,
    sections: r.sections.map((s) => ({
      title: s.title,
      text: s.text,
      links: s.links,
      tables: s.tables,
      plots: s.plots?.map((p) => ({
        title: p.title,
        caption: p.caption,
        spec: p.spec,
        svgBytes: p.svg.length,
      })),
      images: s.images?.map(imageJson),
      videos: s.videos,
      groups: s.groups?.map((g) => ({
        ...g,
        panels: g.panels.map((p) => ({ ...p, images: p.images?.map(imageJson) })),
      })),
    })),
    meta: r.meta,
  };
}

const imageJson = (i: ReportImage) => ({
  title: i.title,
  alt: i.alt,
  caption: i.caption,
  pngBytes: i.png.length,
});

const esc = (s: string) =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');

/** Four significant digits, plain notation where it reads well; null as an em dash with a tooltip. */
function cell(v: Cell): string {
  if (v === null) return '<td class="na" title="undefined">—</td>';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return `<td class="num na">${esc(String(v))}</td>`;
    return `<td class="num">${num(v)}</td>`;
  }
  if (typeof v === 'object') {
    const mark = v.resolved ? '<span class="resolved" title="the interval excludes zero">*</span>' : '';
    return `<td class="num"${v.resolved ? ' data-resolved="true"' : ''}>${num(v.mean)}${mark} <span class="ci">[${num(v.lo)}, ${num(v.hi)}]</span></td>`;
  }
  return `<td>${esc(String(v))}</td>`;
}

function num(v: number): string {
  const a = Math.abs(v);
  return Number.isInteger(v)
    ? String(v)
    : a !== 0 && (a < 1e-3 || a >= 1e6)
      ? v.toExponential(3)
      : String(Number(v.toPrecision(4)));
}

function table(t: ReportTable): string {
  return `<figure class="table">${t.title ? `<figcaption class="title">${esc(t.title)}</figcaption>` : ''}
<table><thead><tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead>
<tbody>${t.rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n')}</tbody></table>
${t.caption ? `<p class="caption">${esc(t.caption)}</p>` : ''}</figure>`;
}

function figure(
  title: string | undefined,
  body: string,
  caption: string | undefined,
  cls: string,
  attrs = '',
): string {
  return `<figure class="${cls}"${attrs}>${title ? `<figcaption class="title">${esc(title)}</figcaption>` : ''}${body}${
    caption ? `<p class="caption">${esc(caption)}</p>` : ''
  }</figure>`;
}

/**
 * Keep only the SVG element itself (no XML prolog or doctype) so it inlines cleanly, and give its
 * ids a per-plot prefix: ids share one namespace in a page, and two plots rendered in different
 * processes may both define `clip1`, letting one plot clip with the other's rectangle.
 */
function inlineSvg(svg: string, prefix: string): string {
  const start = svg.indexOf('<svg');
  check(start >= 0, 'writeReport', 'plot is not SVG markup');
  return svg
    .slice(start)
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

const imageTag = (i: ReportImage) =>
  `<img src="${pngDataUri(i.png)}" alt="${esc(i.alt)}"${i.width ? ` width="${i.width}"` : ''}>`;

const videoTag = (v: ReportVideo) =>
  `<video src="${esc(v.src.split(sep).join('/'))}" controls loop muted autoplay playsinline preload="auto"${
    v.width ? ` width="${v.width}"` : ''
  }${v.height ? ` height="${v.height}"` : ''}></video>`;

const keyAttr = (key: string | undefined) => (key ? ` data-key="${esc(key)}"` : '');

/** A group: its panels side by side, each a column (video over its strips). */
function group(g: ReportGroup): string {
  const panels = g.panels.map((p) => {
    const accent = p.accent ? ` style="border-top-color: ${esc(p.accent)}"` : '';
    const body = [...(p.videos ?? []).map(videoTag), ...(p.images ?? []).map(imageTag)].join('\n');
    return figure(p.title, body, p.caption, 'panel', `${keyAttr(p.key)}${accent}`);
  });
  return `<div class="group"${keyAttr(g.key)}>${g.title ? `<h3>${esc(g.title)}</h3>` : ''}
<div class="panels">${panels.join('\n')}</div>${g.caption ? `<p class="caption">${esc(g.caption)}</p>` : ''}</div>`;
}

function section(s: ReportSection, index: number): string {
  const paragraphs = (s.text ?? '')
    .split(/\n\s*\n/)
    .filter((p) => p.trim())
    .map((p) => `<p>${esc(p.trim())}</p>`)
    .join('\n');
  const plots = (s.plots ?? []).map((p, k) =>
    figure(
      p.title,
      `<div class="svg">${inlineSvg(p.svg, `s${index}p${k}`)}</div>`,
      p.caption,
      'plot',
      keyAttr(p.key),
    ),
  );
  const images = (s.images ?? []).map((i) => figure(i.title, imageTag(i), i.caption, 'image'));
  const videos = (s.videos ?? []).map((v) => figure(v.title, videoTag(v), v.caption, 'video'));
  const links = s.links?.length
    ? `<ul class="links">${s.links.map((l) => `<li><a href="${esc(l.href)}">${esc(l.title)}</a></li>`).join('')}</ul>`
    : '';
  const grid = (items: string[], cls: string) =>
    items.length ? `<div class="grid ${cls}">${items.join('\n')}</div>` : '';
  return `<section id="s${index}"><h2>${esc(s.title)}</h2>
${paragraphs}
${links}
${(s.tables ?? []).map(table).join('\n')}
${grid(plots, 'plots')}
${grid(images, 'images')}
${grid(videos, 'videos')}
${(s.groups ?? []).map(group).join('\n')}
</section>`;
}

const CSS = `
:root { --fg: #1d2126; --muted: #5f6670; --line: #e3e6ea; --bg: #f6f7f9; --card: #fff; --accent: #4c78a8; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
header { background: var(--card); border-bottom: 1px solid var(--line); padding: 28px 0 20px; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
h1 { margin: 0; font-size: 26px; letter-spacing: -0.01em; }
.subtitle { margin: 4px 0 0; color: var(--muted); }
.stamp { margin: 8px 0 0; color: var(--muted); font-size: 13px; }
nav { margin-top: 14px; display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
.summary, figure.table { overflow-x: auto; }
td:first-child { white-space: nowrap; }
.ci { color: var(--muted); font-size: 0.85em; white-space: nowrap; }
.resolved { font-weight: bold; }
section, .summary { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin: 20px 0; }
h2 { margin: 0 0 12px; font-size: 18px; }
p { margin: 0 0 10px; max-width: 75ch; }
figure { margin: 0 0 16px; }
figcaption.title { font-weight: 600; font-size: 14px; margin-bottom: 6px; }
.caption { color: var(--muted); font-size: 13px; margin-top: 6px; }
table { border-collapse: collapse; font-size: 14px; min-width: 320px; }
th, td { padding: 6px 14px; border-bottom: 1px solid var(--line); text-align: left; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
td.na { color: #a0a6ad; text-align: center; }
.grid { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
.svg svg { max-width: 100%; height: auto; display: block; }
.image img { image-rendering: pixelated; border-radius: 4px; display: block; max-width: 100%; }
video { background: #000; border-radius: 6px; display: block; max-width: 100%; }
.group { margin: 0 0 22px; }
h3 { margin: 0 0 8px; font-size: 15px; font-weight: 600; }
.panels { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure.panel { margin: 0; padding-top: 8px; border-top: 4px solid var(--line); display: flex; flex-direction: column; gap: 6px; }
.panel img { image-rendering: pixelated; display: block; max-width: 100%; }
.panel video { align-self: flex-start; }
footer { color: var(--muted); font-size: 12px; padding: 8px 0 32px; }
`;

/** The page as a string (exported for callers that serve it rather than write it). */
export function renderReportHtml(r: ReportData): string {
  const nav = r.sections.map((s, i) => `<a href="#s${i}">${esc(s.title)}</a>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><div class="wrap">
<h1>${esc(r.title)}</h1>
${r.subtitle ? `<p class="subtitle">${esc(r.subtitle)}</p>` : ''}
${r.createdAt ? `<p class="stamp">${esc(r.createdAt)}</p>` : ''}
${nav ? `<nav>${nav}</nav>` : ''}
</div></header>
<main class="wrap">
${r.summary ? `<div class="summary"><h2>${esc(r.summary.title ?? 'Summary')}</h2>${table({ ...r.summary, title: undefined })}</div>` : ''}
${r.sections.map(section).join('\n')}
</main>
<footer class="wrap">vggrpo report · report.json holds the same numbers</footer>
</body>
</html>
`;
}
