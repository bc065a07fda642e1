import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { renderReportHtml, writeReport } from '../../src/media/report.js';
import { buildFixtureReport } from './report-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'vggrpo-report-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('writeReport', () => {
  let paths: { json: string; html: string };
  let html: string;
  before(async () => {
    paths = writeReport(dir, await buildFixtureReport(dir));
    html = readFileSync(paths.html, 'utf8');
  });

  it('writes report.json with the numbers (null kept as null) and without inline bytes', () => {
    assert.equal(paths.json, join(dir, 'report.json'));
    const json = JSON.parse(readFileSync(paths.json, 'utf8'));
    assert.equal(json.title, 'VGGRPO toy evaluation');
    assert.deepEqual(json.summary.rows[3], ['Epipolar error (px, ORB)', 0.133, null]);
    assert.equal(json.sections[2].videos[0].src, 'sample.mp4');
    assert.ok(json.sections[2].images[0].pngBytes > 0 && !('png' in json.sections[2].images[0]));
    assert.equal(json.sections[0].plots[0].spec.mark.type, 'line');
    assert.deepEqual(json.meta, { config: { seed: 1 } });
  });

  it('writes a self-contained page: inline SVG plots, data-URI images, relative video', () => {
    assert.equal((html.match(/<svg/g) ?? []).length, 3);
    assert.equal((html.match(/<img src="data:image\/png;base64,/g) ?? []).length, 4);
    assert.match(html, /<video src="sample\.mp4"/);
    // Nothing fetched from elsewhere: every src/href is a data URI, a fragment or a local file.
    for (const m of html.matchAll(/\s(?:src|href)="([^"]*)"/g)) {
      assert.ok(/^(data:|#|[\w.-]+\.mp4$)/.test(m[1]!), `external reference ${m[1]}`);
    }
    assert.doesNotMatch(html, /<link|<script|@import|url\((?!#)/);
    // Plot ids are made unique per plot, and every url(#…) points at an id of the page.
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
    assert.equal(new Set(ids).size, ids.length);
    for (const m of html.matchAll(/url\(#([^)]+)\)/g))
      assert.ok(ids.includes(m[1]!), `dangling url(#${m[1]})`);
    // null renders as an em dash marked undefined, numbers with four significant digits.
    assert.match(html, /<td class="na" title="undefined">—<\/td>/);
    assert.match(html, /<td class="num">0\.0412<\/td>/);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  it('escapes text', () => {
    const page = renderReportHtml({
      title: '<b>x</b> & "y"',
      sections: [{ title: 'a<script>', text: '1 < 2' }],
    });
    assert.match(page, /<title>&lt;b&gt;x&lt;\/b&gt; &amp; &quot;y&quot;<\/title>/);
    assert.doesNotMatch(page, /<script>/);
  });

  it('lists a section’s links (a rating session’s) as anchors, escaped', () => {
    const page = renderReportHtml({
      title: 't',
      sections: [{ title: 'rate', links: [{ title: 'alice <1>', href: 'http://127.0.0.1:8765/r/a"b' }] }],
    });
    assert.match(
      page,
      /<ul class="links"><li><a href="http:\/\/127\.0\.0\.1:8765\/r\/a&quot;b">alice &lt;1&gt;<\/a><\/li><\/ul>/,
    );
  });

  it('refuses a video outside the folder or missing, and ragged tables', () => {
    const video = (src: string) => ({ title: 't', sections: [{ title: 's', videos: [{ src }] }] });
    assert.throws(() => writeReport(dir, video('../x.mp4')), InputError);
    assert.throws(() => writeReport(dir, video('/etc/passwd')), /inside the report folder/);
    assert.throws(() => writeReport(dir, video('missing.mp4')), /not found/);
    writeFileSync(join(dir, 'ok.mp4'), 'x');
    assert.doesNotThrow(() => writeReport(join(dir, 'sub', '..'), video('ok.mp4')));
    assert.throws(
      () =>
        writeReport(dir, {
          title: 't',
          sections: [{ title: 's', tables: [{ columns: ['a', 'b'], rows: [[1]] }] }],
        }),
      /row of 1 cells for 2 columns/,
    );
  });
});
