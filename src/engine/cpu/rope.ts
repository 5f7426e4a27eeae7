/**
 * RoPE's cos/sin table for the f32 rope kernel (kernels.ts kRope): [cos | ±sin], each T x D/2, the same
 * doubles the reference loop in backend.ts computes (invFreq_i = θ^(−2i/D), angle = (t + offset)·invFreq_i).
 * A training step applies RoPE to q and k forward and backward with one shape, so the tables are kept (a
 * few recent ones) rather than recomputed: T·D trigonometric calls per call otherwise.
 */

const cache = new Map<string, Float64Array>();
const MAX_TABLES = 8;

export function ropeTable(T: number, D: number, theta: number, offset: number, inverse: boolean): Float64Array {
  const key = `${T}/${D}/${theta}/${offset}/${inverse ? 1 : 0}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const half = D / 2;
  const table = new Float64Array(2 * T * half);
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = Math.pow(theta, (-2 * i) / D);
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < T; t++) {
    const pos = t + offset;
    for (let i = 0; i < half; i++) {
      const ang = pos * invFreq[i]!;
      table[t * half + i] = Math.cos(ang);
      table[T * half + t * half + i] = sign * Math.sin(ang);
    }
  }
  if (cache.size >= MAX_TABLES) cache.delete(cache.keys().next().value!);
  cache.set(key, table);
  return table;
}
