/**
 * Bilinear resize (src/media/resize.ts) against a hand-computed case and against PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False) on random frames, up and down, integer and
 * non-integer factors.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { torchMissing } from '../../bench/autodiff.js';
import { resizeBilinear } from '../../src/media/resize.js';
import { skipOutsideCi } from '../helpers.js';

test('hand-computed: 1×2 → 1×4 and 2×2 → 4×4 with half-pixel centres, clamped at the border', () => {
  assert.deepEqual([...resizeBilinear(Float32Array.of(0, 1), [1, 1, 1, 2], 1, 4)], [0, 0.25, 0.75, 1]);
  const out = resizeBilinear(Float32Array.of(0, 1, 2, 3), [1, 1, 2, 2], 4, 4);
  // Row 1 (source y = 0.25): 0.75·[0, .25, .75, 1] + 0.25·[2, 2.25, 2.75, 3].
  assert.deepEqual([...out.subarray(4, 8)], [0.5, 0.75, 1.25, 1.5]);
  assert.equal(resizeBilinear(Float32Array.of(5), [1, 1, 1, 1], 1, 1)[0], 5);
});

test('equals PyTorch F.interpolate(bilinear, align_corners=False)', {
  skip: skipOutsideCi(torchMissing()),
}, () => {
  const cases: [number, number, number, number][] = [
    [32, 32, 64, 64],
    [64, 64, 48, 40],
    [5, 7, 13, 11],
  ];
  for (const [h, w, oh, ow] of cases) {
    const n = 2 * 3 * h * w;
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 0.5);
    const py = `
import sys, torch, struct
h, w, oh, ow = ${h}, ${w}, ${oh}, ${ow}
x = torch.frombuffer(bytearray(sys.stdin.buffer.read()), dtype=torch.float32).reshape(2, 3, h, w)
y = torch.nn.functional.interpolate(x, size=(oh, ow), mode='bilinear', align_corners=False)
sys.stdout.buffer.write(y.contiguous().numpy().tobytes())`;
    const r = spawnSync('/usr/bin/python3', ['-c', py], { input: Buffer.from(x.buffer), maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr?.toString());
    const ref = new Float32Array(
      r.stdout.buffer.slice(r.stdout.byteOffset, r.stdout.byteOffset + r.stdout.byteLength),
    );
    const got = resizeBilinear(x, [2, 3, h, w], oh, ow);
    assert.equal(got.length, ref.length);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    // float32 rounding of the weights differs from PyTorch's by ~1e-6; a wrong tap is ~1e-1.
    assert.ok(worst < 1e-5, `${h}×${w} → ${oh}×${ow}: max |Δ| ${worst}`);
  }
});
