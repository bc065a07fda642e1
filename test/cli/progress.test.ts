/**
 * Progress on stderr: plain lines when not on a terminal (what a log or a pipe shows), a live
 * status line on a terminal that warnings and stdout paths step around; and through the CLI,
 * a stage whose stderr is not a terminal writes no control characters.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Progress } from '../../src/cli/progress.js';
import { runCli, tempDir } from '../helpers.js';

function sink() {
  const chunks: string[] = [];
  return { chunks, stream: { write: (s: string) => chunks.push(s) > 0, columns: 30 } as never };
}

test('not live: one plain line per step and per warning', () => {
  const s = sink();
  const p = new Progress(s.stream, false);
  p.step('sample: group 1/2');
  p.warn('warning: sample 1');
  p.step('sample: group 2/2');
  p.end();
  assert.equal(s.chunks.join(''), 'sample: group 1/2\nwarning: sample 1\nsample: group 2/2\n');
});

test('live: steps redraw one line, warnings and stdout step around it, the last step stays', () => {
  const s = sink();
  const p = new Progress(s.stream, true);
  p.step('sample: group 1/2');
  p.warn('warning: sample 1');
  p.around(() => s.chunks.push('<path>'));
  p.step('a step much longer than the thirty columns of this terminal');
  p.end();
  const out = s.chunks.join('');
  assert.equal(
    out,
    '\r\x1b[2Ksample: group 1/2' +
      '\r\x1b[2Kwarning: sample 1\nsample: group 1/2' +
      '\r\x1b[2K<path>sample: group 1/2' +
      '\r\x1b[2Ka step much longer than the …' +
      '\r\x1b[2Ka step much longer than the thirty columns of this terminal\n',
  );
});

test('through the CLI with stderr in a pipe: plain lines only', async () => {
  const dir = tempDir('vggrpo-progress-');
  const prompts = join(dir, 'p.txt');
  writeFileSync(prompts, 'orbit the box\npan left\n');
  const r = await runCli([
    'sample',
    '--prompts',
    prompts,
    '--group-size',
    '2',
    '--steps',
    '2',
    '--out',
    join(dir, 't'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^sample: group 1\/2 .*\nsample: group 2\/2 /);
  assert.ok(!r.stderr.includes('\u001b') && !r.stderr.includes('\r'), 'no control characters');
});
