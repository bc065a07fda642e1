/**
 * The one way JSON the toolkit reads (shard metadata, checkpoint files) is checked: parsed, then
 * validated by a zod schema; every fault is an InputError naming the file, what was being read
 * and the key path (`metadata vggrpo.inputs[0].sha256: expected a hex sha256`).
 */
import type { z } from 'zod';
import { InputError } from '../errors.js';

/**
 * `what` names the JSON inside the file ('metadata vggrpo.shard'); '' for a whole JSON file.
 *
 * @example
 *   parseJson(metadata['vggrpo.shard'], ShardPlace, file, 'metadata vggrpo.shard');
 */
export function parseJson<T>(text: string, schema: z.ZodType<T>, file: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InputError(file, what ? `${what} is not valid JSON` : 'not valid JSON');
  }
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  // A whole file names its keys bare (`r: …`), a metadata entry after its name (`…inputs[0].path`).
  const key = `${what}${keyPath(issue?.path ?? [])}`.replace(/^\./, '');
  throw new InputError(file, `${key ? `${key}: ` : ''}${issue?.message ?? 'invalid'}`);
}

/** `[0].sha256` for the path [0, 'sha256']. */
export function keyPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
}
