/**
 * What the votes say: per question, how often the candidate set (`b`, e.g. final) was rated
 * better than, the same as, or worse than the reference (`a`, e.g. base), each with a Wilson
 * 95% interval; and how often each rater agrees with the others on the pairs they share.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ReportSection, ReportTable } from '../media/report.js';
import { RATING_DEFAULTS, raterLink } from './link.js';
import { type Pick, QUESTIONS, type Question, RatingStore, type VoteRecord } from './store.js';
import { type Proportion, wilson } from './wilson.js';

export const RATING_DB = 'rating.sqlite';

export const QUESTION_TEXT: Record<Question, { short: string; ask: string }> = {
  visual: {
    short: 'visual quality',
    ask: 'Visual quality: which video looks better (sharpness, colour, fewer artefacts)?',
  },
  motion: {
    short: 'motion/geometry quality',
    ask: 'Motion and geometry quality: which moves more plausibly (a steady camera, a scene whose shape holds together)?',
  },
};

export interface Tally {
  votes: number;
  /** b rated better. */
  win: Proportion;
  tie: Proportion;
  /** a rated better. */
  loss: Proportion;
}

export interface RaterAgreement {
  rater: string;
  votes: number;
  /** Per question: the share of (pair, other rater) comparisons where both picked the same. */
  agreement: Record<Question, Proportion>;
}

export interface RatingResults {
  a: string;
  b: string;
  pairs: number;
  raters: number;
  votes: number;
  questions: Record<Question, Tally>;
  /** The same per eval group (`train`, `heldout`: the part of the set names after the dash). */
  groups: Record<string, Record<Question, Tally>>;
  agreement: RaterAgreement[];
}

function tally(votes: VoteRecord[], q: Question): Tally {
  const n = votes.length;
  const count = (p: Pick) => votes.filter((v) => v[q] === p).length;
  return { votes: n, win: wilson(count('b'), n), tie: wilson(count('same'), n), loss: wilson(count('a'), n) };
}

const byQuestion = (votes: VoteRecord[]) =>
  Object.fromEntries(QUESTIONS.map((q) => [q, tally(votes, q)])) as Record<Question, Tally>;

function agreementOf(rater: string, votes: VoteRecord[]): RaterAgreement {
  const mine = votes.filter((v) => v.rater === rater);
  const agreement = {} as Record<Question, Proportion>;
  for (const q of QUESTIONS) {
    let same = 0;
    let compared = 0;
    for (const v of mine)
      for (const o of votes)
        if (o.pair_id === v.pair_id && o.rater !== rater) {
          compared++;
          if (o[q] === v[q]) same++;
        }
    agreement[q] = wilson(same, compared);
  }
  return { rater, votes: mine.length, agreement };
}

/** The results of a rating database. */
export function ratingResults(store: RatingStore): RatingResults {
  const [a = 'a', b = 'b'] = (store.meta('comparison') ?? 'a:b').split(':');
  const votes = store.votes();
  const raters = store.raters();
  const groups: RatingResults['groups'] = {};
  for (const g of [...new Set(store.pairs().map((p) => p.grp))].sort())
    groups[g || '(all)'] = byQuestion(votes.filter((v) => v.grp === g));
  return {
    a,
    b,
    pairs: store.pairs().length,
    raters: raters.length,
    votes: votes.length,
    questions: byQuestion(votes),
    groups,
    agreement: raters.map((r) => agreementOf(r.name, votes)),
  };
}

/** "0.50 [0.24, 0.76]", or "—" with no votes. */
export function formatProportion(p: Proportion): string {
  if (p.rate === null) return '—';
  return `${p.rate.toFixed(2)} [${p.lo!.toFixed(2)}, ${p.hi!.toFixed(2)}]`;
}

/** "3 · 0.38 [0.14, 0.69]": the count, then the rate and its interval ("—" with no votes). */
const countCell = (p: Proportion) => (p.n ? `${p.k} · ${formatProportion(p)}` : '—');

/** The result tables (what `rate --results` prints and eval's report shows). */
export function resultTables(r: RatingResults): ReportTable[] {
  const rows = (prefix: string[], t: Record<Question, Tally>) =>
    QUESTIONS.map((q) => [
      ...prefix,
      QUESTION_TEXT[q].short,
      t[q].votes,
      countCell(t[q].win),
      countCell(t[q].tie),
      countCell(t[q].loss),
    ]);
  const columns = ['question', 'votes', `${r.b} better`, 'same', `${r.a} better`];
  const groups = Object.entries(r.groups);
  const tables: ReportTable[] = [
    {
      title: `${r.b} against ${r.a}`,
      columns,
      rows: rows([], r.questions),
      caption: 'Counts, then rates with Wilson 95% intervals.',
    },
  ];
  if (groups.length > 1)
    tables.push({
      title: 'per eval group',
      columns: ['group', ...columns],
      rows: groups.flatMap(([g, t]) => rows([g], t)),
    });
  tables.push({
    title: 'rater agreement',
    columns: ['rater', 'votes', ...QUESTIONS.map((q) => `agrees on ${QUESTION_TEXT[q].short}`)],
    rows: r.agreement.map((x) => [
      x.rater,
      x.votes,
      ...QUESTIONS.map((q) => {
        const a = x.agreement[q];
        return a.n ? `${a.k}/${a.n} · ${formatProportion(a)}` : '—';
      }),
    ]),
    caption: 'Share of the pairs a rater shares with each other rater where both gave the same answer.',
  });
  return tables;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Plain-text tables for the terminal. */
export function formatResults(r: RatingResults): string {
  const out = [
    `${plural(r.votes, 'vote')} by ${plural(r.raters, 'rater')} on ${plural(r.pairs, 'pair')} (${r.b} against ${r.a})`,
  ];
  for (const t of resultTables(r)) {
    const cells = [t.columns, ...t.rows.map((row) => row.map((c) => String(c ?? '—')))];
    const widths = t.columns.map((_, i) => Math.max(...cells.map((row) => String(row[i]).length)));
    out.push('', `${t.title}:`);
    for (const row of cells)
      out.push(
        row
          .map((c, i) => String(c).padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  }
  return out.join('\n');
}

/**
 * The report section of a run's rating: each rater's link to the rating session (as
 * `vggrpo rate RUN` serves it by default, on 127.0.0.1:8765) and, once votes exist, their
 * tables; for a run without a rating database, how to start one. For `eval`
 * (src/stages/eval.ts): one call per run folder it evaluates.
 */
export function ratingSection(run: string): ReportSection {
  const path = join(run, RATING_DB);
  const title = 'Blind A/B rating';
  if (!existsSync(path))
    return {
      title,
      text: `No rating session yet. vggrpo rate ${run} --add-rater NAME prints a rater's link; vggrpo rate ${run} serves the page (${RATING_DEFAULTS.host}:${RATING_DEFAULTS.port}; --host to open it to others). The tables appear here once votes exist.`,
    };
  const store = RatingStore.open(path, { readonly: true });
  try {
    const r = ratingResults(store);
    const links = store.raters().map((x) => {
      const href = raterLink(RATING_DEFAULTS.host, RATING_DEFAULTS.port, x.token);
      return { title: `${x.name}: ${href}`, href };
    });
    return {
      title,
      text: `${plural(r.votes, 'vote')} by ${plural(r.raters, 'rater')} on ${plural(r.pairs, 'pair')} of videos (same prompt and seed; sides hidden and drawn at random). Serve the session with vggrpo rate ${run} (the links below are its default address; the tables: vggrpo rate ${run} --results).`,
      links,
      tables: r.votes ? resultTables(r) : [],
    };
  } finally {
    store.close();
  }
}
