/**
 * Opens the fixture report in headless Chromium (Debian's `chromium` package) and checks what a
 * person would see: every plot laid out, every image decoded, every video's metadata loaded.
 * Saves a screenshot to test-output/report.png. Skips, saying why, when Chromium is absent.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../../src/media/report.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkip } from '../helpers.js';
import { buildFixtureReport } from './report-fixture.js';

interface PageState {
  svgs: { w: number; h: number; marks: number }[];
  imgs: { complete: boolean; w: number; h: number }[];
  videos: { ready: number; error: number | null; w: number; h: number }[];
}

const dir = mkdtempSync(join(tmpdir(), 'vggrpo-report-browser-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('report.html in headless Chromium', () => {
  it('shows every plot, image and video', { skip: chromiumSkip, timeout: 60_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const { html } = writeReport(dir, await buildFixtureReport(dir));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const failed: string[] = [];
      page.on('requestfailed', (r) => failed.push(r.url()));
      page.on('pageerror', (e) => failed.push(`page error: ${e.message}`));
      await page.goto(pathToFileURL(resolve(html)).href, { waitUntil: 'load' });
      // Metadata of each video (readyState ≥ 1 = HAVE_METADATA) or its error, whichever comes first.
      // Page scripts are strings: this project compiles without the DOM library.
      await page.waitForFunction(
        "[...document.querySelectorAll('video')].every((v) => v.readyState >= 1 || v.error !== null)",
        undefined,
        { timeout: 20_000 },
      );
      const state = (await page.evaluate(`({
        svgs: [...document.querySelectorAll('svg')].map((s) => {
          const r = s.getBoundingClientRect();
          return { w: r.width, h: r.height, marks: s.querySelectorAll('[role="graphics-symbol"]').length };
        }),
        imgs: [...document.querySelectorAll('img')].map((i) => ({ complete: i.complete, w: i.naturalWidth, h: i.naturalHeight })),
        videos: [...document.querySelectorAll('video')].map((v) => ({
          ready: v.readyState, error: v.error ? v.error.code : null, w: v.videoWidth, h: v.videoHeight,
        })),
      })`)) as PageState;
      assert.deepEqual(failed, []);
      assert.equal(state.svgs.length, 3);
      for (const s of state.svgs) assert.ok(s.w > 100 && s.h > 100 && s.marks > 0, JSON.stringify(s));
      assert.equal(state.imgs.length, 4);
      for (const i of state.imgs) assert.ok(i.complete && i.w > 0 && i.h > 0, JSON.stringify(i));
      assert.equal(state.videos.length, 1);
      // The 64 × 48 toy clip was enlarged ×6 (shorter side ≥ 256) to 384 × 288.
      assert.deepEqual(state.videos[0], { ready: state.videos[0]!.ready, error: null, w: 384, h: 288 });
      assert.ok(state.videos[0]!.ready >= 1);
      // A still first frame rather than whatever instant autoplay reached.
      await page.evaluate(`Promise.all([...document.querySelectorAll('video')].map((v) => new Promise((done) => {
        v.pause();
        v.addEventListener('seeked', done, { once: true });
        v.currentTime = 0;
      })))`);
      await page
        .waitForFunction(
          "[...document.querySelectorAll('video')].every((v) => v.readyState >= 2)",
          undefined,
          {
            timeout: 5_000,
          },
        )
        .catch(() => {}); // only the screenshot's looks depend on it
      mkdirSync('test-output', { recursive: true });
      await page.screenshot({ path: 'test-output/report.png', fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
