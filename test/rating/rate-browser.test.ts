/**
 * `vggrpo rate` in headless Chromium (Debian's `chromium`): two raters vote through the page,
 * the server is killed and restarted between votes, nothing is lost and no rater sees a pair
 * twice; `--results` gives the counts cast (checked against the hidden sides in the database);
 * a forged token, a forged pair and a malformed body are refused with nothing written; eval's
 * report shows the rating. Skips, saying why, when Chromium is absent (never under CI).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkip, runCli, tempDir, worldEvalSets } from '../helpers.js';
import { startRateServer, stopRateServer } from './rate-server.js';

const dir = tempDir('vggrpo-rate-');
const run = join(dir, 'run');
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two eval sets of 4 videos each (2 scenes × 2): `final` moves its second camera of each group more. */
const makeRun = () =>
  worldEvalSets(run, [
    ['base-train', '0.01'],
    ['final-train', '0.3'],
  ]);

type Answer = 'left' | 'right' | 'same';

async function post(url: string, body: string): Promise<{ status: number; body: { error?: string } }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: r.status, body: (await r.json()) as { error?: string } };
}

const voteCount = () => {
  const db = new Database(join(run, 'rating.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM votes').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

describe('vggrpo rate in headless Chromium', () => {
  it('two raters vote through the page across a restart; results count what they cast', {
    skip: chromiumSkip,
    timeout: 240_000,
  }, async () => {
    const { chromium } = await import('playwright-core');
    makeRun();
    const links: Record<string, string> = {};
    for (const name of ['alice', 'bob']) {
      const r = await runCli(['rate', run, '--add-rater', name]);
      assert.equal(r.code, 0, r.stderr);
      links[name] = new URL(r.stdout.trim()).pathname;
      assert.match(links[name]!, /^\/r\/[A-Za-z0-9_-]{24}$/);
    }
    const again = await runCli(['rate', run, '--add-rater', 'alice']);
    assert.equal(new URL(again.stdout.trim()).pathname, links.alice, 'a known name gets its link again');

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    let server = await startRateServer(run);
    const seen: Record<string, number[]> = { alice: [], bob: [] };
    try {
      const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
      const failed: string[] = [];
      // The page needs nothing from elsewhere: any request off the server is a failure.
      await context.route('**/*', (route) => {
        const u = new URL(route.request().url());
        if (u.hostname === '127.0.0.1') return route.continue();
        failed.push(u.href);
        return route.abort();
      });
      const open = async (name: string) => {
        const page = await context.newPage();
        page.on('pageerror', (e) => failed.push(`page error: ${e.message}`));
        page.on('request', (r) => {
          const m = /\/video\/(\d+)\/left$/.exec(r.url());
          if (m && !seen[name]!.includes(Number(m[1]))) seen[name]!.push(Number(m[1]));
        });
        await page.goto(new URL(links[name]!, server.url).href, { waitUntil: 'load' });
        return page;
      };
      /** Answer `count` screens; each one must show two loaded, playing videos first. */
      const vote = async (
        page: Awaited<ReturnType<typeof open>>,
        count: number,
        visual: Answer,
        motion: Answer,
      ) => {
        for (let i = 0; i < count; i++) {
          await page.waitForFunction(
            "(() => { const l = document.getElementById('left'), r = document.getElementById('right'); return !document.getElementById('rating').hidden && l.readyState >= 2 && r.readyState >= 2 && !l.paused && !r.paused; })()",
            undefined,
            { timeout: 20_000 },
          );
          // In step: the two clocks come within 0.25 s of each other while both play.
          await page.waitForFunction(
            "Math.abs(document.getElementById('left').currentTime - document.getElementById('right').currentTime) < 0.25",
            undefined,
            { timeout: 10_000 },
          );
          const before = await page.textContent('#progress');
          await page.check(`input[name="visual"][value="${visual}"]`);
          await page.check(`input[name="motion"][value="${motion}"]`);
          await page.click('#submit');
          await page.waitForFunction(
            `document.getElementById('progress').textContent !== ${JSON.stringify(before)}`,
          );
        }
      };

      let alice = await open('alice');
      await page_progress(alice, '0 of 4 pairs rated');
      await vote(alice, 1, 'left', 'same');
      // What a rater sees (the second pair, videos playing): test-output/rating.png.
      await alice.waitForFunction(
        "document.getElementById('left').readyState >= 2 && document.getElementById('right').readyState >= 2",
      );
      mkdirSync('test-output', { recursive: true });
      await alice.screenshot({ path: 'test-output/rating.png', fullPage: true });
      await vote(alice, 1, 'left', 'same');
      await page_progress(alice, '2 of 4 pairs rated');
      assert.equal(voteCount(), 2);

      // Refusals, each with nothing written.
      const base = new URL(links.bob!, server.url).href;
      const forged = new URL('/r/AAAAAAAAAAAAAAAAAAAAAAAA', server.url).href;
      assert.equal((await fetch(`${forged}/next`)).status, 403);
      assert.equal((await fetch(forged)).status, 403);
      assert.equal((await post(`${forged}/vote`, '{"pair":1,"visual":"left","motion":"left"}')).status, 403);
      const notShown = await post(
        `${base}/vote`,
        JSON.stringify({ pair: seen.alice![0], visual: 'left', motion: 'left' }),
      );
      assert.equal(notShown.status, 400, 'bob was never shown that pair');
      assert.match(notShown.body.error!, /not shown/);
      assert.equal(
        (await post(`${base}/vote`, '{"pair":99999,"visual":"left","motion":"left"}')).status,
        400,
      );
      assert.equal((await post(`${base}/vote`, 'not json')).status, 400);
      assert.equal((await post(`${base}/vote`, '{"pair":1,"visual":"up","motion":"left"}')).status, 400);
      assert.equal((await post(`${base}/vote`, '{"pair":1,"visual":"left"}')).status, 400);
      assert.equal(
        (await fetch(`${base}/video/${seen.alice![0]}/left`)).status,
        400,
        'no peeking at unseen pairs',
      );
      const aliceBase = new URL(links.alice!, server.url).href;
      assert.equal(
        (
          await post(
            `${aliceBase}/vote`,
            JSON.stringify({ pair: seen.alice![0], visual: 'right', motion: 'right' }),
          )
        ).status,
        409,
        'a pair is rated once',
      );
      assert.equal(voteCount(), 2);

      // A restart loses nothing: alice goes on at 2 of 4, with pairs she has not rated.
      assert.equal(await stopRateServer(server.child), 143);
      await alice.close();
      server = await startRateServer(run);
      alice = await open('alice');
      await page_progress(alice, '2 of 4 pairs rated');
      await vote(alice, 2, 'left', 'same');
      await alice.waitForSelector('#done', { state: 'visible' });
      const bob = await open('bob');
      await vote(bob, 4, 'right', 'left');
      await bob.waitForSelector('#done', { state: 'visible' });
      assert.deepEqual(failed, []);
      for (const name of ['alice', 'bob']) {
        assert.equal(seen[name]!.length, 4, `${name} saw ${seen[name]}`);
        assert.equal(new Set(seen[name]).size, 4);
      }
    } finally {
      await browser.close();
      await stopRateServer(server.child);
    }

    // The counts cast, from the hidden sides: alice said left/same, bob right/left.
    const db = new Database(join(run, 'rating.sqlite'), { readonly: true });
    const shown = db
      .prepare('SELECT r.name, s.pair_id, s.left_is_a FROM shown s JOIN raters r ON r.id = s.rater_id')
      .all() as { name: string; pair_id: number; left_is_a: number }[];
    db.close();
    assert.equal(shown.length, 8);
    const pick = (_name: string, a: Answer, leftIsA: boolean) =>
      a === 'same' ? 'same' : (a === 'left') === leftIsA ? 'a' : 'b';
    const answers = { alice: ['left', 'same'], bob: ['right', 'left'] } as Record<string, [Answer, Answer]>;
    const want = { visual: { a: 0, b: 0, same: 0 }, motion: { a: 0, b: 0, same: 0 } };
    const picks = new Map<string, { visual: string; motion: string }>();
    for (const s of shown) {
      const [v, m] = answers[s.name]!;
      const p = { visual: pick(s.name, v, s.left_is_a === 1), motion: pick(s.name, m, s.left_is_a === 1) };
      picks.set(`${s.name}/${s.pair_id}`, p);
      want.visual[p.visual as 'a']++;
      want.motion[p.motion as 'a']++;
    }
    const r = await runCli(['rate', run, '--results', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.votes, 8);
    assert.equal(res.raters, 2);
    assert.equal(res.pairs, 4);
    for (const q of ['visual', 'motion'] as const) {
      assert.equal(res.questions[q].votes, 8);
      assert.equal(res.questions[q].win.k, want[q].b, q);
      assert.equal(res.questions[q].tie.k, want[q].same, q);
      assert.equal(res.questions[q].loss.k, want[q].a, q);
    }
    assert.equal(res.questions.motion.tie.k, 4, "alice's 'same' answers");
    // Agreement: each rater shares all 4 pairs with the other.
    let agreeVisual = 0;
    for (const s of shown.filter((x) => x.name === 'alice'))
      if (picks.get(`alice/${s.pair_id}`)!.visual === picks.get(`bob/${s.pair_id}`)!.visual) agreeVisual++;
    for (const a of res.agreement) {
      assert.equal(a.votes, 4);
      assert.equal(a.agreement.visual.n, 4);
      assert.equal(a.agreement.visual.k, agreeVisual);
    }
    const table = await runCli(['rate', run, '--results']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /8 votes by 2 raters on 4 pairs \(final against base\)/);
    assert.match(table.stdout, /visual quality\s+8\s+\d+ · \d\.\d\d \[\d\.\d\d, \d\.\d\d\]/);
    assert.match(table.stdout, /alice\s+4/);

    // The videos are named by content, never by set.
    for (const f of readdirSync(join(run, 'rating', 'videos'))) assert.match(f, /^[0-9a-f]{24}\.mp4$/);

    // eval's report shows the rating of the run it evaluates.
    const ev = await runCli(['eval', run, '--out', join(dir, 'report'), '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    const html = readFileSync(JSON.parse(ev.stdout).html, 'utf8');
    assert.match(html, /Blind A\/B rating/);
    assert.match(html, /final better/);
  });
});

async function page_progress(page: { waitForFunction: (f: string) => Promise<unknown> }, text: string) {
  await page.waitForFunction(`document.getElementById('progress').textContent === ${JSON.stringify(text)}`);
}
