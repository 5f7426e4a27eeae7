/**
 * Seeded PRNG for reproducible shuffles: training must be deterministic given a seed, and a resumed run
 * must see the same batch order as an uninterrupted one, so the order of epoch e depends only on (seed, e).
 */

import { mulberry32 } from '../engine/random';

export { mulberry32 };

/** Mixes a seed with a stream index (e.g. the epoch) so neighbouring epochs get unrelated orders. */
export function deriveSeed(seed: number, stream: number): number {
  // splitmix32-style finaliser over the pair.
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream >>> 0) + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

/** In-place Fisher-Yates shuffle driven by `rand` (values in [0, 1)). */
export function shuffleInPlace<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/** A permutation of 0..n-1 that depends only on (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  return shuffleInPlace(order, mulberry32(deriveSeed(seed, epoch)));
}

/** A shuffled 0..n-1 drawn from a given generator. */
export function epochOrderFrom(n: number, rand: () => number): number[] {
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    rand,
  );
}
