/**
 * Pipes that never lose work (docs/PIPES.md), through the real binary and real shell pipes:
 * late and batched paths, empty input, a kill -9 of the upstream stage, lineage that points
 * at a device or outside the allowed folders, NaN planted in input files, signals.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors, writeSafetensors } from '../../src/shards/safetensors.js';
import { BIN, ROOT, runCli, tempDir } from '../helpers.js';

const dir = tempDir('vggrpo-pipes-');
const cfg = join(dir, 'small.yaml');
writeFileSync(
  cfg,
  `${readFileSync(join(ROOT, 'examples/toy/analytic.yaml'), 'utf8').replace(/\.\.\/\.\.\/onnx\//g, `${join(ROOT, 'onnx')}/`)}\n`,
);
const prompts = join(dir, 'prompts.txt');
writeFileSync(
  prompts,
  'orbit around the red box\ndolly toward the blue sphere\npan across the room\narc over the desk\n',
);
const VG = `${process.execPath} ${BIN}`;

/** Run a bash pipeline; returns each stage's exit code (PIPESTATUS), stdout and stderr. */
function bash(script: string, timeout = 120_000): { codes: number[]; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', `${script}; echo "codes:\${PIPESTATUS[*]}" >&2`], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, DEBUG: '' },
  });
  const m = /codes:([\d ]+)\s*$/.exec(r.stderr);
  return {
    codes: (m?.[1] ?? '').trim().split(' ').map(Number),
    stdout: r.stdout,
    stderr: r.stderr.replace(/codes:[\d ]+\s*$/, ''),
  };
}

const lines = (s: string) => s.split('\n').filter((l) => l.trim());

// Ground-truth world shards: three shards of one run, cheap to score.
const world = join(dir, 'w', 'world');
const w = await runCli(['world', '--scenes', '3', '--group-size', '2', '--per-shard', '1', '--out', world]);
assert.equal(w.code, 0, w.stderr);
const worldShards = lines(w.stdout);

test('late paths are all read: a path arriving seconds after the first is scored', () => {
  const out = join(dir, 'late');
  const r = bash(
    `(echo ${worldShards[0]}; sleep 2; echo ${worldShards[1]}; sleep 1; echo ${worldShards[2]}) | ${VG} score --out ${out}`,
  );
  assert.deepEqual(r.codes, [0, 0], r.stderr);
  assert.equal(lines(r.stdout).length, 3, r.stdout);
});

test('paths that arrive in one write are separate paths; blank lines are skipped', () => {
  const out = join(dir, 'together');
  const r = bash(`printf '${worldShards.join('\\n\\n')}\\n' | ${VG} score --out ${out}`);
  assert.deepEqual(r.codes, [0, 0], r.stderr);
  assert.deepEqual(
    lines(r.stdout),
    worldShards.map((p) => join(out, p.split('/').at(-1)!)),
  );
});

test('no input at all is exit 2 with one line saying what the stage expected', () => {
  for (const feed of ['true |', '< /dev/null', `find ${dir} -name none |`]) {
    const script = feed.startsWith('<') ? `${VG} score ${feed}` : `${feed} ${VG} score`;
    const r = bash(script);
    assert.equal(r.codes.at(-1), 2, `${feed}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /no input: expected geometry shards/);
  }
  const d = bash(`true | ${VG} decode-geometry`);
  assert.match(d.stderr, /expected trajectory shards/);
});

test('a path that does not exist is exit 2 naming it', () => {
  const r = bash(`echo ${join(dir, 'nope.safetensors')} | ${VG} score`);
  assert.equal(r.codes.at(-1), 2);
  assert.match(r.stderr, /nope\.safetensors: not found/);
});

test('a run with a missing shard on stdin is exit 2 naming the run and the index; --allow-partial warns', async () => {
  const out = join(dir, 'partial');
  const r = bash(`printf '${worldShards[0]}\\n${worldShards[2]}\\n' | ${VG} score --out ${out}`);
  assert.equal(r.codes.at(-1), 2, r.stderr);
  assert.match(r.stderr, /run [0-9a-f]{16}: missing shard 1 of 3/);
  assert.equal(lines(r.stdout).length, 2, 'the shards it got are scored and printed');
  const p = bash(`printf '${worldShards[0]}\\n' | ${VG} score --allow-partial --out ${out}`);
  assert.equal(p.codes.at(-1), 0, p.stderr);
  assert.match(p.stderr, /warning: incomplete input.*missing shards 1–2 of 3/);
  // A shard named as an argument is a deliberate choice (one task of a job array).
  const a = await runCli(['score', worldShards[1]!, '--out', out]);
  assert.equal(a.code, 0, a.stderr);
});

test('kill -9 of sample mid-run: every later stage exits 2 and grpo-step writes no checkpoint', async () => {
  const run = join(dir, 'killed');
  const pidFile = join(dir, 'sample.pid');
  const script = [
    `{ ${VG} sample --config ${cfg} --prompts ${prompts} --group-size 2 --steps 40 --per-shard 1 --threads 1 --out ${run}/trajectory & echo $! > ${pidFile}; wait $!; }`,
    `${VG} decode-geometry --out ${run}/geometry`,
    `${VG} score --out ${run}/rewards`,
    `${VG} grpo-step --out ${run}/policy`,
  ].join(' | ');
  const child = spawn('bash', ['-c', `${script}; echo "codes:\${PIPESTATUS[*]}" >&2`], {
    cwd: ROOT,
    env: { ...process.env, DEBUG: '' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  // Kill sample once decode-geometry has written its first shard (so sample printed that path).
  const first = join(run, 'geometry', 'shard-0000.safetensors');
  const deadline = Date.now() + 60_000;
  while (!existsSync(first) || !existsSync(pidFile)) {
    assert.ok(Date.now() < deadline, `sample wrote nothing: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  await new Promise((r) => child.on('close', r));
  const codes = (/codes:([\d ]+)/.exec(stderr)?.[1] ?? '').trim().split(' ').map(Number);
  assert.equal(codes[0], 137, stderr);
  assert.deepEqual(codes.slice(1), [2, 2, 2], stderr);
  assert.match(
    stderr,
    /vggrpo decode-geometry: input: incomplete: run [0-9a-f]{16}: missing shards? [\d–, ]+ of 4/,
  );
  assert.ok(!existsSync(join(run, 'policy')), 'no checkpoint from part of the rollouts');
  assert.ok(!existsSync(join(run, 'metrics.jsonl')));
});

test('stdout closed by the next stage: exit 141 with one line, no stack trace', () => {
  const r = bash(
    `${VG} world --scenes 40 --group-size 2 --per-shard 1 --out ${join(dir, 'epipe')} | head -c 1 > /dev/null`,
  );
  assert.equal(r.codes[0], 141, r.stderr);
  assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
  assert.match(r.stderr, /stdout closed/);
});

test('SIGTERM: exit 143 with one line and no temp files left', async () => {
  const out = join(dir, 'term');
  const child = spawn(
    process.execPath,
    [BIN, 'sample', '--config', cfg, '--prompts', prompts, '--steps', '40', '--threads', '1', '--out', out],
    { env: { ...process.env, DEBUG: '' } },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  while (!stderr.includes('sample: group')) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 143, stderr);
  assert.match(stderr, /terminated \(SIGTERM\); stopped/);
  const left = existsSync(out) ? readdirSync(out).filter((f) => f.includes('.tmp')) : [];
  assert.deepEqual(left, []);
});

/** A copy of a shard with one tensor value replaced (metadata kept). */
function plant(src: string, dst: string, tensor: string, index: number, value: number, meta = {}): string {
  const { tensors, metadata } = readSafetensors(src);
  const t = tensors.get(tensor)!;
  const data = (t.data as Float32Array).slice();
  data[index] = value;
  tensors.set(tensor, { ...t, data });
  mkdirSync(join(dst, '..'), { recursive: true });
  writeSafetensors(dst, tensors, { ...metadata, ...meta });
  return dst;
}

test('NaN or Inf in an input file is exit 2 naming file, tensor and index, for every tensor kind', async () => {
  // Geometry tensors → score.
  for (const name of ['depth', 'points', 'confidence', 'extrinsics', 'intrinsics']) {
    const p = plant(worldShards[0]!, join(dir, 'nan', name, 'g.safetensors'), name, 7, Number.NaN);
    const r = await runCli(['score', p, '--out', join(dir, 'nan-out')]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`g\\.safetensors: tensor '${name}': non-finite value NaN at flat index 7`),
    );
  }
  // Trajectory tensors → decode-geometry.
  const t = await runCli([
    'sample',
    ...['--config', cfg, '--prompts', prompts, '--group-size', '2', '--steps', '3', '--per-shard', '4'],
    ...['--out', join(dir, 'nan-t', 'trajectory')],
  ]);
  assert.equal(t.code, 0, t.stderr);
  const traj = lines(t.stdout)[0]!;
  for (const name of ['final_latents', 'context', 'log_probs', 'latents']) {
    const p = plant(traj, join(dir, 'nan-t', name, 't.safetensors'), name, 3, Number.POSITIVE_INFINITY);
    const r = await runCli(['decode-geometry', p, '--out', join(dir, 'nan-t-out')]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`tensor '${name}': non-finite value Infinity at flat index 3`));
  }
});

test('a sample marked non-finite by the stage that wrote it is a warning and scores its group minimum', async () => {
  const { tensors } = readSafetensors(worldShards[0]!);
  const B = tensors.get('depth')!.shape[0]!;
  const per = tensors.get('extrinsics')!.data.length / B;
  const src = plant(
    worldShards[0]!,
    join(dir, 'marked', 'world', 'a.safetensors'),
    'extrinsics',
    per + 1,
    Number.NaN,
  );
  // Mark sample 1 (the one with the NaN) as the writer's own finding.
  const f = readSafetensors(src);
  f.tensors.set('nonfinite', {
    dtype: 'U8',
    shape: [B],
    data: Uint8Array.from({ length: B }, (_, b) => +(b === 1)),
  });
  writeSafetensors(src, f.tensors, f.metadata);
  const r = await runCli(['score', src, '--out', join(dir, 'marked', 'rewards')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: .*sample 1 \(group 0\): non-finite motion reward replaced by the group minimum/,
  );
  const out = readSafetensors(lines(r.stdout)[0]!);
  const motion = out.tensors.get('reward/motion')!.data as Float32Array;
  assert.equal(motion[1], motion[0], 'group of two: the minimum is the other sample');
});

test('lineage naming /dev/zero, a file outside the allowed folders, or a policy elsewhere is exit 2', async () => {
  const run = join(dir, 'lin');
  const s = await runCli([
    'sample',
    ...['--config', cfg, '--prompts', prompts, '--group-size', '2', '--steps', '3', '--per-shard', '4'],
    ...['--out', join(run, 'trajectory')],
  ]);
  assert.equal(s.code, 0, s.stderr);
  const g = await runCli(['decode-geometry', lines(s.stdout)[0]!]);
  const r = await runCli(['score', lines(g.stdout)[0]!]);
  assert.equal(r.code, 0, r.stderr);
  const rewards = lines(r.stdout)[0]!;
  const zero = '0'.repeat(64);
  for (const [target, fault] of [
    ['/dev/zero', /outside the allowed folders|not a regular file/],
    ['../../../../../../../../etc/passwd', /outside the allowed folders/],
    ['../geometry', /not a regular file/],
  ] as const) {
    const bad = join(run, 'rewards', `bad-${target.length}.safetensors`);
    const f = readSafetensors(rewards);
    writeSafetensors(bad, f.tensors, {
      ...f.metadata,
      'vggrpo.inputs': JSON.stringify([{ path: target, sha256: zero }]),
    });
    const started = Date.now();
    const res = await runCli(['grpo-step', bad, '--allow-partial', '--out', join(run, 'p-bad')]);
    assert.equal(res.code, 2, `${target}: ${res.stderr}`);
    assert.ok(Date.now() - started < 30_000, 'refused at once, not read');
    assert.match(res.stderr, /vggrpo\.inputs\[0\]/);
    assert.match(res.stderr, fault);
  }
  // /dev/zero is refused even when its folder is allowed: only regular files are opened.
  const dz = join(run, 'rewards', 'dz.safetensors');
  const f = readSafetensors(rewards);
  writeSafetensors(dz, f.tensors, {
    ...f.metadata,
    'vggrpo.inputs': JSON.stringify([{ path: '/dev/zero', sha256: zero }]),
  });
  const res = await runCli([
    'grpo-step',
    dz,
    '--allow-partial',
    '--allow-root',
    '/dev',
    '--out',
    join(run, 'p-dz'),
  ]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /not a regular file/);
  // A recorded policy outside the allowed folders is not loaded without --policy.
  const t = readSafetensors(lines(s.stdout)[0]!);
  const other = tempDir('vggrpo-elsewhere-');
  writeSafetensors(lines(s.stdout)[0]!, t.tensors, { ...t.metadata, 'vggrpo.policy': other });
  const g2 = await runCli(['decode-geometry', lines(s.stdout)[0]!]);
  const r2 = await runCli(['score', lines(g2.stdout)[0]!]);
  const p = await runCli(['grpo-step', lines(r2.stdout)[0]!, '--allow-partial', '--out', join(run, 'p-pol')]);
  assert.equal(p.code, 2, p.stderr);
  assert.match(p.stderr, /vggrpo\.policy: .* outside the allowed folders/);
});

test('--out that is an existing file, a B = 0 shard, a bad flag value: exit 2 before any work', async () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const o = await runCli(['score', worldShards[0]!, '--out', file]);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /^vggrpo score: --out: .*a-file is an existing file, not a folder\n$/);
  const f = readSafetensors(worldShards[0]!);
  const empty = new Map(
    [...f.tensors].map(([k, t]) => [
      k,
      { ...t, shape: [0, ...t.shape.slice(1)], data: t.data.subarray(0, 0) },
    ]),
  );
  const p = join(dir, 'empty', 'e.safetensors');
  mkdirSync(join(dir, 'empty'), { recursive: true });
  writeSafetensors(p, empty as never, f.metadata);
  const e = await runCli(['score', p, '--out', join(dir, 'empty-out')]);
  assert.equal(e.code, 2, e.stderr);
  assert.match(e.stderr, /e\.safetensors: holds no samples \(B = 0\)/);
  const n = await runCli(['sample', '--prompts', prompts, '--noise-level=-1']);
  assert.equal(n.code, 2);
  assert.match(n.stderr, /^vggrpo sample: --noise-level: .*\(sampler\.noise_level\)\n$/);
});
