/**
 * The rating database and its results without a server: votes translate sides to sets through
 * the hidden order, tallies and agreement count what was cast, a changed video or another
 * comparison is refused, and the report section appears only where a database exists.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { RATING_DB, ratingResults, ratingSection } from '../../src/rating/results.js';
import { type NewPair, RatingStore } from '../../src/rating/store.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-rating-');
after(() => rmSync(dir, { recursive: true, force: true }));

const pair = (i: number, grp = 'train'): NewPair => ({
  key: `${grp}|prompt ${i}|seed ${i}`,
  grp,
  prompt: `prompt ${i}`,
  a_video: `a${i}.mp4`,
  b_video: `b${i}.mp4`,
  a_hash: `ha${i}`,
  b_hash: `hb${i}`,
});

/** Answer every screen of a rater: `choose` picks a set ('a', 'b', 'same') per pair index. */
function rateAll(
  store: RatingStore,
  name: string,
  choose: (i: number) => ['a' | 'b' | 'same', 'a' | 'b' | 'same'],
) {
  const rater = store.addRater(name);
  const seen: number[] = [];
  for (let s = store.nextScreen(rater); s; s = store.nextScreen(rater)) {
    assert.ok(!seen.includes(s.pair.id), 'never the same pair twice');
    seen.push(s.pair.id);
    // A reload before answering shows the same screen, sides included.
    assert.deepEqual(store.nextScreen(rater), s);
    const side = (p: 'a' | 'b' | 'same') =>
      p === 'same' ? 'same' : (p === 'a') === s.leftIsA ? 'left' : 'right';
    const [v, m] = choose(Number(s.pair.prompt.split(' ')[1]));
    assert.equal(store.vote(rater, s.pair.id, { visual: side(v), motion: side(m) }), 'ok');
    assert.equal(store.vote(rater, s.pair.id, { visual: 'same', motion: 'same' }), 'already-voted');
  }
  return seen;
}

test('votes, tallies and agreement count what was cast', () => {
  const run = join(dir, 'run');
  mkdirSync(run);
  const store = RatingStore.open(join(run, RATING_DB), { create: true });
  store.comparison('base', 'final');
  store.putPairs([pair(0), pair(1), pair(2), pair(3, 'heldout')]);
  // The same pairs again (a restart) change nothing.
  assert.equal(store.putPairs([pair(0), pair(1)]).length, 2);
  assert.equal(store.pairs().length, 4);
  // alice: final better on visual for pairs 0-2, same on 3; motion: base better everywhere.
  assert.equal(rateAll(store, 'alice', (i) => [i < 3 ? 'b' : 'same', 'a']).length, 4);
  // bob agrees with alice on visual for pairs 0 and 1 only, on motion for all but pair 3.
  rateAll(store, 'bob', (i) => [i < 2 ? 'b' : 'a', i < 3 ? 'a' : 'same']);
  const stranger = store.addRater('carol');
  assert.equal(store.vote(stranger, 1, { visual: 'left', motion: 'left' }), 'not-shown');
  const r = ratingResults(store);
  assert.equal(r.votes, 8);
  assert.deepEqual(
    [r.questions.visual.win.k, r.questions.visual.tie.k, r.questions.visual.loss.k],
    [5, 1, 2],
  );
  assert.deepEqual(
    [r.questions.motion.win.k, r.questions.motion.tie.k, r.questions.motion.loss.k],
    [0, 1, 7],
  );
  assert.equal(r.questions.visual.win.n, 8);
  assert.deepEqual(Object.keys(r.groups), ['heldout', 'train']);
  assert.equal(r.groups.heldout!.visual.tie.k, 1);
  const alice = r.agreement.find((a) => a.rater === 'alice')!;
  assert.deepEqual([alice.agreement.visual.k, alice.agreement.visual.n], [2, 4]);
  assert.deepEqual([alice.agreement.motion.k, alice.agreement.motion.n], [3, 4]);
  const carol = r.agreement.find((a) => a.rater === 'carol')!;
  assert.equal(carol.agreement.visual.n, 0);
  store.close();

  const section = ratingSection(run)!;
  assert.equal(section.title, 'Blind A/B rating');
  assert.match(section.text!, /8 votes by 3 raters on 4 pairs/);
  assert.equal(section.tables![0]!.rows[0]![2], '5 · 0.63 [0.31, 0.86]');
  // Each rater's link to the session, with the token the store holds.
  const tokens = RatingStore.open(join(run, RATING_DB), { readonly: true });
  const raters = tokens.raters();
  tokens.close();
  assert.deepEqual(
    section.links!.map((l) => l.href),
    raters.map((x) => `http://127.0.0.1:8765/r/${x.token}`),
  );
  assert.equal(section.links!.length, 3);
  // A run without a database: how to start a session, no tables.
  const none = ratingSection(join(dir, 'elsewhere'));
  assert.match(none.text!, /No rating session yet\. vggrpo rate .*elsewhere --add-rater NAME/);
  assert.equal(none.tables, undefined);
});

test('a changed video or another comparison is refused', () => {
  const path = join(dir, 'other.sqlite');
  const store = RatingStore.open(path, { create: true });
  store.comparison('base', 'final');
  store.putPairs([pair(0)]);
  assert.throws(
    () => store.putPairs([{ ...pair(0), b_hash: 'changed' }]),
    (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /videos of pair 'train\|prompt 0\|seed 0' changed/);
      return true;
    },
  );
  assert.throws(
    () => store.comparison('base', 'iter-5'),
    /rates base against final, not base against iter-5/,
  );
  assert.throws(() => store.addRater('  '), /must not be empty/);
  assert.equal(store.raterByToken('not a token'), undefined);
  assert.equal(store.raterByToken('A'.repeat(24)), undefined);
  const bob = store.addRater('bob');
  assert.deepEqual(store.raterByToken(bob.token), bob);
  store.close();
});
