/**
 * `vggrpo rate` as a child process for the rating tests: start it on a free port and stop it the
 * way a user does (SIGTERM), so both the CLI test and the browser test drive the real server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { BIN } from '../helpers.js';

/** Start `vggrpo rate RUN --port 0`; resolves with its URL (its one stdout line). */
export function startRateServer(run: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [BIN, 'rate', run, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
      if (m) resolve({ url: m[1]!, child });
    });
    child.on('exit', (code) => reject(new Error(`rate exited with ${code}: ${err}`)));
  });
}

/** SIGTERM the server; resolves with its exit code. */
export function stopRateServer(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}
