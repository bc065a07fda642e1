import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin', 'run.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI (`npm test` builds first) as a user would, optionally feeding stdin. */
export function runCli(
  args: string[],
  opts: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, DEBUG: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/**
 * A run folder with eval sets of toy `world` scenes (2 scenes × 2 videos each, rgb in the shards):
 * `run/eval/NAME/geometry`, one set per [name, camera position jitter].
 */
export function worldEvalSets(run: string, sets: readonly (readonly [string, string])[]): void {
  for (const [set, jitter] of sets)
    execFileSync(process.execPath, [
      BIN,
      'world',
      '--out',
      join(run, 'eval', set, 'geometry'),
      '--scenes',
      '2',
      '--group-size',
      '2',
      '--jitter-pos',
      jitter,
    ]);
}

export function tempDir(prefix = 'vggrpo-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A test's skip reason when a tool it needs is missing — but under CI (.ci/run installs every
 * tool) no skip: the test runs and fails, so a cross-check can never silently not happen there.
 */
export function skipOutsideCi(reason: string | false | undefined): string | false {
  return process.env.CI ? false : (reason ?? false);
}

/** Debian's Chromium and the flags that run it headless on these machines (no network, as root). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** A browser test's skip: only outside CI, where a missing Chromium is a failure (.ci/run installs it). */
export const chromiumSkip = skipOutsideCi(
  !existsSync(CHROMIUM) &&
    `Chromium not found at ${CHROMIUM}: install Debian's 'chromium' package (apt-get install -y chromium) to run this test`,
);

/** A fault is reported on exactly one stderr line (the project's rule for bad input). */
export function oneLine(stderr: string): void {
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
}
