/**
 * Seeded, portable random numbers for sampling: xoshiro128** (32-bit state words, so it runs on
 * plain JS integers) seeded through splitmix64, and normals by Marsaglia's polar method computed in
 * float64 and rounded to float32 once.
 *
 * Why not Math.random: `sample` must be byte-identical for the same seeds, and `grpo-step` must see
 * the same noise whatever the batch composition. Every (sample seed, stream) pair therefore gets
 * its own generator (`splitSeed`), so a sample's noise never depends on its position in the batch
 * or on the batch size.
 *
 * Portability: the integer part is exact everywhere; the polar method uses Math.log and Math.sqrt
 * (V8's own fdlibm port, and IEEE sqrt), so normals are bit-identical across machines for one Node
 * version (same inputs, config and seed must give byte-identical shards on the same machine).
 *
 * Speed: the polar method needs no sin/cos; with 32-bit uniforms it draws ~2.5× faster than
 * Box–Muller, and noise generation is most of `sample`'s time outside onnxruntime.
 */

const MASK64 = (1n << 64n) - 1n;
const MASK63 = (1n << 63n) - 1n;

/** Stream id of the initial latent noise x_0 ~ N(0, I) (distinct from every step index ≥ 0). */
export const INITIAL_NOISE_STREAM = -1n;

/** A seed as the CLI, configs and I64 shard columns carry it. */
export type Seed = bigint | number;

function toU64(seed: Seed, where = 'seed'): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`${where}: ${seed} is not a safe integer`);
    seed = BigInt(seed);
  }
  return BigInt.asUintN(64, seed);
}

/** splitmix64's output function: a bijective 64-bit mixer. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * Derive an independent 64-bit seed for one stream of a seed (a denoising step, the initial
 * noise, a LoRA matrix). Different (seed, stream) pairs give unrelated generators.
 *
 * @example
 *   const s = splitSeed(42n, 3); // the noise stream of step 3 of the sample seeded 42
 */
export function splitSeed(seed: Seed, stream: Seed): bigint {
  const a = mix64((toU64(seed) + 0x9e3779b97f4a7c15n) & MASK64);
  return mix64((a ^ mix64((toU64(stream, 'stream') + 0x632be59bd9b4e019n) & MASK64)) & MASK64);
}

/**
 * A non-negative seed for sample `index` of a run seeded `base`, below 2^63 so it fits the I64
 * `seed` column of a trajectory shard.
 *
 * @example
 *   const seeds = [0, 1, 2, 3].map((i) => sampleSeed(7, i));
 */
export function sampleSeed(base: Seed, index: number): bigint {
  return splitSeed(base, BigInt(index) + 0x5eedn) & MASK63;
}

/** The seed of group (prompt) `index` under a base seed: its shared initial noise. Independent of every sampleSeed. */
export function groupSeed(base: Seed, index: number): bigint {
  return splitSeed(splitSeed(base, 0x67_72_6f_75_70n), BigInt(index)) & MASK63;
}

/** FNV-1a 64 of a string: turns a tensor name into a stream id. */
export function hashString(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK64;
  return h;
}

/**
 * xoshiro128** (Blackman & Vigna), state seeded from two splitmix64 outputs.
 *
 * @example
 *   const g = new Xoshiro128(splitSeed(1, 0));
 *   const u = g.nextFloat64(); // in [0, 1)
 */
export class Xoshiro128 {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed: Seed) {
    let x = toU64(seed);
    const words: number[] = [];
    for (let k = 0; k < 2; k++) {
      x = (x + 0x9e3779b97f4a7c15n) & MASK64;
      const z = mix64(x);
      words.push(Number(z & 0xffffffffn) >>> 0, Number(z >> 32n) >>> 0);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    // The all-zero state is the one fixed point; splitmix64 makes it astronomically unlikely.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator with the given raw state words (for known-answer tests against the reference C code). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Xoshiro128 {
    const g = new Xoshiro128(0);
    g.s0 = s0 | 0;
    g.s1 = s1 | 0;
    g.s2 = s2 | 0;
    g.s3 = s3 | 0;
    return g;
  }

  /** Next 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits (two outputs). */
  nextFloat64(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /**
   * Fill `out` with N(0, 1) draws: Marsaglia's polar method on pairs of 32-bit uniforms in
   * (−1, 1), in float64, each value rounded once to float32.
   */
  fillGaussian(out: Float32Array): Float32Array {
    const n = out.length;
    let i = 0;
    while (i < n) {
      // Uniform in (−1, 1) on a 2^−31 grid; (x, y) = (0, 0) and points outside the disc are rejected.
      const x = ((this.nextUint32() | 0) + 0.5) * 4.656612873077393e-10;
      const y = ((this.nextUint32() | 0) + 0.5) * 4.656612873077393e-10;
      const s = x * x + y * y;
      if (s >= 1 || s === 0) continue;
      const k = Math.sqrt((-2 * Math.log(s)) / s);
      out[i++] = x * k;
      if (i < n) out[i++] = y * k;
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * `n` standard normal float32 values from one seed. Deterministic: same seed, same values; the
 * first k values of a longer draw equal a draw of k values (odd k included).
 *
 * @example
 *   const eps = gaussian(splitSeed(seed, step), 16 * 4 * 8 * 8);
 */
export function gaussian(seed: Seed, n: number): Float32Array {
  return new Xoshiro128(seed).fillGaussian(new Float32Array(n));
}

/**
 * `n` float32 values uniform in [lo, hi) (drawn in float64, rounded once).
 *
 * @example
 *   const a = uniform(splitSeed(seed, hashString('fc.weight')), 4 * 16, -0.25, 0.25);
 */
export function uniform(seed: Seed, n: number, lo: number, hi: number): Float32Array {
  const g = new Xoshiro128(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * g.nextFloat64();
  return out;
}

/**
 * The noise ε of denoising step `stepIndex` (a position in the schedule) for one sample.
 *
 * @example
 *   const eps = stepNoise(seed, 3, C * F * H * W);
 */
export function stepNoise(seed: Seed, stepIndex: number, n: number): Float32Array {
  if (!Number.isInteger(stepIndex) || stepIndex < 0)
    throw new RangeError(`stepIndex ${stepIndex} must be ≥ 0`);
  return gaussian(splitSeed(seed, stepIndex), n);
}

/**
 * The initial latent x at σ = 1 for one sample.
 *
 * @example
 *   const x0 = initialNoise(seed, C * F * H * W);
 */
export function initialNoise(seed: Seed, n: number): Float32Array {
  return gaussian(splitSeed(seed, INITIAL_NOISE_STREAM), n);
}

/**
 * Noise for a batch: sample b's `perSample` values come from its own seed only, so the batch
 * layout never changes a sample's noise. `stepIndex` null gives the initial latents.
 *
 * @example
 *   const eps = batchNoise([s0, s1, s2, s3], 5, C * F * H * W); // [4, C, F, H, W]
 */
export function batchNoise(
  seeds: readonly Seed[],
  stepIndex: number | null,
  perSample: number,
): Float32Array {
  const out = new Float32Array(seeds.length * perSample);
  for (const [b, s] of seeds.entries()) out.set(sampleNoise(s, stepIndex, perSample), b * perSample);
  return out;
}

/**
 * One sample's part of batchNoise: its step noise, or (`stepIndex` null) its initial latents.
 *
 * @example
 *   const eps = sampleNoise(seed, 3, C * F * H * W); // = batchNoise([seed], 3, C * F * H * W)
 */
export function sampleNoise(seed: Seed, stepIndex: number | null, n: number): Float32Array {
  return stepIndex === null ? initialNoise(seed, n) : stepNoise(seed, stepIndex, n);
}
