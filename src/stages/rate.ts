/**
 * `rate`: blind A/B rating of two eval sets of a run (README.md, "Blind A/B rating"). Adds
 * raters, serves the rating page, and reports what the votes say. The database and the videos
 * live in the run folder (`rating.sqlite`, `rating/videos/`), so a restart goes on where the
 * last one stopped.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { linkHost, raterLink, urlHost } from '../rating/link.js';
import { evalSetsOf, preparePairs } from '../rating/pairs.js';
import { RATING_DB, type RatingResults, ratingResults } from '../rating/results.js';
import { type RatingServer, serveRating } from '../rating/server.js';
import { RaterName, RatingStore } from '../rating/store.js';
import { LineageRoots } from '../shards/lineage.js';
import { readShard } from '../shards/shard.js';
import type { ConfigResolver, StageIo } from './types.js';

export interface RateOptions {
  run: string;
  /** The reference set prefix (`base`) and the candidate's (`final`). */
  a: string;
  b: string;
  host: string;
  port: number;
  /** Folders beyond the run folder that lineage (the eval sets' trajectories) may lead to. */
  allowRoots?: string[];
}

function checkRun(run: string): void {
  let dir: boolean;
  try {
    dir = statSync(run).isDirectory();
  } catch {
    throw new InputError(run, 'not found');
  }
  if (!dir) throw new InputError(run, 'is not a folder (expected a run folder with eval/ sets)');
}

function checkSets(o: { a: string; b: string }): void {
  for (const [flag, v] of [
    ['--a', o.a],
    ['--b', o.b],
  ] as const)
    if (!/^[\w.-]+$/.test(v)) throw new InputError(flag, `'${v}' is not an eval set name`);
  if (o.a === o.b) throw new InputError('--b', `must name another set than --a (${o.a})`);
}

/** The host a link names: a wildcard address is no place to browse to, the machine's name is. */

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export interface AddedRater {
  rater: string;
  link: string;
}

/** Add a rater (or look up one added before) and return their link. */
export function addRater(name: string, o: RateOptions): AddedRater {
  checkRun(o.run);
  checkSets(o);
  const parsed = RaterName.safeParse(name);
  if (!parsed.success) throw new InputError('--add-rater', parsed.error.issues[0]!.message);
  const store = RatingStore.open(join(o.run, RATING_DB), { create: true });
  try {
    store.comparison(o.a, o.b);
    const r = store.addRater(parsed.data);
    return { rater: r.name, link: raterLink(o.host, o.port, r.token) };
  } finally {
    store.close();
  }
}

/** What the votes of a run say (`rate --results`). */
export function rateResults(run: string): RatingResults {
  checkRun(run);
  const path = join(run, RATING_DB);
  if (!existsSync(path))
    throw new InputError(
      path,
      'not found: nothing rated yet (vggrpo rate RUN --add-rater NAME, then vggrpo rate RUN)',
    );
  const store = RatingStore.open(path, { readonly: true });
  try {
    return ratingResults(store);
  } finally {
    store.close();
  }
}

export interface RatingSession extends RatingServer {
  pairs: number;
  raters: number;
}

/** Prepare the pairs (videos written once) and serve the page until the process ends. */
export async function startRating(
  o: RateOptions,
  resolveConfig: ConfigResolver,
  io: StageIo,
): Promise<RatingSession> {
  checkRun(o.run);
  checkSets(o);
  const store = RatingStore.open(join(o.run, RATING_DB), { create: true });
  try {
    store.comparison(o.a, o.b);
    const first = evalSetsOf(o.run).find((s) => s.geometry.length)?.geometry[0];
    const config = first ? resolveConfig(readShard(first, 'geometry').config, first) : resolveConfig();
    const videoDir = join(o.run, 'rating', 'videos');
    const pairs = store.putPairs(
      await preparePairs(
        o.run,
        o,
        config,
        new LineageRoots([o.run, ...(o.allowRoots ?? [])]),
        videoDir,
        io.note,
      ),
    );
    const raters = store.raters().length;
    const server = await serveRating(store, videoDir, { host: o.host, port: o.port });
    io.note(
      `rate: ${pairs.length} pairs, ${raters} rater${raters === 1 ? '' : 's'}${raters ? '' : ' (add one: vggrpo rate RUN --add-rater NAME)'}; stop with Ctrl-C (votes are saved as they come)`,
    );
    if (!isLoopback(o.host))
      io.note(`warning: rate: listening on ${o.host}: anyone who can reach it with a rater's link can vote`);
    const url = `http://${urlHost(linkHost(o.host))}:${server.port}/`;
    io.emit(url);
    return {
      ...server,
      url,
      pairs: pairs.length,
      raters,
      close: async () => {
        await server.close();
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
