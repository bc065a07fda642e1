/**
 * Progress on stderr, the way users expect it: on a terminal (a stage run on its own, not in a
 * pipe) one live status line that each step redraws, with warnings printed above it; otherwise
 * — in a pipe, a log file, CI — one plain line per step. stdout is never touched: it carries
 * only shard paths or the --json summary.
 *
 * @example
 *   const p = new Progress(process.stderr, liveProgress());
 *   p.step('sample: group 1/4'); p.warn('warning: …'); p.end();
 */

/** A live line only when the stage owns the terminal: no pipe on stdin or stdout, not CI. */
export function liveProgress(): boolean {
  return Boolean(process.stderr.isTTY && process.stdout.isTTY && process.stdin.isTTY && !process.env.CI);
}

const CLEAR = '\r\x1b[2K';

export class Progress {
  private last = '';

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    private readonly live: boolean,
  ) {}

  /** A step: redraws the status line (live) or prints a line. */
  step(message: string): void {
    if (!this.live) {
      this.out.write(`${message}\n`);
      return;
    }
    this.last = message;
    this.out.write(CLEAR + this.fit(message));
  }

  /** A line that stays (a warning, an error): printed above the status line. */
  warn(message: string): void {
    if (!this.live) {
      this.out.write(`${message}\n`);
      return;
    }
    this.out.write(`${CLEAR}${message}\n${this.fit(this.last)}`);
  }

  /** Something else written to the terminal (a path on stdout): the status line steps aside. */
  around(write: () => void): void {
    if (!this.live) {
      write();
      return;
    }
    this.out.write(CLEAR);
    write();
    this.out.write(this.fit(this.last));
  }

  /** The last step stays on screen as a plain line. */
  end(): void {
    if (!this.live || !this.last) return;
    this.out.write(`${CLEAR}${this.last}\n`);
    this.last = '';
  }

  private fit(message: string): string {
    const width = this.out.columns ?? 80;
    return message.length < width ? message : `${message.slice(0, width - 2)}…`;
  }
}
