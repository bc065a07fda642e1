/**
 * The project's own line reader for paths on stdin: one path per line, whatever the timing of
 * the writes (a path split across two chunks, two paths in one chunk, a last line without a
 * newline). Blank lines are skipped; `\r\n` endings are accepted.
 *
 * @example
 *   for await (const path of readLines(process.stdin)) console.log(path);
 */
import { StringDecoder } from 'node:string_decoder';

export async function* readLines(stream: NodeJS.ReadableStream): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) yield line;
      nl = pending.indexOf('\n');
    }
  }
  const last = (pending + decoder.end()).trim();
  if (last) yield last;
}
