/**
 * How the LM head's loss is cut (head-loss.ts), as pure functions of the shape: the loss computes with them,
 * and the memory estimate (src/jobs/memory-estimate.ts, which the page loads without the engine) sizes
 * the logits and the matmul staging heap with the same rules.
 */

/** Logit bytes one block may hold (rows are grouped so that block rows x vocab x 4 stays under it). */
export const HEAD_BLOCK_BYTES = 128 * 2 ** 20;

/**
 * A head weight over twice this many bytes is multiplied in vocabulary pieces of at most this size: the
 * CPU kernels stage a product's operands in WebAssembly memory, which keeps the size of the largest
 * product ever staged (Qwen2.5's 151,936 x 896 head: 545 MB). With pieces, x's gradient is a sum over
 * pieces, so its summation order differs from one product's (the loss stays bit for bit the same).
 */
export const HEAD_PIECE_BYTES = 128 * 2 ** 20;

/** Rows per block for this vocabulary, or `rows` itself when one block holds them all. */
export function headBlockRows(rows: number, vocab: number, blockBytes = HEAD_BLOCK_BYTES): number {
  return Math.max(1, Math.min(rows, Math.floor(blockBytes / (4 * vocab))));
}

/** Vocabulary rows per piece of the head weight (the whole vocabulary when it is small enough). */
export function headPieceRows(vocab: number, d: number, pieceBytes = HEAD_PIECE_BYTES): number {
  return vocab * d * 4 > 2 * pieceBytes ? Math.max(1, Math.floor(pieceBytes / (4 * d))) : vocab;
}
