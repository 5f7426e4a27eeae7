import { epochPermutation } from './random';
import type { Dataset } from './types';

/**
 * Deterministic train/validation split for when the user brings one file. Multiple-choice records of a
 * file are independent, so a plain seeded permutation is enough; the held-out share is rounded and kept
 * at least 1 record (and at most n-1) so neither side is empty. Record order inside each side follows the
 * file, so line numbers in errors stay easy to follow.
 */
export function splitDataset<D extends Dataset>(ds: D, validFraction: number, seed = 0): { train: D; valid: D } {
  const n = ds.records.length;
  if (!(validFraction > 0 && validFraction < 1)) throw new RangeError(`validFraction must be in (0, 1), got ${validFraction}`);
  if (n < 2) throw new RangeError(`cannot split ${n} record(s)`);
  const k = Math.min(n - 1, Math.max(1, Math.round(n * validFraction)));
  // Stream index 0x5b1 keeps this permutation unrelated to the epoch shuffles drawn from the same seed.
  const held = new Set(epochPermutation(n, seed, 0x5b1).slice(0, k));
  const side = (heldOut: boolean) => ds.records.filter((_, i) => held.has(i) === heldOut);
  return {
    train: { ...ds, records: side(false) } as D,
    valid: { ...ds, records: side(true) } as D,
  };
}
