/**
 * The rating server (node:http, no framework): a rater's link `/r/TOKEN` serves the page; the
 * page asks `/r/TOKEN/next`, loads `/r/TOKEN/video/PAIR/left|right` and posts
 * `/r/TOKEN/vote`. An unknown token is 403; a vote for a pair that rater was not shown, or a
 * body that does not parse, is 400; a second vote on a pair is 409. Nothing is written then.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { urlHost } from './link.js';
import { ratingPage } from './page.js';
import { type Rater, type RatingStore, Token } from './store.js';

const MAX_BODY = 4096;

const AnswerSchema = z.enum(['left', 'right', 'same']);
/** A vote as the page posts it: the pair shown and one answer per question (src/rating/page.ts). */
export const VoteBody = z.strictObject({
  pair: z.number().int().positive(),
  visual: AnswerSchema,
  motion: AnswerSchema,
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(400, `body over ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseVote(text: string): z.infer<typeof VoteBody> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
  const v = VoteBody.safeParse(raw);
  if (!v.success) {
    const i = v.error.issues[0]!;
    throw new HttpError(400, `malformed vote: ${i.path.join('.') || 'body'}: ${i.message}`);
  }
  return v.data;
}

/** An mp4 with single-range support: browsers seek (and loop) videos through Range requests. */
function sendVideo(req: IncomingMessage, res: ServerResponse, path: string): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new HttpError(404, 'video not found');
  }
  const head = { 'content-type': 'video/mp4', 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (!m || (m[1] === '' && m[2] === '')) {
    res.writeHead(200, { ...head, 'content-length': size });
    createReadStream(path).pipe(res);
    return;
  }
  const start = m[1] === '' ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  const end = m[1] !== '' && m[2] !== '' ? Math.min(size - 1, Number(m[2])) : size - 1;
  if (start > end || start >= size) {
    res.writeHead(416, { 'content-range': `bytes */${size}` });
    res.end();
    return;
  }
  res.writeHead(206, {
    ...head,
    'content-length': end - start + 1,
    'content-range': `bytes ${start}-${end}/${size}`,
  });
  createReadStream(path, { start, end }).pipe(res);
}

async function route(store: RatingStore, videoDir: string, req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? '/', 'http://rating.invalid');
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] !== 'r' || parts.length < 2)
    throw new HttpError(404, 'open the link you were given (/r/TOKEN)');
  const token = parts[1]!;
  const rater: Rater | undefined = Token.safeParse(token).success ? store.raterByToken(token) : undefined;
  if (!rater) throw new HttpError(403, 'unknown rater token');
  const rest = parts.slice(2);
  const method = req.method ?? 'GET';
  if (rest.length === 0 && method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(ratingPage(rater.name));
    return;
  }
  if (rest[0] === 'next' && rest.length === 1 && method === 'GET') {
    const s = store.nextScreen(rater);
    const total = store.pairs().length;
    if (!s) return json(res, 200, { done: true, answered: total, total });
    return json(res, 200, { done: false, pair: s.pair.id, answered: s.answered, total: s.total });
  }
  if (rest[0] === 'video' && rest.length === 3 && method === 'GET') {
    const side = rest[2];
    const id = Number(rest[1]);
    if (!Number.isInteger(id) || (side !== 'left' && side !== 'right'))
      throw new HttpError(400, 'bad video path');
    const shown = store.shownSide(rater, id);
    if (!shown) throw new HttpError(400, 'that pair was not shown to this rater');
    const aOnLeft = shown.leftIsA === (side === 'left');
    return sendVideo(req, res, join(videoDir, aOnLeft ? shown.pair.a_video : shown.pair.b_video));
  }
  if (rest[0] === 'vote' && rest.length === 1 && method === 'POST') {
    const vote = parseVote(await readBody(req));
    const outcome = store.vote(rater, vote.pair, vote);
    if (outcome === 'not-shown') throw new HttpError(400, `pair ${vote.pair} was not shown to this rater`);
    if (outcome === 'already-voted') throw new HttpError(409, `pair ${vote.pair} is already rated`);
    return json(res, 200, { ok: true });
  }
  throw new HttpError(404, 'not found');
}

export interface RatingServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Serve the rating page on host:port (port 0: any free one). */
export function serveRating(
  store: RatingStore,
  videoDir: string,
  opts: { host: string; port: number },
): Promise<RatingServer> {
  const server = createServer((req, res) => {
    route(store, videoDir, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) json(res, status, { error: err instanceof Error ? err.message : String(err) });
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      const addr = server.address() as AddressInfo;
      resolve({
        url: `http://${urlHost(opts.host)}:${addr.port}/`,
        port: addr.port,
        server,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}
