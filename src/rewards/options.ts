/**
 * Turning a config's free-form reward options into typed ones. Each reward declares a zod
 * object of its options; unknown keys, wrong types, values outside a range or choice list are
 * InputErrors naming `rewards.<name>.options.<key>`. The config schema runs the same check when
 * any stage starts (src/config/schema.ts), so `sample` refuses what `score` would.
 */
import type { z } from 'zod';
import { InputError } from '../errors.js';

/**
 * Merge `raw` over `defaults`, checking it against `schema` (a strict zod object).
 *
 * @example
 *   resolveOptions(MOTION_DEFAULTS, MotionOptionsSchema, { eps: 1e-3 }, 'rewards.motion.options');
 */
export function resolveOptions<O extends object>(
  defaults: Readonly<O>,
  schema: z.ZodType<Partial<O>>,
  raw: Record<string, unknown> | Partial<O> | undefined,
  where: string,
): O {
  if (raw === undefined) return { ...defaults };
  const r = schema.safeParse(raw);
  if (r.success) {
    const set = Object.fromEntries(Object.entries(r.data).filter(([, v]) => v !== undefined));
    return { ...defaults, ...set } as O;
  }
  const issue = r.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    const known = Object.keys(defaults).join(', ');
    throw new InputError(`${where}.${issue.keys.join(', ')}`, `unknown option (known: ${known})`);
  }
  const key = issue?.path.map(String).join('.');
  throw new InputError(key ? `${where}.${key}` : where, issue?.message ?? 'invalid options');
}
