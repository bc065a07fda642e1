/**
 * A stage's input shards: the arguments, or with none one path per line from stdin as they
 * arrive (so a stage in a pipe starts on each shard while the previous stage still runs).
 * Each path is checked as it arrives (exists, is a file) and its place in its run recorded;
 * when the input ends, the runs seen must be complete (docs/PIPES.md). The inputs' folders
 * become lineage roots.
 *
 * @example
 *   const inputs = new ShardInputs(argv, { expected: 'geometry shards', completeness: 'stdin', ... });
 *   for await (const path of inputs) …
 */
import { statSync } from 'node:fs';
import { InputError } from '../errors.js';
import { describeGap, RunCompleteness, shardPlaces } from '../shards/completeness.js';
import { LineageRoots } from '../shards/lineage.js';
import { readSafetensors } from '../shards/safetensors.js';
import { readLines } from './lines.js';

export interface ShardInputOptions {
  /** What the stage reads, for the message when nothing arrives ("trajectory shards"). */
  expected: string;
  /** When the runs seen must be complete: always, only when the paths came from stdin, never. */
  completeness: 'always' | 'stdin' | 'never';
  /** With --allow-partial a gap is a warning instead of exit 2. */
  allowPartial?: boolean;
  allowRoots?: string[];
  /** Folders are inputs too (eval's run folders). */
  folders?: boolean;
  warn?: (message: string) => void;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

export class ShardInputs implements AsyncIterable<string> {
  readonly roots: LineageRoots;
  readonly runs = new RunCompleteness();
  /** Shards missing from the runs seen (non-zero only with --allow-partial). */
  missing = 0;
  count = 0;

  constructor(
    private readonly args: string[],
    private readonly opts: ShardInputOptions,
  ) {
    this.roots = new LineageRoots(opts.allowRoots ?? []);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    const fromStdin = this.args.length === 0;
    const mode = this.opts.completeness;
    // Places are read (a header each) only when the runs will be checked.
    const checked = mode === 'always' || (mode === 'stdin' && fromStdin);
    for await (const path of fromStdin ? this.stdinPaths() : this.args) {
      this.accept(path, checked);
      this.count++;
      yield path;
    }
    if (this.count === 0) {
      throw new InputError(
        fromStdin ? 'stdin' : '',
        `no input: expected ${this.opts.expected} as arguments or one path per line on stdin`,
      );
    }
    if (checked) this.checkComplete();
  }

  private async *stdinPaths(): AsyncGenerator<string> {
    const stdin = this.opts.stdin ?? process.stdin;
    if (stdin.isTTY) return; // nothing piped in: the "no input" error says what was expected
    yield* readLines(stdin);
  }

  private accept(path: string, checked: boolean): void {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new InputError(path, code === 'ENOENT' ? 'not found' : `cannot open (${code ?? err})`);
    }
    if (st.isDirectory()) {
      if (!this.opts.folders) throw new InputError(path, 'is a directory, not a shard');
      this.roots.addDir(path);
      return;
    }
    if (!st.isFile()) throw new InputError(path, 'is not a regular file');
    this.roots.addInput(path);
    if (checked && path.endsWith('.safetensors'))
      // Only the header is read here (no tensor is selected); the stage reads the shard itself.
      this.runs.see(path, shardPlaces(readSafetensors(path, { select: () => false }).metadata, path));
  }

  private checkComplete(): void {
    const gaps = this.runs.gaps();
    if (gaps.length === 0) return;
    this.missing = this.runs.missingCount();
    const what = gaps.map(describeGap).join('; ');
    if (!this.opts.allowPartial)
      throw new InputError(
        'input',
        `incomplete: ${what} (did an upstream stage fail? --allow-partial goes on without them)`,
      );
    this.opts.warn?.(`warning: incomplete input (--allow-partial): ${what}`);
  }
}
