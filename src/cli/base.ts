/**
 * What every command shares: the common flags, input paths from arguments or stdin, config
 * resolution, and the error convention (one line on stderr; exit 2 for bad input, 1 for
 * runtime failures; a stack trace only with DEBUG set).
 */
import { statSync } from 'node:fs';
import { Args, Command, Flags, type Interfaces } from '@oclif/core';
import { ConfigKeyError, type Layer, readConfigFile, resolveConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { InputError, VggrpoError } from '../errors.js';
import { removeTempsInFlight } from '../shards/atomic.js';
import { type ShardInputOptions, ShardInputs } from './inputs.js';
import { liveProgress, Progress } from './progress.js';

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

  /** Whether `--out` names a folder (so an existing file there is refused before any work). */
  static outIsFolder = true;

  /** Every command passes here, so the base flags and the `--out` check reach them all. */
  override async init(): Promise<void> {
    await super.init();
    exitCleanlyOnSignals(this.commandName());
    const ctor = this.constructor as typeof VggrpoCommand;
    const { flags } = await this.parse({
      flags: ctor.flags,
      baseFlags: ctor.baseFlags,
      args: ctor.args,
      strict: ctor.strict,
      enableJsonFlag: ctor.enableJsonFlag,
    });
    const f = flags as { device?: 'cpu' | 'cuda'; threads?: number; out?: string };
    this.parsedBase = { device: f.device, threads: f.threads };
    if (ctor.outIsFolder && f.out !== undefined) checkOutFolder(f.out);
  }

  /**
   * The input shards: the arguments, or with none, one path per line from stdin as they
   * arrive; checked for existence and, at the end, for completeness (src/cli/inputs.ts).
   */
  protected shardInputs(args: string[], opts: ShardInputOptions): ShardInputs {
    return new ShardInputs(args, { warn: (m) => this.note(m), ...opts });
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
    this.validateFlagLayer(layer);
    layers.push(layer);
    return resolveConfig(layers, opts.file ?? 'flags');
  }

  private parsedBase: { device?: 'cpu' | 'cuda'; threads?: number } = {};
  private readonly progress = new Progress(process.stderr, liveProgress());

  /** A path (or the summary) on stdout; on a terminal the status line steps aside for it. */
  override log(message = '', ...args: unknown[]): void {
    this.progress.around(() => super.log(message, ...args));
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    this.progress.end();
    return super.finally(err);
  }

  private baseFlagValues(): { device?: 'cpu' | 'cuda'; threads?: number } {
    return this.parsedBase;
  }

  /** The command as the user typed it: oclif's id for `onnx grad` is `onnx:grad`. */
  private commandName(): string {
    return this.id?.replace(/:/g, ' ') ?? '';
  }

  /** Flags validated alone, so a bad value names the flag (`--noise-level`), not a file. */
  private validateFlagLayer(layer: Layer): void {
    try {
      resolveConfig([layer], 'flags');
    } catch (err) {
      if (!(err instanceof ConfigKeyError)) throw err;
      const leaf = err.key.split('.').at(-1) ?? '';
      const flag = leaf.replace(/_/g, '-');
      const ctor = this.constructor as typeof VggrpoCommand;
      const known = flag in (ctor.flags ?? {}) || flag in ctor.baseFlags;
      throw new InputError(known ? `--${flag}` : `flags (${err.key})`, `${err.detail} (${err.key})`);
    }
  }

  /** Progress on stderr: a live line on a terminal, a line per step otherwise (src/cli/progress.ts). */
  protected note(msg: string): void {
    if (msg.startsWith('warning:')) this.progress.warn(msg);
    else this.progress.step(msg);
  }

  protected override async catch(
    err: Error & { exitCode?: number; oclif?: { exit?: number } },
  ): Promise<unknown> {
    this.progress.end();
    if (process.env.DEBUG) process.stderr.write(`${err.stack}\n`);
    const cmd = this.commandName();
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

/** The positional argument of a stage that reads shards: oclif must never read stdin for it. */
export function shardArgs(description: string) {
  return { shards: Args.string({ description, ignoreStdin: true }) };
}

/** Flags of a stage that checks its runs are complete. */
export const pipeFlags = {
  'allow-partial': Flags.boolean({
    description: 'go on when shards of a run are missing (a warning instead of exit 2)',
  }),
  'allow-root': Flags.directory({
    description: 'also allow lineage (vggrpo.inputs, vggrpo.policy) to name files under this folder',
    multiple: true,
  }),
};

function checkOutFolder(out: string): void {
  let isFolder = true;
  try {
    isFolder = statSync(out).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR')
      throw new InputError('--out', `${out}: a folder on its path is an existing file`);
    return; // created when the stage writes its first output
  }
  if (!isFolder) throw new InputError('--out', `${out} is an existing file, not a folder`);
}

let signalsInstalled = false;

/**
 * SIGTERM, SIGINT and a closed stdout (EPIPE: the next stage of a pipe ended) end the process
 * with one line and the code a shell expects (128 + signal), never a stack trace. Outputs are
 * written atomically, so nothing half-written is left.
 */
function exitCleanlyOnSignals(cmd: string): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const stop = (why: string, code: number) => {
    removeTempsInFlight();
    process.stderr.write(`vggrpo ${cmd}: ${why}; stopped\n`);
    process.exit(code);
  };
  process.once('SIGTERM', () => stop('terminated (SIGTERM)', 143));
  process.once('SIGINT', () => stop('interrupted (SIGINT)', 130));
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') stop('stdout closed (the next stage of the pipe ended)', 141);
    else throw err;
  });
}
