/**
 * What a decoder's autograd tape keeps, as a pure function of the shape: the held-out gradient shift
 * (src/ot/emulator/gradshift.ts) decides with it whether to back-propagate block by block, and the memory
 * estimate (src/jobs/memory-estimate.ts) sizes tapes with it.
 */

/** A whole-depth tape above this many bytes is replaced by block-by-block re-runs (gradshift.ts). */
export const HELD_OUT_TAPE_BYTES = 768 * 2 ** 20;

export interface TapeShape {
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  /** LLaMA-style gated MLP (up, gate, down). */
  gated: boolean;
}

/** f32 values one token keeps on the tape of one block (norms, q/k/v, scores and probabilities, MLP). */
export function tapeFloatsPerToken(m: TapeShape, seq: number): number {
  return 10 * m.hiddenSize + (m.gated ? 4 : 3) * m.intermediateSize + 2 * m.numHeads * seq;
}
