/**
 * The LM head and its cross-entropy in row blocks, for vocabularies where the logits of a whole batch are
 * the biggest tensor of a step (Qwen2.5's 151,936 tokens: 311 MB of logits for 4x128 tokens, as much again
 * for their gradient, and the product's staging in the CPU kernels' memory).
 *
 * Forward: per block of rows, logits = x_b·Wᵀ, then the per-row loss; the block's logits are freed at once.
 * Backward: per block, the logits are computed again (one more head product: cheaper than keeping them),
 * turned into their gradient, and multiplied back: dx_b = dlogits_b·W (and dW += dlogits_bᵀ·x_b when W is
 * trained).
 *
 * Same numbers as crossEntropyRows(linear(x, W)), bit for bit, for the loss and for x's gradient: every
 * logit and every element of dx is the same dot product summed in the same order (the products compute each
 * output element whole whatever the row split), and cross-entropy is row by row. W's gradient, when asked
 * for, is a sum over blocks, so its summation order differs from one product's.
 */
import type { Storage } from './backend';
import { crossEntropyRows, linear } from './ops';
import { assertLive, record, Tensor } from './tensor';

/** Logit bytes one block may hold (rows are grouped so that block rows x vocab x 4 stays under it). */
export const HEAD_BLOCK_BYTES = 128 * 2 ** 20;

/** Rows per block for this vocabulary, or `rows` itself when one block holds them all. */
export function headBlockRows(rows: number, vocab: number, blockBytes = HEAD_BLOCK_BYTES): number {
  return Math.max(1, Math.min(rows, Math.floor(blockBytes / (4 * vocab))));
}

/**
 * Per-row cross-entropy [rows] of logits x·Wᵀ (x [rows, d], W [vocab, d]) against `targets` (rows with
 * ignoreIndex give 0). With one block it is exactly crossEntropyRows(linear(x, W)).
 */
export function linearCrossEntropyRows(
  x: Tensor,
  W: Tensor,
  targets: Int32Array,
  ignoreIndex = -100,
  blockBytes = HEAD_BLOCK_BYTES,
): Tensor {
  const op = 'linearCrossEntropy';
  assertLive(op, x, W);
  if (W.ndim !== 2) throw new Error(`${op}: weight must be [vocab, d], got [${W.shape.join(', ')}]`);
  const [V, d] = W.shape as [number, number];
  const rows = x.size / d;
  if (x.ndim !== 2 || x.shape[1] !== d) {
    throw new Error(`${op}: input [${x.shape.join(', ')}] is not [rows, ${d}] for weight [${V}, ${d}]`);
  }
  if (targets.length !== rows) throw new Error(`${op}: ${targets.length} targets for ${rows} rows`);
  const h = headBlockRows(rows, V, blockBytes);
  if (h >= rows) return crossEntropyRows(linear(x, W), targets, ignoreIndex);

  const be = x.backend;
  const blocks: [number, number][] = [];
  for (let r0 = 0; r0 < rows; r0 += h) blocks.push([r0, Math.min(h, rows - r0)]);
  const rowsOf = (src: Storage, r0: number, n: number, width: number): Storage => {
    const s = be.zeros(n * width);
    be.copy(src, r0 * width, s, 0, n * width);
    return s;
  };
  const logitsOf = (xs: Storage, n: number): Storage => be.matmul(xs, W.storage, { batch: 1, m: n, n: V, k: d, transB: true });

  const loss = be.zeros(rows);
  for (const [r0, n] of blocks) {
    const xs = rowsOf(x.storage, r0, n, d);
    const logits = logitsOf(xs, n);
    be.free(xs);
    const l = be.crossEntropy(logits, targets.subarray(r0, r0 + n), n, V, ignoreIndex);
    be.free(logits);
    be.copy(l, 0, loss, r0, n);
    be.free(l);
  }
  return record(
    new Tensor(be, [rows], loss, false),
    [x, W],
    (g) => {
      const dx = x.requiresGrad ? be.zeros(rows * d) : null;
      const dW = W.requiresGrad ? be.zeros(V * d) : null;
      for (const [r0, n] of blocks) {
        const xs = rowsOf(x.storage, r0, n, d);
        const logits = logitsOf(xs, n);
        const gs = rowsOf(g, r0, n, 1);
        const dlog = be.crossEntropyBackward(logits, targets.subarray(r0, r0 + n), gs, n, V, ignoreIndex);
        be.free(logits);
        be.free(gs);
        if (dx) {
          const dxs = be.matmul(dlog, W.storage, { batch: 1, m: n, n: d, k: V });
          be.copy(dxs, 0, dx, r0 * d, n * d);
          be.free(dxs);
        }
        if (dW) {
          const t = be.matmul(dlog, xs, { batch: 1, m: V, n: d, k: n, transA: true });
          be.axpy(dW, t, 1);
          be.free(t);
        }
        be.free(dlog);
        be.free(xs);
      }
      return [dx, dW];
    },
    op,
  );
}
