/**
 * `vggrpo rate` without a browser: bad flags and paths are exit 2 with one line naming them;
 * on eval sets sampled from prompts (videos from the VAE decoder on the final latents) pairs
 * are matched by prompt and seed, and the server's JSON and video routes work (Range too).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { BIN, oneLine, ROOT, runCli, tempDir } from '../helpers.js';
import { startRateServer } from './rate-server.js';

const dir = tempDir('vggrpo-rate-cli-');
after(() => rmSync(dir, { recursive: true, force: true }));

test('bad flags and paths: exit 2, one line naming the flag or file', async () => {
  const run = join(dir, 'empty-run');
  mkdirSync(join(run, 'eval'), { recursive: true });
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const cases: [string[], RegExp][] = [
    [['rate', join(dir, 'missing')], /missing: not found/],
    [['rate', file], /a-file: is not a folder/],
    [['rate', run, '--a', 'base', '--b', 'base', '--add-rater', 'x'], /--b: must name another set/],
    [['rate', run, '--a', '../x', '--add-rater', 'x'], /--a: '\.\.\/x' is not an eval set name/],
    [['rate', run, '--add-rater', ''], /--add-rater: a rater name must not be empty/],
    [['rate', run, '--add-rater', 'a<b>'], /--add-rater: a rater name may hold/],
    [['rate', run, '--port', '70000'], /port/i],
    [['rate', run, '--results', '--add-rater', 'x'], /--add-rater|--results/],
    [['rate', run, '--results'], /rating\.sqlite: not found/],
    [['rate', run, '--port', '0'], /no eval sets to compare: expected eval\/base\[-NAME\]/],
  ];
  for (const [args, want] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
    oneLine(r.stderr);
  }
});

test('sampled eval sets: pairs by prompt and seed, decoded videos, the JSON routes', {
  timeout: 180_000,
}, async () => {
  const run = join(dir, 'run');
  const prompts = join(dir, 'prompts.txt');
  writeFileSync(prompts, 'orbit around the orange box beside a sphere\ndolly toward a moving red sphere\n');
  const config = join(ROOT, 'examples', 'toy', 'analytic.yaml');
  for (const [set, steps] of [
    ['base', '8'],
    ['final', '4'],
  ])
    execFileSync('bash', [
      '-o',
      'pipefail',
      '-c',
      `node ${BIN} sample --config ${config} --prompts ${prompts} --ode --seed 1000 --group-size 2 --steps ${steps} --out ${run}/eval/${set}-heldout/trajectory | node ${BIN} decode-geometry --out ${run}/eval/${set}-heldout/geometry > /dev/null`,
    ]);
  const link = (await runCli(['rate', run, '--add-rater', 'carol'])).stdout.trim();
  const server = await startRateServer(run);
  try {
    const base = new URL(new URL(link).pathname, server.url).href;
    const page = await fetch(base);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|https?:\/\//, 'nothing loads from elsewhere');
    const next = (await (await fetch(`${base}/next`)).json()) as {
      pair: number;
      total: number;
      done: boolean;
    };
    assert.equal(next.done, false);
    assert.equal(next.total, 4);
    assert.equal(
      ((await (await fetch(`${base}/next`)).json()) as { pair: number }).pair,
      next.pair,
      'a reload shows the same pair',
    );
    const video = await fetch(`${base}/video/${next.pair}/left`);
    assert.equal(video.status, 200);
    assert.equal(video.headers.get('content-type'), 'video/mp4');
    const bytes = new Uint8Array(await video.arrayBuffer());
    assert.equal(new TextDecoder().decode(bytes.subarray(4, 8)), 'ftyp');
    const part = await fetch(`${base}/video/${next.pair}/right`, { headers: { range: 'bytes=0-99' } });
    assert.equal(part.status, 206);
    assert.equal((await part.arrayBuffer()).byteLength, 100);
    const vote = await fetch(`${base}/vote`, {
      method: 'POST',
      body: JSON.stringify({ pair: next.pair, visual: 'left', motion: 'right' }),
    });
    assert.equal(vote.status, 200);
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((done) => server.child.once('exit', done));
  }
  const db = new Database(join(run, 'rating.sqlite'), { readonly: true });
  const keys = (db.prepare('SELECT key FROM pairs ORDER BY id').all() as { key: string }[]).map((k) => k.key);
  db.close();
  assert.equal(keys.length, 4);
  for (const k of keys) assert.match(k, /^heldout\|(orbit|dolly) .*\|seed -?\d+$/);
  const res = JSON.parse((await runCli(['rate', run, '--results', '--json'])).stdout);
  assert.equal(res.votes, 1);
  assert.equal(res.questions.visual.win.k + res.questions.visual.loss.k, 1);
  assert.equal(res.questions.motion.win.k, res.questions.visual.loss.k, 'left for one, right for the other');
});
