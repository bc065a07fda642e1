/**
 * The Slurm scripts on a real (local, single-node) Slurm: examples/slurm/test-local.sh starts
 * the cluster, runs two toy iterations through sbatch, compares the policy with the
 * single-process Makefile run, kills an array task and resumes. Outside CI it skips, with the
 * reason, when Slurm is not installed; under CI a missing Slurm is a failure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.js';

const have = ['sbatch', 'slurmctld', 'slurmd', 'munged'].every(
  (b) => spawnSync('bash', ['-c', `command -v ${b}`]).status === 0,
);
const skip =
  !have && !process.env.CI
    ? 'Slurm is not installed (apt-get install slurmctld slurmd slurm-client munge)'
    : false;

test('two toy iterations on a local Slurm equal the Makefile run; a killed task resumes', {
  skip,
  timeout: 900_000,
}, () => {
  assert.ok(have, 'CI must install slurmctld, slurmd, slurm-client and munge (.ci/run)');
  const r = spawnSync('bash', [join(ROOT, 'examples/slurm/test-local.sh')], {
    encoding: 'utf8',
    timeout: 880_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /test-local: ok/);
  assert.match(r.stdout, /largest difference \d\.\d+e-\d+ over \d+ tensors\n.*largest difference/s);
});
