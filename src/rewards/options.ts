/**
 * Turning a config's free-form reward options into typed ones. Each reward declares a spec per
 * key; unknown keys, wrong types, values outside a range or choice list are InputErrors naming
 * `rewards.<name>.options.<key>`.
 */
import { InputError } from '../errors.js';

export type OptionSpec =
  | { type: 'number'; min?: number; max?: number; integer?: boolean; nullable?: boolean }
  | { type: 'boolean' }
  | { type: 'choice'; choices: readonly string[] };

/**
 * Merge `raw` over `defaults`, checking each key against `spec`.
 *
 * @example
 *   resolveOptions({ eps: 1e-4 }, { eps: { type: 'number', min: 0 } }, { eps: 1e-3 }, 'rewards.motion.options');
 */
export function resolveOptions<O extends object>(
  defaults: Readonly<O>,
  spec: { [K in keyof O]: OptionSpec },
  raw: Record<string, unknown> | Partial<O> | undefined,
  where: string,
): O {
  const out = { ...defaults } as O;
  if (raw === undefined) return out;
  for (const [key, value] of Object.entries(raw)) {
    const s = (spec as Record<string, OptionSpec>)[key];
    const at = `${where}.${key}`;
    if (!s) throw new InputError(at, `unknown option (known: ${Object.keys(spec).join(', ')})`);
    if (value === undefined) continue;
    if (s.type === 'number') {
      if (value === null && s.nullable) {
        (out as Record<string, unknown>)[key] = null;
        continue;
      }
      if (typeof value !== 'number' || Number.isNaN(value))
        throw new InputError(at, `expected a number, got ${String(value)}`);
      if (s.integer && !Number.isInteger(value))
        throw new InputError(at, `expected an integer, got ${value}`);
      if (s.min !== undefined && value < s.min) throw new InputError(at, `must be ≥ ${s.min}, got ${value}`);
      if (s.max !== undefined && value > s.max) throw new InputError(at, `must be ≤ ${s.max}, got ${value}`);
    } else if (s.type === 'boolean') {
      if (typeof value !== 'boolean')
        throw new InputError(at, `expected true or false, got ${String(value)}`);
    } else if (typeof value !== 'string' || !s.choices.includes(value)) {
      throw new InputError(at, `expected one of ${s.choices.join(', ')}, got ${String(value)}`);
    }
    (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
