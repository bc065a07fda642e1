/**
 * `eval`'s report at a glance, on a small run with a base and a final eval set (toy `world`
 * scenes): one camera-path panel per set in the pair's colours, each shown video over the frame
 * and depth strips of that same video, and base and final of one prompt side by side. Checked in
 * the HTML, against the shards themselves, and (when Chromium is there) in the laid-out page.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { depthToPng } from '../../src/media/png.js';
import { readShard } from '../../src/shards/shard.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkip, runCli, tempDir, worldEvalSets } from '../helpers.js';

const dir = tempDir('vggrpo-eval-report-');
const run = join(dir, 'run');
after(() => rmSync(dir, { recursive: true, force: true }));

const SETS = ['base-train', 'final-train'] as const;

/** The HTML between an opening tag matched at `start` and its `</figure>`. */
const figureAt = (html: string, start: number) => html.slice(start, html.indexOf('</figure>', start));

const pngOf = (html: string, alt: string) => {
  const m = new RegExp(`<img src="data:image/png;base64,([^"]+)" alt="${alt}"`).exec(html);
  assert.ok(m, `an image '${alt}'`);
  return Buffer.from(m[1]!, 'base64');
};

describe('eval report: camera panels, strips beside their videos, base | final', () => {
  let html = '';
  let htmlPath = '';
  let csv: string[][] = [];
  before(async () => {
    worldEvalSets(run, [
      ['base-train', '0.01'],
      ['final-train', '0.3'],
    ]);
    const r = await runCli(['eval', run, '--out', join(dir, 'report'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    htmlPath = JSON.parse(r.stdout).html;
    html = readFileSync(htmlPath, 'utf8');
    csv = readFileSync(join(dir, 'report', 'metrics.csv'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(','));
  });

  it('one camera-path panel per set, ≥ 320 px, its first 4 samples in its colour of the pair', () => {
    const panels = [...html.matchAll(/<figure class="plot" data-key="([^"]+)">/g)];
    assert.deepEqual(
      panels.map((m) => m[1]),
      [...SETS],
    );
    for (const m of panels) {
      const fig = figureAt(html, m.index!);
      const width = Number(/<svg[^>]* width="(\d+)"/.exec(fig)![1]);
      assert.ok(width >= 320, `${m[1]} is ${width} px wide`);
      assert.equal(fig.split('aria-roledescription="line mark"').length - 1, 4, 'first 4 samples overlaid');
      const [own, other] = m[1] === 'base-train' ? ['#4c78a8', '#f58518'] : ['#f58518', '#4c78a8'];
      assert.match(fig, new RegExp(`stroke="${own}"`));
      assert.doesNotMatch(fig, new RegExp(other));
      assert.match(fig, /x \(right\)/);
      assert.match(fig, /z \(forward\)/);
    }
  });

  it('each shown video stands over the frame and depth strips of that same video', async () => {
    const panels = [...html.matchAll(/<figure class="panel" data-key="([^"]+) #(\d)"/g)];
    assert.equal(panels.length, 2 * 4, 'eval.videos = 4 per set');
    for (const m of panels) {
      const [set, k] = [m[1]!, Number(m[2])];
      const id = `${set} #${k}`;
      const fig = figureAt(html, m.index!);
      assert.equal((fig.match(/<video /g) ?? []).length, 1);
      assert.match(fig, new RegExp(`<video src="videos/${set}-${k}\\.mp4"`));
      assert.deepEqual(
        [...fig.matchAll(/ alt="([^"]+)"/g)].map((a) => a[1]),
        [`decoded frames of ${id}`, `depth of ${id}`],
      );
      // Row k of the set is sample k of its one shard: its RGB and depth, strip by hand.
      const shard = readShard(join(run, 'eval', set, 'geometry', 'world-0000.safetensors'), 'geometry');
      const [, F, H, W] = shard.tensors.get('rgb')!.shape as number[];
      const rgb = shard.tensors.get('rgb')!.data as Uint8Array;
      const frames = await sharp(pngOf(fig, `decoded frames of ${id}`))
        .raw()
        .toBuffer({ resolveWithObject: true });
      const s = Math.round(56 / H!); // the strip is ~56 px high; F = 8 frames, so every frame shows
      assert.deepEqual([frames.info.width, frames.info.height], [F! * W! * s, H! * s]);
      for (const [f, i, j] of [
        [0, 0, 0],
        [3, 5, 7],
        [F! - 1, H! - 1, W! - 1],
      ] as const) {
        const want = rgb.subarray(
          3 * (((k * F! + f) * H! + i) * W! + j),
          3 * (((k * F! + f) * H! + i) * W! + j) + 3,
        );
        const o = 3 * (i * s * frames.info.width + (f * W! + j) * s);
        assert.deepEqual([...frames.data.subarray(o, o + 3)], [...want], `${id} frame ${f} (${i}, ${j})`);
      }
      const depthT = shard.tensors.get('depth')!;
      const [, Fd, h, w] = depthT.shape as number[];
      const d = depthT.data as Float32Array;
      const strip = Float32Array.from({ length: Fd! * h! * w! }, (_, q) => {
        const [i, c] = [Math.floor(q / (Fd! * w!)), q % (Fd! * w!)];
        return d[((k * Fd! + Math.floor(c / w!)) * h! + i) * w! + (c % w!)]!;
      });
      const want = await depthToPng(strip, Fd! * w!, h!, { scale: Math.round(56 / h!) });
      const got = await sharp(pngOf(fig, `depth of ${id}`))
        .raw()
        .toBuffer();
      assert.ok(got.equals(await sharp(want.png).raw().toBuffer()), `depth strip of ${id}`);
    }
  });

  it('base and final of the same prompt and sample stand side by side, base first', () => {
    const groups = [...html.matchAll(/<div class="group" data-key="([^"]+)"><h3>([^<]+)<\/h3>/g)];
    assert.equal(groups.length, 4);
    const rows = (set: string) => csv.filter((r) => r[0] === set);
    groups.forEach((g, n) => {
      const end = html.indexOf('<div class="group"', g.index! + 1);
      const inside = html.slice(g.index!, end < 0 ? undefined : end);
      const ids = [...inside.matchAll(/<figure class="panel" data-key="([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(ids, [`base-train #${n}`, `final-train #${n}`]);
      // metrics.csv (prompt_index, prompt, member) says they are the same prompt and sample.
      const [b, f] = [rows('base-train')[n]!, rows('final-train')[n]!];
      assert.deepEqual([b[1], b[2], b[4]], [f[1], f[2], f[4]]);
      assert.equal(g[1], `${b[1]}:#${b[4]}`);
      assert.ok(g[2]!.includes(`“${b[2]}”`), g[2]);
      assert.match(inside, /border-top-color: #4c78a8[\s\S]*border-top-color: #f58518/);
    });
    // report.json keeps the groups without the inline bytes.
    const json = JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8'));
    const videos = json.sections.find((x: { title: string }) => x.title === 'Videos');
    const img = videos.groups[0].panels[0].images[1];
    assert.equal(img.alt, 'depth of base-train #0');
    assert.ok(img.pngBytes > 0 && !('png' in img));
  });

  it('in Chromium: panels side by side, each depth strip right under its frames', {
    skip: chromiumSkip,
    timeout: 60_000,
  }, async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(pathToFileURL(htmlPath).href, { waitUntil: 'load' });
      // Page scripts are strings: this project compiles without the DOM library.
      const boxes = (await page.evaluate(`(() => {
        const box = (e) => { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, b: r.bottom }; };
        return {
          plots: [...document.querySelectorAll('figure.plot[data-key] svg')].map(box),
          groups: [...document.querySelectorAll('.group')].map((g) => [...g.querySelectorAll('figure.panel')].map((p) => ({
            panel: box(p), imgs: [...p.querySelectorAll('img')].map(box),
          }))),
        };
      })()`)) as {
        plots: Box[];
        groups: { panel: Box; imgs: Box[] }[][];
      };
      assert.equal(boxes.plots.length, 2);
      assert.equal(boxes.plots[0]!.y, boxes.plots[1]!.y, 'camera panels in one row');
      for (const p of boxes.plots) assert.ok(p.w >= 320, `camera panel ${p.w} px wide`);
      for (const [base, final] of boxes.groups) {
        assert.equal(base!.panel.y, final!.panel.y, 'base and final in one row');
        assert.ok(base!.panel.x + base!.panel.w <= final!.panel.x, 'base left of final');
        for (const { imgs } of [base!, final!]) {
          const [frames, depth] = imgs as [Box, Box];
          assert.deepEqual([depth.x, depth.w], [frames.x, frames.w], 'frames and depth aligned');
          assert.ok(depth.y >= frames.b && depth.y - frames.b < 12, 'depth right under its frames');
        }
      }
    } finally {
      await browser.close();
    }
  });
});

interface Box {
  x: number;
  y: number;
  w: number;
  b: number;
}
