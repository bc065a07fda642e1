/**
 * What every command shares: the common flags, input paths from arguments or stdin, config
 * resolution, and the error convention (one line on stderr; exit 2 for bad input, 1 for
 * runtime failures; a stack trace only with DEBUG set).
 */
import { createInterface } from 'node:readline';
import { Command, Flags, type Interfaces } from '@oclif/core';
import { type Layer, readConfigFile, resolveConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { InputError, VggrpoError } from '../errors.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof VggrpoCommand)['baseFlags'] & T['flags']
>;

export abstract class VggrpoCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    config: Flags.file({ description: 'experiment config (YAML); flags override it', exists: false }),
    device: Flags.option({
      options: ['cpu', 'cuda'] as const,
      description: 'onnxruntime execution provider',
    })(),
    threads: Flags.integer({ description: 'intra-op threads for onnxruntime (0: its default)', min: 0 }),
    seed: Flags.integer({ description: 'random seed', min: 0 }),
  };

  /**
   * Input paths: the arguments, or with none and a non-TTY stdin, one path per line as they
   * arrive (so a stage in a pipe starts on each shard while the previous stage still runs).
   */
  protected async *inputPaths(args: string[]): AsyncGenerator<string> {
    if (args.length > 0) {
      yield* args;
      return;
    }
    if (process.stdin.isTTY) return;
    const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of rl) {
      const p = line.trim();
      if (p) yield p;
    }
  }

  /** Resolve the config: flags > --config file > recorded in the input shard > defaults. */
  protected resolveConfig(opts: { file?: string; recorded?: Layer; source?: string; flags?: Layer }): Config {
    const layers: Layer[] = [];
    if (opts.recorded) {
      // A shard's recorded config is validated alone first, so a fault names that shard.
      resolveConfig([opts.recorded], `${opts.source ?? 'input shard'} (recorded vggrpo.config)`);
      layers.push(opts.recorded);
    }
    if (opts.file) layers.push(readConfigFile(opts.file));
    const runtime: Layer = {};
    const flags = this.baseFlagValues();
    if (flags.device) runtime.device = flags.device;
    if (flags.threads !== undefined) runtime.threads = flags.threads;
    const layer: Layer = { ...(opts.flags ?? {}) };
    if (Object.keys(runtime).length) layer.runtime = { ...((layer.runtime as Layer) ?? {}), ...runtime };
    layers.push(layer);
    return resolveConfig(layers, opts.file ?? 'flags');
  }

  private baseFlagValues(): { device?: 'cpu' | 'cuda'; threads?: number } {
    return (
      (this as unknown as { parsedBase?: { device?: 'cpu' | 'cuda'; threads?: number } }).parsedBase ?? {}
    );
  }

  protected setBaseFlags(flags: { device?: 'cpu' | 'cuda'; threads?: number }): void {
    (this as unknown as { parsedBase: unknown }).parsedBase = flags;
  }

  /** Progress/log line on stderr (stdout carries only shard paths or the JSON summary). */
  protected note(msg: string): void {
    process.stderr.write(`${msg}\n`);
  }

  protected override async catch(
    err: Error & { exitCode?: number; oclif?: { exit?: number } },
  ): Promise<unknown> {
    if (process.env.DEBUG) process.stderr.write(`${err.stack}\n`);
    // The command as the user typed it: oclif's id for `onnx grad` is `onnx:grad`.
    const cmd = this.id?.replace(/:/g, ' ');
    if (err instanceof VggrpoError) {
      process.stderr.write(`vggrpo ${cmd}: ${err.message}\n`);
      return this.exit(err.exitCode);
    }
    // oclif's own usage errors (unknown flag, missing argument, bad option) are bad usage: exit 2.
    if (err.oclif?.exit !== undefined && err.oclif.exit !== 0) {
      if (err.name === 'ExitError' || err.message?.startsWith('EEXIT')) throw err;
      process.stderr.write(`vggrpo ${cmd}: ${oneLine(err.message)}\n`);
      return this.exit(2);
    }
    if (err.name === 'ExitError' || err.message?.startsWith('EEXIT')) throw err;
    process.stderr.write(`vggrpo ${cmd}: ${err.message?.split('\n')[0] ?? String(err)}\n`);
    return this.exit(1);
  }
}

/** oclif's multi-line usage errors as one line ("Missing required flag out; …"). */
function oneLine(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^The following errors? occurred:?$/.test(l) && !/^See more help with/.test(l));
  return lines.join('; ') || message.trim();
}

/** A stage that is not built yet says so and exits 1 (it must not pretend to work). */
export function notBuilt(stage: string): never {
  throw new (class extends VggrpoError {})(`${stage} is not built yet in this version of vggrpo`, 1);
}

export { InputError };

/** A numeric flag given as a string (oclif has no float flag); names the flag when malformed. */
export function numberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new InputError(`--${flag}`, `expected a number, got '${value}'`);
  return n;
}

/** Drop undefined entries so absent flags do not override lower config layers. */
export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
