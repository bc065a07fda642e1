/**
 * The rating database: one SQLite file in the run folder (`rating.sqlite`, README.md "Blind A/B
 * rating"). Raters, the pairs of videos, which pair each rater was shown with which side on the
 * left, and the votes. Every write is one transaction, so a killed server loses at most the
 * request in flight and a restart goes on where it stopped.
 */
import { randomBytes, randomInt } from 'node:crypto';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { InputError } from '../errors.js';

export type Pick = 'a' | 'b' | 'same';
export type Answer = 'left' | 'right' | 'same';
export const QUESTIONS = ['visual', 'motion'] as const;
export type Question = (typeof QUESTIONS)[number];

export const RaterName = z
  .string()
  .trim()
  .min(1, 'a rater name must not be empty')
  .max(64, 'a rater name has at most 64 characters')
  .regex(/^[\p{L}\p{N} ._-]+$/u, 'a rater name may hold letters, digits, space, dot, dash and underscore');

/** Tokens are 18 random bytes in base64url: 24 characters. */
export const Token = z.string().regex(/^[A-Za-z0-9_-]{24}$/);

const RaterRow = z.object({
  id: z.number().int(),
  name: z.string(),
  token: z.string(),
  created_at: z.string(),
});
export type Rater = z.infer<typeof RaterRow>;

const PairRow = z.object({
  id: z.number().int(),
  key: z.string(),
  grp: z.string(),
  prompt: z.string(),
  a_video: z.string(),
  b_video: z.string(),
  a_hash: z.string(),
  b_hash: z.string(),
});
export type PairRecord = z.infer<typeof PairRow>;
/** A pair as prepared from the eval sets, before it has an id. */
export type NewPair = Omit<PairRecord, 'id'>;

const ShownRow = z.object({ pair_id: z.number().int(), left_is_a: z.union([z.literal(0), z.literal(1)]) });
const PickSchema = z.enum(['a', 'b', 'same']);
const VoteRow = z.object({
  rater: z.string(),
  pair_id: z.number().int(),
  grp: z.string(),
  visual: PickSchema,
  motion: PickSchema,
});
export type VoteRecord = z.infer<typeof VoteRow>;

/** One screen for a rater: the pair and which set is on the left (never sent to the page). */
export interface Screen {
  pair: PairRecord;
  leftIsA: boolean;
  answered: number;
  total: number;
}

export type VoteOutcome = 'ok' | 'not-shown' | 'already-voted';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, grp TEXT NOT NULL, prompt TEXT NOT NULL,
  a_video TEXT NOT NULL, b_video TEXT NOT NULL, a_hash TEXT NOT NULL, b_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shown (
  rater_id INTEGER NOT NULL REFERENCES raters(id), pair_id INTEGER NOT NULL REFERENCES pairs(id),
  left_is_a INTEGER NOT NULL CHECK (left_is_a IN (0, 1)), shown_at TEXT NOT NULL,
  PRIMARY KEY (rater_id, pair_id));
CREATE TABLE IF NOT EXISTS votes (
  rater_id INTEGER NOT NULL, pair_id INTEGER NOT NULL,
  visual TEXT NOT NULL CHECK (visual IN ('a', 'b', 'same')),
  motion TEXT NOT NULL CHECK (motion IN ('a', 'b', 'same')),
  voted_at TEXT NOT NULL,
  PRIMARY KEY (rater_id, pair_id),
  FOREIGN KEY (rater_id, pair_id) REFERENCES shown(rater_id, pair_id));
`;

export class RatingStore {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /** Open (creating when `create`) the database at `path`. */
  static open(path: string, opts: { create?: boolean; readonly?: boolean } = {}): RatingStore {
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: !opts.create, readonly: opts.readonly ?? false });
    } catch (err) {
      throw new InputError(path, `cannot open the rating database: ${(err as Error).message}`);
    }
    if (!opts.readonly) {
      // WAL: `--add-rater` and `--results` may run while the server writes.
      db.pragma('journal_mode = WAL');
      db.exec(SCHEMA);
    }
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    return new RatingStore(db, path);
  }

  close(): void {
    this.db.close();
  }

  /** The two set names compared (`a` the reference, `b` the candidate), fixed at the first use. */
  comparison(a: string, b: string): { a: string; b: string } {
    const want = `${a}:${b}`;
    this.db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('comparison', want);
    const got = this.meta('comparison')!;
    if (got !== want)
      throw new InputError(
        this.path,
        `rates ${got.replace(':', ' against ')}, not ${a} against ${b} (--a/--b); use another run folder or move the file away`,
      );
    return { a, b };
  }

  meta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  /** Add a rater (or return the existing one of that name): their token is their link. */
  addRater(name: string): Rater {
    const n = RaterName.parse(name);
    const existing = this.db.prepare('SELECT * FROM raters WHERE name = ?').get(n);
    if (existing) return RaterRow.parse(existing);
    this.db
      .prepare('INSERT INTO raters (name, token, created_at) VALUES (?, ?, ?)')
      .run(n, randomBytes(18).toString('base64url'), new Date().toISOString());
    return RaterRow.parse(this.db.prepare('SELECT * FROM raters WHERE name = ?').get(n));
  }

  raters(): Rater[] {
    return this.db
      .prepare('SELECT * FROM raters ORDER BY id')
      .all()
      .map((r) => RaterRow.parse(r));
  }

  raterByToken(token: string): Rater | undefined {
    if (!Token.safeParse(token).success) return undefined;
    const row = this.db.prepare('SELECT * FROM raters WHERE token = ?').get(token);
    return row ? RaterRow.parse(row) : undefined;
  }

  /**
   * Record the pairs prepared from the eval sets. A pair already known must show the same two
   * videos (same content hashes): votes for the old ones would otherwise mix with the new.
   */
  putPairs(pairs: NewPair[]): PairRecord[] {
    const get = this.db.prepare('SELECT * FROM pairs WHERE key = ?');
    const insert = this.db.prepare(
      'INSERT INTO pairs (key, grp, prompt, a_video, b_video, a_hash, b_hash) VALUES (@key, @grp, @prompt, @a_video, @b_video, @a_hash, @b_hash)',
    );
    return this.db.transaction(() =>
      pairs.map((p) => {
        const old = get.get(p.key);
        if (!old) {
          insert.run(p);
          return PairRow.parse(get.get(p.key));
        }
        const known = PairRow.parse(old);
        if (known.a_hash !== p.a_hash || known.b_hash !== p.b_hash)
          throw new InputError(
            this.path,
            `the videos of pair '${p.key}' changed since rating began (eval sets re-sampled?); rate them in another run folder or move the file away`,
          );
        return known;
      }),
    )();
  }

  pairs(): PairRecord[] {
    return this.db
      .prepare('SELECT * FROM pairs ORDER BY id')
      .all()
      .map((r) => PairRow.parse(r));
  }

  /**
   * The rater's next screen: a pair shown but not yet answered comes back as it was (same sides,
   * so a reload changes nothing); otherwise a random pair never shown to them, sides drawn at
   * random. Undefined when every pair is answered.
   */
  nextScreen(rater: Rater): Screen | undefined {
    return this.db.transaction(() => {
      const total = (this.db.prepare('SELECT count(*) AS n FROM pairs').get() as { n: number }).n;
      const answered = (
        this.db.prepare('SELECT count(*) AS n FROM votes WHERE rater_id = ?').get(rater.id) as { n: number }
      ).n;
      const pending = this.db
        .prepare(
          'SELECT s.pair_id, s.left_is_a FROM shown s LEFT JOIN votes v ON v.rater_id = s.rater_id AND v.pair_id = s.pair_id WHERE s.rater_id = ? AND v.pair_id IS NULL ORDER BY s.shown_at, s.pair_id LIMIT 1',
        )
        .get(rater.id);
      let shown = pending ? ShownRow.parse(pending) : undefined;
      if (!shown) {
        const fresh = this.db
          .prepare('SELECT id FROM pairs WHERE id NOT IN (SELECT pair_id FROM shown WHERE rater_id = ?)')
          .all(rater.id) as { id: number }[];
        if (!fresh.length) return undefined;
        shown = { pair_id: fresh[randomInt(fresh.length)]!.id, left_is_a: randomInt(2) as 0 | 1 };
        this.db
          .prepare('INSERT INTO shown (rater_id, pair_id, left_is_a, shown_at) VALUES (?, ?, ?, ?)')
          .run(rater.id, shown.pair_id, shown.left_is_a, new Date().toISOString());
      }
      const pair = PairRow.parse(this.db.prepare('SELECT * FROM pairs WHERE id = ?').get(shown.pair_id));
      return { pair, leftIsA: shown.left_is_a === 1, answered, total };
    })();
  }

  /** Which side is A for a pair shown to the rater; undefined when it was never shown to them. */
  shownSide(rater: Rater, pairId: number): { leftIsA: boolean; pair: PairRecord } | undefined {
    const row = this.db
      .prepare('SELECT pair_id, left_is_a FROM shown WHERE rater_id = ? AND pair_id = ?')
      .get(rater.id, pairId);
    if (!row) return undefined;
    const s = ShownRow.parse(row);
    const pair = PairRow.parse(this.db.prepare('SELECT * FROM pairs WHERE id = ?').get(s.pair_id));
    return { leftIsA: s.left_is_a === 1, pair };
  }

  /** Record a vote given as sides; translated to sets here, where the hidden order is known. */
  vote(rater: Rater, pairId: number, answers: Record<Question, Answer>): VoteOutcome {
    return this.db.transaction((): VoteOutcome => {
      const side = this.shownSide(rater, pairId);
      if (!side) return 'not-shown';
      const done = this.db
        .prepare('SELECT 1 FROM votes WHERE rater_id = ? AND pair_id = ?')
        .get(rater.id, pairId);
      if (done) return 'already-voted';
      const pick = (a: Answer): Pick => (a === 'same' ? 'same' : (a === 'left') === side.leftIsA ? 'a' : 'b');
      this.db
        .prepare('INSERT INTO votes (rater_id, pair_id, visual, motion, voted_at) VALUES (?, ?, ?, ?, ?)')
        .run(rater.id, pairId, pick(answers.visual), pick(answers.motion), new Date().toISOString());
      return 'ok';
    })();
  }

  votes(): VoteRecord[] {
    return this.db
      .prepare(
        'SELECT r.name AS rater, v.pair_id, p.grp, v.visual, v.motion FROM votes v JOIN raters r ON r.id = v.rater_id JOIN pairs p ON p.id = v.pair_id ORDER BY v.pair_id, r.id',
      )
      .all()
      .map((r) => VoteRow.parse(r));
  }
}
