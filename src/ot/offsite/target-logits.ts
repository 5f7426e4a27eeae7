/**
 * Logits of the positions that carry a target only. Prompt/answer and multiple-choice batches score a few
 * answer tokens per sequence, so running the LM head ([rows, d]·[d, V]) on every position is mostly waste:
 * we gather the hidden states of the target positions (a differentiable row lookup, as
 * Decoder.lastLogits does) and apply the head to those rows. Same numbers per row, a fraction of the cost.
 */
import * as ops from '../../engine/ops';
import type { Tensor } from '../../engine/tensor';
import type { Decoder } from '../../model/decoder';
import { IGNORE_INDEX } from '../../data/types';

export interface TargetLogits {
  /** [n, vocab] logits of the target positions, in batch order. */
  logits: Tensor;
  /** [n] targets of those positions. */
  targets: Int32Array;
  /** [n] flat position (row * T + t) of each. */
  positions: Int32Array;
}

/** Gathers target positions when they are a minority of the batch; else the full logits (no gather). */
export function targetLogits(dec: Decoder, ids: Int32Array, targets: Int32Array, B: number, T: number): TargetLogits {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== IGNORE_INDEX) n++;
  if (n * 2 > B * T) {
    const positions = Int32Array.from({ length: B * T }, (_, i) => i);
    return { logits: dec.forward(ids, B, T), targets, positions };
  }
  const positions = new Int32Array(n);
  const tg = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    positions[k] = i;
    tg[k] = targets[i]!;
    k++;
  }
  const h = dec.hidden(ids, B, T);
  const head = dec.spec.tieWordEmbeddings ? dec.params.get('embed.weight')! : dec.params.get('lm_head.weight')!;
  // n = 0 (an all-prompt batch) still needs a [0, V] result: keep one row and an ignored target.
  if (n === 0) {
    return {
      logits: ops.linear(ops.embedding(h, new Int32Array([0])), head),
      targets: new Int32Array([IGNORE_INDEX]),
      positions: new Int32Array([0]),
    };
  }
  return { logits: ops.linear(ops.embedding(h, positions), head), targets: tg, positions };
}
