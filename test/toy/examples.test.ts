import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeLayers, readConfigFile } from '../../src/config/load.js';
import { Config } from '../../src/config/schema.js';
import { ModelSession } from '../../src/runtime/session.js';
import { promptScenario, syntheticPrompts } from '../../src/toy/prompts.js';
import { ROOT } from '../helpers.js';

const toy = join(ROOT, 'examples', 'toy');
const lines = (f: string) =>
  readFileSync(join(toy, f), 'utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);

test('examples/toy/analytic.yaml (the exact-reference toy) is valid and points at the analytic fixture models', () => {
  const cfg = Config.parse(mergeLayers([readConfigFile(join(toy, 'analytic.yaml'))]));
  for (const role of ['denoiser', 'lgm', 'vae_decoder', 'text_encoder'] as const) {
    assert.equal(cfg.models[role], join(ROOT, 'onnx', 'fixtures', `${role}.onnx`));
    assert.ok(existsSync(cfg.models[role]!));
  }
  assert.ok(cfg.sampler.group_size >= 8, 'groups large enough for steady advantages');
  assert.equal(cfg.lgm_outputs.camera_convention, 'vggt');
  assert.equal(cfg.lgm_outputs.points, 'world_points');
});

test('examples/toy/config.yaml (the demo) is the learned world: its models fit each other (latents, frames), the LGM is the stitched one, the rest is analytic.yaml', async () => {
  const cfg = Config.parse(mergeLayers([readConfigFile(join(toy, 'config.yaml'))]));
  const base = Config.parse(mergeLayers([readConfigFile(join(toy, 'analytic.yaml'))]));
  const fixture = (f: string) => join(ROOT, 'onnx', 'fixtures', f);
  assert.equal(cfg.models.denoiser, fixture('denoiser_learned.onnx'));
  assert.equal(cfg.models.lgm, fixture('lgm_stitched.onnx'));
  assert.equal(cfg.models.vae_encoder, fixture('vae_encoder.onnx'));
  assert.equal(cfg.models.geometry, fixture('geometry_rgb.onnx'));
  const inputOf = async (path: string, name: string) => {
    const s = await ModelSession.open(path, { threads: 1 });
    const shape = s.inputs.find((i) => i.name === name)!.shape;
    await s.release();
    return shape;
  };
  const latents = await inputOf(cfg.models.denoiser, 'latents');
  assert.deepEqual(latents.slice(1), [8, 8, 16, 16]);
  assert.deepEqual(await inputOf(cfg.models.lgm, 'latents'), latents);
  assert.deepEqual(await inputOf(cfg.models.vae_decoder!, 'latents'), latents);
  assert.ok(existsSync(cfg.eval.judge!));
  // The learned world weighs reprojection more (README, What the demo shows); the reward kinds are the same.
  assert.deepEqual(Object.keys(cfg.rewards), Object.keys(base.rewards));
  assert.deepEqual(cfg.rewards.motion!.weight + cfg.rewards.reprojection!.weight, 1);
  assert.deepEqual(
    { ...cfg, models: undefined, grpo: undefined, rewards: undefined },
    { ...base, models: undefined, grpo: undefined, rewards: undefined },
  );
});

test('toy prompts: training and held-out sets are disjoint and cover every camera family', () => {
  const train = lines('prompts.txt');
  const held = lines('prompts-heldout.txt');
  assert.ok(train.length >= 4 && held.length >= 4);
  assert.equal(train.filter((p) => held.includes(p)).length, 0);
  for (const set of [train, held]) {
    const fams = new Set(set.map((p) => promptScenario(p).family));
    assert.deepEqual([...fams].sort(), ['arc', 'dolly', 'orbit', 'pan']);
  }
});

test('promptScenario reads the family and motion words; syntheticPrompts excludes held-out prompts', () => {
  assert.equal(promptScenario('Push in on the box').family, 'dolly');
  assert.equal(promptScenario('sweep across the room, then orbit').family, 'pan');
  assert.equal(promptScenario('arc over a moving sphere').dynamic, true);
  assert.equal(promptScenario('arc over a sphere').dynamic, false);
  assert.equal(promptScenario('a b c').sceneSeed, promptScenario('a b c').sceneSeed);
  assert.notEqual(promptScenario('a b c').sceneSeed, promptScenario('a b d').sceneSeed);
  const pool = syntheticPrompts(40, 0);
  assert.equal(new Set(pool).size, 40);
  const without = syntheticPrompts(40, 0, pool.slice(0, 5));
  assert.ok(pool.slice(0, 5).every((p) => !without.includes(p)));
  assert.deepEqual(syntheticPrompts(10, 3), syntheticPrompts(10, 3));
});
