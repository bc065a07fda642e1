/**
 * Checks a geometry model's outputs against its own contract, shared by the tests of Φ and the
 * judge: world points X = Rᵀ(d·K⁻¹[u, v, 1] − t) from its own depth and pose encoding (read back
 * through src/geometry/cameras.ts, not the graph), unit quaternions, confidence ≥ 1.
 */
import assert from 'node:assert/strict';
import { poseEncodingToCameras } from '../../src/geometry/cameras.js';
import type { Tensor } from '../../src/shards/tensor.js';

/** The largest |X − Rᵀ(d·K⁻¹[j, i, 1] − t)| over every cell of every video of a batch of outputs. */
export function assertPointsAgree(out: Record<string, Tensor>, tolerance = 1e-4): void {
  const [B, F, h, w] = out.depth!.shape as [number, number, number, number];
  const depth = out.depth!.data as Float32Array;
  const pts = out.world_points!.data as Float32Array;
  const pose = out.pose_enc!.data as Float32Array;
  assert.ok((out.confidence!.data as Float32Array).every((c) => c >= 1));
  let worst = 0;
  for (let b = 0; b < B; b++) {
    const { extrinsics: E, intrinsics: K } = poseEncodingToCameras(
      pose.subarray(b * F * 9, (b + 1) * F * 9),
      h,
      w,
    );
    for (let f = 0; f < F; f++) {
      const q = pose.subarray((b * F + f) * 9 + 3, (b * F + f) * 9 + 7);
      assert.ok(Math.abs(Math.hypot(...q) - 1) < 1e-5);
      const fx = K[9 * f]!;
      const fy = K[9 * f + 4]!;
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const cell = (b * F + f) * h * w + i * w + j;
          const d = depth[cell]!;
          const xc = [(d * (j - w / 2)) / fx, (d * (i - h / 2)) / fy, d];
          for (let r = 0; r < 3; r++) {
            // X = Rᵀ(x_c − t): component r is Σ_k R[k][r]·(x_c[k] − t[k])
            let x = 0;
            for (let k = 0; k < 3; k++) x += E[12 * f + 4 * k + r]! * (xc[k]! - E[12 * f + 4 * k + 3]!);
            worst = Math.max(worst, Math.abs(x - pts[3 * cell + r]!));
          }
        }
      }
    }
  }
  assert.ok(worst < tolerance, `points mismatch ${worst}`);
}
