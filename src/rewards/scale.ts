/**
 * Scene scale: the median valid depth of a video, the unit that makes rewards independent of the
 * geometry model's (arbitrary, not metric) scale.
 */

/**
 * k-th smallest (0-based) of the first `n` entries of `a`, reordering them (Hoare quickselect).
 *
 * @example
 *   kthSmallest(Float64Array.of(3, 1, 2), 3, 1); // 2
 */
export function kthSmallest(a: Float64Array | Float32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * Median of the first `n` entries (mean of the two middle ones for even n); reorders them. NaN for n = 0.
 *
 * @example
 *   medianInPlace(Float64Array.of(4, 1, 3, 2), 4); // 2.5
 */
export function medianInPlace(a: Float64Array | Float32Array, n: number): number {
  if (n === 0) return Number.NaN;
  const hi = kthSmallest(a, n, n >> 1);
  if (n & 1) return hi;
  // The lower middle is the largest of the entries left of position n/2 after the partition.
  let lo = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n >> 1; i++) if (a[i]! > lo) lo = a[i]!;
  return (lo + hi) / 2;
}

/**
 * Median of the finite, positive depths; NaN when there are none.
 *
 * @example
 *   sceneScale(sample.depth); // ≈ 3 for the toy room
 */
export function sceneScale(depth: ArrayLike<number>): number {
  const tmp = new Float32Array(depth.length);
  let n = 0;
  for (let i = 0; i < depth.length; i++) {
    const d = depth[i]!;
    if (d > 0 && d < Number.POSITIVE_INFINITY) tmp[n++] = d;
  }
  return medianInPlace(tmp, n);
}
