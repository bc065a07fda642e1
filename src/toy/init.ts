/**
 * Seeded initial weights for the toy fixture models. The fixtures must rebuild byte-identically
 * from their scripts, so this generator is the project's own (a splitmix32 stream with Box–Muller
 * normals) and each tensor draws from a stream keyed by its name: adding or reordering a layer
 * does not change the other layers' values.
 *
 * @example
 *   const w = normalInit('blocks.0.self_attn.q.weight', [48, 48], 1 / Math.sqrt(48), 0);
 */

/** 32-bit FNV-1a of a string: the per-tensor stream key. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** splitmix32: uniform in (0, 1), never exactly 0 so log() is safe. */
function* uniformStream(seed: number): Generator<number, never> {
  let s = seed >>> 0;
  for (;;) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    yield (z + 0.5) / 4294967296;
  }
}

/**
 * A Float32Array of `shape`'s size filled with N(0, std²) values from the stream of (`name`, `seed`).
 *
 * @example
 *   normalInit('embed_tokens.weight', [258, 32], 1, 7);
 */
export function normalInit(name: string, shape: readonly number[], std: number, seed: number): Float32Array {
  let n = 1;
  for (const d of shape) n *= d;
  const out = new Float32Array(n);
  const u = uniformStream(fnv1a(name) ^ Math.imul(seed + 1, 0x27d4eb2d));
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u.next().value));
    const a = 2 * Math.PI * u.next().value;
    out[i] = std * r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = std * r * Math.sin(a);
  }
  return out;
}
