/**
 * Seeded randomness for the linear-algebra routines (randomized SVD sketches, tests). A fixed seed makes a
 * compression run reproducible bit-for-bit, which the emulator package records.
 */

import { mulberry32 } from '../random';

export { mulberry32 };

/** Standard normal samples (Box-Muller on mulberry32). */
export function gaussianArray(n: number, seed: number): Float64Array {
  const u = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    // 1 - u() keeps the log argument in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}
