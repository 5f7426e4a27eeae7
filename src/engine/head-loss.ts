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
 * Same numbers as crossEntropyRows(linear(x, W)), bit for bit, for the loss and (unless the head weight is
 * multiplied in vocabulary pieces, HEAD_PIECE_BYTES) for x's gradient: every logit and every element of dx
 * is the same dot product summed in the same order (the products compute each output element whole
 * whatever the row split), and cross-entropy is row by row. W's gradient, when asked for, is a sum over
 * blocks, so its summation order differs from one product's.
 */
import type { Storage } from './backend';
import { CpuStorage } from './cpu/backend';
import { crossEntropyRows, linear } from './ops';
import { reclaimHostMemory } from './reclaim';
import { HEAD_BLOCK_BYTES, HEAD_PIECE_BYTES, headBlockRows, headPieceRows } from './head-blocks';
import { assertLive, isGradEnabled, record, Tensor } from './tensor';

/** How often the backward used x's gradient made in the forward, or made it again (tests, memtrace). */
export const headGradCounts = { early: 0, recomputed: 0 };

/**
 * Per-row cross-entropy [rows] of logits x·Wᵀ (x [rows, d], W [vocab, d]) against `targets` (rows with
 * ignoreIndex give 0). With one block and one piece it is exactly crossEntropyRows(linear(x, W)).
 *
 * `rowGrad`: the gradient every row's loss is expected to receive in the backward (a mean loss's 1/N, as
 * the backend rounds it). With row blocks on the CPU backend, when a backward will follow (grad mode on, x
 * needs a gradient, W does not), x's gradient for that seed is then computed in the forward, on the logits
 * already there, instead of multiplying the head a third time in the backward to get them back (Qwen2.5's
 * 151,936-token head: 140 GFLOP per 4x128-token batch). The backward uses it only if the gradient that
 * arrives is that seed bit for bit, else it recomputes as before; either way dx is the same bits, since
 * the same ops run on the same values.
 */
export function linearCrossEntropyRows(
  x: Tensor,
  W: Tensor,
  targets: Int32Array,
  ignoreIndex = -100,
  blockBytes = HEAD_BLOCK_BYTES,
  pieceBytes = HEAD_PIECE_BYTES,
  rowGrad?: number,
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
  const pv = headPieceRows(V, d, pieceBytes);
  if (h >= rows && pv >= V) return crossEntropyRows(linear(x, W), targets, ignoreIndex);

  const be = x.backend;
  const blocks: [number, number][] = [];
  for (let r0 = 0; r0 < rows; r0 += h) blocks.push([r0, Math.min(h, rows - r0)]);
  const rowsOf = (src: Storage, r0: number, n: number, width: number): Storage => {
    const s = be.zeros(n * width);
    be.copy(src, r0 * width, s, 0, n * width);
    return s;
  };
  // Rows only read (x, W's pieces, the loss gradient): a view where the backend has one. Copies of W's
  // pieces would allocate the whole head again per block and pass, left to the garbage collector.
  const readRows = (src: Storage, r0: number, n: number, width: number): Storage =>
    be.view ? be.view(src, r0 * width, n * width) : rowsOf(src, r0, n, width);
  const pieces: [number, number][] = [];
  for (let v0 = 0; v0 < V; v0 += pv) pieces.push([v0, Math.min(pv, V - v0)]);
  const logitsOf = (xs: Storage, n: number): Storage => {
    if (pieces.length === 1) return be.matmul(xs, W.storage, { batch: 1, m: n, n: V, k: d, transB: true });
    // Each logit is still one whole dot product; the pieces only bound what is staged at once.
    const L = be.zeros(n * V);
    for (const [v0, vc] of pieces) {
      const Wp = readRows(W.storage, v0, vc, d);
      const lp = be.matmul(xs, Wp, { batch: 1, m: n, n: vc, k: d, transB: true });
      be.free(Wp);
      be.addIntoCols(L, lp, n, V, v0, vc);
      be.free(lp);
    }
    return L;
  };
  /** dx_b = dlogits_b · W, piece by piece. */
  const dxOf = (dlog: Storage, n: number): Storage => {
    if (pieces.length === 1) return be.matmul(dlog, W.storage, { batch: 1, m: n, n: d, k: V });
    const dxs = be.zeros(n * d);
    for (const [v0, vc] of pieces) {
      const dp = be.sliceCols(dlog, n, V, v0, vc);
      const Wp = readRows(W.storage, v0, vc, d);
      const t = be.matmul(dp, Wp, { batch: 1, m: n, n: d, k: vc });
      be.axpy(dxs, t, 1);
      for (const s of [dp, Wp, t]) be.free(s);
    }
    return dxs;
  };
  /** dW += dlogits_bᵀ · x_b, piece by piece. */
  const addDW = (dW: Storage, dlog: Storage, xs: Storage, n: number): void => {
    if (pieces.length === 1) {
      const t = be.matmul(dlog, xs, { batch: 1, m: V, n: d, k: n, transA: true });
      be.axpy(dW, t, 1);
      be.free(t);
      return;
    }
    for (const [v0, vc] of pieces) {
      const dp = be.sliceCols(dlog, n, V, v0, vc);
      const t = be.matmul(dp, xs, { batch: 1, m: vc, n: d, k: n, transA: true });
      const rowsW = rowsOf(dW, v0, vc, d);
      be.axpy(rowsW, t, 1);
      be.copy(rowsW, 0, dW, v0 * d, vc * d);
      for (const s of [dp, t, rowsW]) be.free(s);
    }
  };

  const speculate =
    rowGrad !== undefined &&
    Number.isFinite(rowGrad) &&
    isGradEnabled() &&
    x.requiresGrad &&
    !W.requiresGrad &&
    x.storage instanceof CpuStorage;
  let early: Storage | null = null;
  let seed: Storage | null = null;
  if (speculate) {
    early = be.zeros(rows * d);
    seed = be.fromArray(new (be.dtype === 'f64' ? Float64Array : Float32Array)(rows).fill(rowGrad));
  }
  const loss = be.zeros(rows);
  for (const [r0, n] of blocks) {
    const xs = readRows(x.storage, r0, n, d);
    const logits = logitsOf(xs, n);
    be.free(xs);
    const l = be.crossEntropy(logits, targets.subarray(r0, r0 + n), n, V, ignoreIndex);
    if (early && seed) {
      // The backward's own steps for this block, on these logits and the expected seed.
      const gs = readRows(seed, r0, n, 1);
      const dlog = be.crossEntropyBackward(logits, targets.subarray(r0, r0 + n), gs, n, V, ignoreIndex);
      be.free(gs);
      be.free(logits);
      const dxs = dxOf(dlog, n);
      be.free(dlog);
      be.copy(dxs, 0, early, r0 * d, n * d);
      be.free(dxs);
    } else be.free(logits);
    be.copy(l, 0, loss, r0, n);
    be.free(l);
    reclaimHostMemory();
  }
  return record(
    new Tensor(be, [rows], loss, false),
    [x, W],
    (g) => {
      if (early && seed) {
        const want = (seed as CpuStorage).data;
        const got = g instanceof CpuStorage ? g.data : null;
        let same = got !== null && got.length === want.length && !W.requiresGrad && x.requiresGrad;
        for (let i = 0; same && i < want.length; i++) same = Object.is(got![i], want[i]);
        be.free(seed);
        seed = null;
        const dxEarly = early;
        early = null;
        if (same) {
          headGradCounts.early++;
          return [dxEarly, null];
        }
        headGradCounts.recomputed++;
        be.free(dxEarly);
      }
      const dx = x.requiresGrad ? be.zeros(rows * d) : null;
      const dW = W.requiresGrad ? be.zeros(V * d) : null;
      for (const [r0, n] of blocks) {
        const xs = readRows(x.storage, r0, n, d);
        const logits = logitsOf(xs, n);
        const gs = readRows(g, r0, n, 1);
        const dlog = be.crossEntropyBackward(logits, targets.subarray(r0, r0 + n), gs, n, V, ignoreIndex);
        be.free(logits);
        be.free(gs);
        if (dx) {
          const dxs = dxOf(dlog, n);
          be.copy(dxs, 0, dx, r0 * d, n * d);
          be.free(dxs);
        }
        if (dW) addDW(dW, dlog, xs, n);
        be.free(dlog);
        be.free(xs);
        reclaimHostMemory();
      }
      return [dx, dW];
    },
    op,
  );
}
