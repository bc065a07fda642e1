/**
 * Models exported by PyTorch (test/onnx/torch_exports.py, run with Debian's /usr/bin/python3):
 * the gradient graph reproduces every named parameter's autograd gradient to 1e-4 of its largest
 * entry. `tied` has freshly initialised norms, whose equal weights the exporter stores once and
 * re-creates by Identity; `rope` writes a rotary embedding by slice assignment (ScatterND);
 * `gelu_tanh` / `gelu_erf` are a Linear–GELU–Linear whose GELU the exporter writes in primitives.
 * Skipped where /usr/bin/python3 lacks torch (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { torchMissing } from '../../bench/autodiff.js';
import { buildGradientGraph, defaultParams } from '../../src/onnx/autodiff.js';
import { loadModel } from '../../src/onnx/model.js';
import { tiedNames } from '../../src/onnx/tied.js';
import { skipOutsideCi } from '../helpers.js';
import { run } from './ort-helper.js';

const missing = skipOutsideCi(torchMissing());
const script = new URL('./torch_exports.py', import.meta.url).pathname;

type Entry = { file: string; shape: number[] };

function exportModel(name: string, dir: string) {
  const r = spawnSync('/usr/bin/python3', [script, '--model', name, '--out', dir], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    files: Record<string, Entry>;
    params: (Entry & { name: string })[];
  };
  const read = (e: Entry) => {
    const b = readFileSync(join(dir, e.file));
    return {
      data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
      dims: e.shape,
    };
  };
  const f = (k: string) => {
    const e = m.files[k];
    if (!e) throw new Error(`manifest lacks ${k}`);
    return read(e);
  };
  return {
    model: loadModel(join(dir, 'model.onnx')),
    x: f('x'),
    cot: f('cotangent'),
    y: f('y'),
    params: m.params.map((p) => ({ name: p.name, grad: read(p) })),
  };
}

async function matchesAutograd(name: string, check?: (p: ReturnType<typeof exportModel>) => void) {
  const dir = mkdtempSync(join(tmpdir(), `vggrpo-torch-${name}-`));
  try {
    const peer = exportModel(name, dir);
    check?.(peer);
    const wrt = peer.params.map((p) => p.name);
    const { model, warnings } = buildGradientGraph(peer.model, { wrt });
    assert.deepEqual(warnings, []);
    const out = await run(model, { x: peer.x, 'grad:y': peer.cot });
    const y = out.y?.data as Float32Array;
    peer.y.data.forEach((v, i) => {
      assert.ok(Math.abs(v - (y[i] ?? 0)) <= 1e-5 * (1 + Math.abs(v)), 'forward');
    });
    for (const p of peer.params) {
      const g = out[`grad:${p.name}`]?.data as Float32Array;
      assert.ok(g && g.length === p.grad.data.length, `grad:${p.name}`);
      const scale = p.grad.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const err = p.grad.data.reduce((m, v, i) => Math.max(m, Math.abs(v - (g[i] ?? 0))), 0);
      assert.ok(
        err <= 1e-4 * Math.max(scale, 1e-6),
        `${p.name}: max difference ${err}, largest entry ${scale}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'exported model with tied (de-duplicated) norm weights: every name gets its own gradient',
  { skip: missing },
  () =>
    matchesAutograd('tied', (peer) => {
      const tied = tiedNames(peer.model);
      assert.ok(
        tied.size >= 2,
        `the exporter de-duplicated the fresh norms (${[...tied.keys()].join(', ')})`,
      );
      // the CLI's default parameters are PyTorch's named parameters
      assert.deepEqual(defaultParams(peer.model).sort(), peer.params.map((p) => p.name).sort());
    }),
);

test('exported RoPE written by slice assignment (ScatterND) matches autograd', { skip: missing }, () =>
  matchesAutograd('rope', (peer) => {
    assert.ok(peer.model.graph?.node?.some((n) => n.opType === 'ScatterND'));
  }),
);

test('exported GELU in primitives (tanh and erf) is recognised and matches autograd', {
  skip: missing,
}, async () => {
  for (const [name, marker, count] of [
    ['gelu_tanh', 'Sigmoid', 1],
    ['gelu_erf', 'Erf', 2],
  ] as const) {
    let gradOps: string[] = [];
    await matchesAutograd(name, (peer) => {
      const wrt = peer.params.map((p) => p.name);
      gradOps = buildGradientGraph(peer.model, { wrt }).model.graph!.node!.map((n) => n.opType!);
    });
    // recognised: GELU's derivative (σ of the tanh form; a second Erf for the exact one), no Tanh VJP
    assert.equal(gradOps.filter((o) => o === marker).length, count, name);
  }
});
