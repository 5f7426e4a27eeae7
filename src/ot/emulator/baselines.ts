/**
 * The baselines GradOT is compared with, behind the same budget (budget.ts) and the same outputs as
 * select.ts (factors, kept channel ids, kept blocks):
 * - `svd`: plain truncated SVD, the top-r components by σ (Eckart-Young optimal in Frobenius norm),
 *   applied to every linear of the middle, MLP included.
 * - `prune`: magnitude channel pruning. Reading: channel j's score is the product of the L2 norms of the
 *   weights that carry it, ‖[up_j, b_up_j]‖₂ · ‖[gate_j, b_gate_j]‖₂ (gated MLPs) · ‖down[:, j]‖₂ — the
 *   scale of the channel's contribution for unit-scale inputs; biases count with their rows since they
 *   are deleted with them. The highest scores are kept.
 * - `drop`: OT's uniform layer drop (budget.uniformChooseBlocks; no distillation, "OT†").
 * - `none`: the middle as it is (the budget plan keeps every block dense).
 */
import { svd, type SvdMethod } from '../../engine/linalg/svd';
import { lowRankFactors, selectChannels, type LowRankFactors, type MlpTensors } from './select';

export { uniformChooseBlocks as dropBlocks } from './budget';

export const PRUNE_READING = 'prune/l2-product-up-gate-down-with-bias/v1';

export interface TruncateOptions {
  method?: SvdMethod;
  seed?: number;
}

/** Top-`rank` components by σ as two factors (A = U·diag(σ), B = Vᵀ, like select.lowRankFactors). */
export function svdTruncate(
  W: ArrayLike<number>,
  out: number,
  inn: number,
  rank: number,
  opts: TruncateOptions = {},
): LowRankFactors & { S: Float64Array } {
  const f = svd(W, out, inn, { rank, method: opts.method ?? 'auto', seed: opts.seed ?? 0 });
  const kept = Array.from({ length: Math.min(rank, f.rank) }, (_, i) => i);
  return { ...lowRankFactors(f, out, inn, kept), S: f.S.slice(0, kept.length) };
}

export function magnitudeChannelScores(m: MlpTensors): Float64Array {
  const { d, dff } = m;
  const rowNorm = (W: ArrayLike<number>, b: ArrayLike<number> | undefined, j: number) => {
    let s = b ? b[j]! * b[j]! : 0;
    for (let i = 0; i < d; i++) s += W[j * d + i]! ** 2;
    return Math.sqrt(s);
  };
  const out = new Float64Array(dff);
  for (let j = 0; j < dff; j++) {
    let c = 0;
    for (let i = 0; i < d; i++) c += m.downW[i * dff + j]! ** 2;
    let s = rowNorm(m.upW, m.upB, j) * Math.sqrt(c);
    if (m.gateW) s *= rowNorm(m.gateW, m.gateB, j);
    out[j] = s;
  }
  return out;
}

/** Kept channel ids (ascending) under magnitude pruning to `width`. */
export function pruneChannels(m: MlpTensors, width: number): number[] {
  return selectChannels(magnitudeChannelScores(m), width);
}
