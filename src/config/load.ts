/**
 * Config resolution with the precedence of README.md (Configuration):
 * flags > --config FILE > the config recorded in the input shard > built-in defaults.
 * Relative model paths in a config file resolve against the file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { InputError } from '../errors.js';
import { Config } from './schema.js';

export type Layer = Record<string, unknown>;

/** Read a YAML config file as a layer (not yet validated), with model paths made absolute. */
export function readConfigFile(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(path, `cannot read config (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    throw new InputError(path, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new InputError(path, 'config must be a YAML mapping');
  const layer = doc as Layer;
  // Validate alone first, so a typo is reported against this file.
  validate([layer], path);
  const models = layer.models as Record<string, unknown> | undefined;
  if (models) {
    for (const [k, v] of Object.entries(models)) {
      if (typeof v === 'string' && !isAbsolute(v)) models[k] = resolve(dirname(path), v);
    }
  }
  // The judge is a model path too.
  const evalLayer = layer.eval as Record<string, unknown> | undefined;
  if (typeof evalLayer?.judge === 'string' && !isAbsolute(evalLayer.judge))
    evalLayer.judge = resolve(dirname(path), evalLayer.judge);
  return layer;
}

/** Deep-merge layers, later ones winning; arrays and scalars replace. */
export function mergeLayers(layers: Layer[]): Layer {
  const out: Layer = {};
  for (const layer of layers) merge(out, layer);
  return out;
}

/** Maps that a higher layer replaces whole: a config that lists rewards means exactly those. */
const REPLACED = new Set(['rewards']);

function merge(target: Layer, src: Layer, depth = 0): void {
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined) continue;
    const cur = target[k];
    if (isPlain(v) && isPlain(cur) && !(depth === 0 && REPLACED.has(k)))
      merge(cur as Layer, v as Layer, depth + 1);
    else target[k] = isPlain(v) ? structuredClone(v) : v;
  }
}

function isPlain(v: unknown): v is Layer {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merge layers (lowest precedence first) and validate against the schema.
 *
 * @example
 *   const cfg = resolveConfig([recordedInShard, readConfigFile('exp.yaml'), flagLayer], 'exp.yaml');
 */
export function resolveConfig(layers: Layer[], where = 'config'): Config {
  return validate(layers, where);
}

/** A config fault, with the key path it is about (so a flag's fault can name the flag). */
export class ConfigKeyError extends InputError {
  constructor(
    where: string,
    fault: string,
    readonly key: string,
    readonly detail: string,
  ) {
    super(where, fault);
  }
}

function validate(layers: Layer[], where: string): Config {
  const merged = mergeLayers(layers);
  const result = Config.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = issue?.path.map(String).join('.') ?? '';
    throw new ConfigKeyError(where, describeIssue(result.error), key, issue?.message ?? '');
  }
  return result.data;
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const base = issue.path.join('.');
    const keys = issue.keys.map((k) => (base ? `${base}.${k}` : k));
    return `unknown config key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
  }
  const path = issue.path.join('.') || '(root)';
  return `config key ${path}: ${issue.message}`;
}

/** A stable JSON form of a config, used for provenance and config hashes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isPlain(v)) {
    const out: Layer = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
    return out;
  }
  return v;
}
