import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readConfigFile, resolveConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

test('defaults fill a missing config', () => {
  const c = resolveConfig([]);
  assert.equal(c.sampler.shift, 3);
  assert.equal(c.sampler.noise_level, 0.7);
  assert.equal(c.grpo.kl_form, 'true');
  assert.deepEqual(Object.keys(c.rewards).sort(), ['motion', 'reprojection']);
});

test('precedence: flags > file > recorded > defaults', () => {
  const dir = tempDir();
  const f = join(dir, 'c.yaml');
  writeFileSync(f, 'sampler:\n  steps: 7\n  shift: 2\nmodels:\n  denoiser: m/den.onnx\n');
  const recorded = { sampler: { steps: 3, shift: 5, noise_level: 0.5 } };
  const c = resolveConfig([recorded, readConfigFile(f), { sampler: { shift: 1.5 } }]);
  assert.equal(c.sampler.shift, 1.5); // flag
  assert.equal(c.sampler.steps, 7); // file
  assert.equal(c.sampler.noise_level, 0.5); // recorded
  assert.equal(c.sampler.group_size, 8); // default
  assert.equal(c.models.denoiser, join(dir, 'm/den.onnx')); // relative to the file's folder
});

test('typo, wrong type and bad enum name the key path', () => {
  const cases: [unknown, RegExp][] = [
    [{ sampler: { stpes: 1 } }, /unknown config key sampler\.stpes/],
    [{ grpo: { lr: 'x' } }, /config key grpo\.lr/],
    [{ lgm_outputs: { camera_convention: 'euler' } }, /config key lgm_outputs\.camera_convention/],
    [{ rewards: { motion: { wieght: 1 } } }, /unknown config key rewards\.motion\.wieght/],
    [{ nonsense: 1 }, /unknown config key nonsense/],
    [
      { stitch: { phase2: { weights: { camera: 10 } } } },
      /unknown config key stitch\.phase2\.weights\.camera/,
    ],
  ];
  for (const [layer, re] of cases) {
    assert.throws(
      () => resolveConfig([layer as Record<string, unknown>], 'exp.yaml'),
      (e: unknown) =>
        e instanceof InputError &&
        e.exitCode === 2 &&
        re.test(e.message) &&
        e.message.startsWith('exp.yaml: '),
    );
  }
});

test('a YAML file that is not a mapping or not YAML is an InputError naming it', () => {
  const dir = tempDir();
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, '- a\n- b\n');
  assert.throws(() => readConfigFile(f), /bad\.yaml: config must be a YAML mapping/);
  writeFileSync(f, 'a: [1, 2\n');
  assert.throws(() => readConfigFile(f), /bad\.yaml: not valid YAML/);
});
