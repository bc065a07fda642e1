/**
 * A small but complete report (plots, depth thumbnails, a video, tables with undefined values),
 * built from synthetic data, for the report tests and the browser check.
 */

import { barSpec, cameraPathSpec, lineSpec, renderSvg } from '../../src/media/plots.js';
import { depthToPng, rgbToPng } from '../../src/media/png.js';
import type { ReportData } from '../../src/media/report.js';
import { writeMp4 } from '../../src/media/video.js';

/** A toy clip: a bright square orbiting over a gradient, RGB [F, H, W, 3]. */
export function toyClip(F: number, H: number, W: number): Uint8Array {
  const rgb = new Uint8Array(F * H * W * 3);
  for (let f = 0; f < F; f++) {
    const cx = W / 2 + (W / 4) * Math.cos((2 * Math.PI * f) / F);
    const cy = H / 2 + (H / 4) * Math.sin((2 * Math.PI * f) / F);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inSquare = Math.abs(x - cx) < W / 8 && Math.abs(y - cy) < H / 8;
        const o = 3 * ((f * H + y) * W + x);
        rgb.set(inSquare ? [250, 200, 40] : [30 + (x * 120) / W, 60 + (y * 100) / H, 140], o);
      }
    }
  }
  return rgb;
}

function toyDepth(H: number, W: number, tilt: number): Float32Array {
  return Float32Array.from({ length: H * W }, (_, i) => {
    const y = Math.floor(i / W);
    const x = i % W;
    const sphere = (x - W / 2) ** 2 + (y - H / 2) ** 2 < (W / 4) ** 2;
    return sphere ? 1.5 : 2 + tilt * (y / H) + 0.5 * (x / W);
  });
}

/** Build the fixture report; writes `sample.mp4` into `dir` (the report references it). */
export async function buildFixtureReport(dir: string): Promise<ReportData> {
  const F = 12;
  const H = 48;
  const W = 64;
  await writeMp4(`${dir}/sample.mp4`, toyClip(F, H, W), { frames: F, height: H, width: W }, { fps: 6 });
  const iters = Array.from({ length: 10 }, (_, i) => i);
  const ring = (r: number, wobble: number) =>
    Float64Array.from({ length: 3 * 16 }, (_, k) => {
      const i = Math.floor(k / 3);
      const a = i / 5;
      return [r * Math.sin(a) + wobble * Math.sin(7 * a), 0, r * Math.cos(a)][k % 3]!;
    });
  const lineSvgSpec = lineSpec({
    title: 'Mean reward per iteration',
    yTitle: 'reward',
    series: [
      { name: 'motion', y: iters.map((i) => 0.6 + 0.03 * i - 0.001 * i * i) },
      { name: 'reprojection', y: iters.map((i) => (i === 4 ? null : 0.3 + 0.02 * i)) },
    ],
  });
  const camSpec = cameraPathSpec({
    title: 'Camera paths (top-down)',
    paths: [
      { name: 'base', centres: ring(2, 0.15) },
      { name: 'vggrpo', centres: ring(2, 0.03) },
    ],
  });
  const bars = barSpec({
    title: 'Epipolar error (px)',
    bars: [
      { label: 'base', value: 0.133 },
      { label: 'vggrpo', value: 0.102 },
    ],
  });
  const depths = await Promise.all(
    [0, 1, 2].map((k) => depthToPng(toyDepth(24, 32, k), 32, 24, { scale: 4 })),
  );
  const frame0 = await rgbToPng(toyClip(1, H, W), W, H, { scale: 2 });
  return {
    title: 'VGGRPO toy evaluation',
    subtitle: 'Synthetic fixture: two policies on one prompt set',
    createdAt: '2026-01-01T00:00:00.000Z',
    summary: {
      columns: ['metric', 'base', 'vggrpo'],
      rows: [
        ['ATE (rmse)', 0.0412, 0.0123],
        ['RPE translation', 0.0087, 0.0031],
        ['RPE rotation (deg)', 1.234, 0.456],
        ['Epipolar error (px, ORB)', 0.133, null],
        ['r_motion', 0.71, 0.83],
      ],
    },
    sections: [
      {
        title: 'Training curves',
        text: 'Rewards of the sampled groups at each GRPO iteration.\n\nA gap marks an iteration whose reward was undefined.',
        plots: [
          { svg: await renderSvg(lineSvgSpec), spec: lineSvgSpec, caption: 'Group means.' },
          { svg: await renderSvg(bars), spec: bars },
        ],
      },
      {
        title: 'Cameras',
        plots: [
          {
            svg: await renderSvg(camSpec),
            spec: camSpec,
            caption: 'Camera centres, x against z; squares mark frame 0.',
          },
        ],
        tables: [
          {
            title: 'Per-sample trajectory metrics',
            columns: ['sample', 'ATE', 'RPE rot (deg)', 'epipolar'],
            rows: [
              [0, 0.0121, 0.44, 0.098],
              [1, 0.0125, 0.47, null],
            ],
          },
        ],
      },
      {
        title: 'Depth and video',
        images: [
          ...depths.map((d, k) => ({
            title: `Depth, frame ${4 * k}`,
            png: d.png,
            alt: `depth map of frame ${4 * k}`,
          })),
          { title: 'Frame 0', png: frame0, alt: 'first decoded frame' },
        ],
        videos: [{ title: 'Sample 0', src: 'sample.mp4', caption: 'Decoded video, 6 fps.' }],
      },
    ],
    meta: { config: { seed: 1 } },
  };
}
