/**
 * One `keep` target (fraction of middle-block parameters kept) -> per-matrix ranks and per-block MLP widths.
 *
 * Counting (what "parameters" means everywhere in reports): a middle block's parameters are its two norms,
 * its attention projections and its MLP, biases included; a rank-r linear [out, in] counts r·(out + in)
 * (+ its bias), a pruned MLP counts its sliced sizes. Embeddings, adapters, final norm and head are not
 * middle parameters.
 *
 * Budget reading (id BUDGET_READING, recorded in reports; the paper's
 * allocation is unknown):
 * - The target is T = round(keep · P_middle). Parameters that no method shrinks (norms, biases that stay)
 *   are "fixed"; the rest is split with ONE factor κ = (T − fixed) / compressible, applied to every part
 *   alike: for gradot the attention weights and the MLP channels each keep the fraction κ of their own
 *   size, uniformly across blocks (no cross-layer "dynamic" allocation).
 * - A low-rank factorization only pays while r·(m+n) < m·n, i.e. r < mn/(m+n): ranks are capped at
 *   ceil(mn/(m+n)) − 1 (with κ < 1 the proportional share never reaches the cap; at κ >= 1 nothing is
 *   compressed and the matrix stays dense). Every rank and width is at least 1.
 * - Shares are floored, then single units (one rank of one matrix = m+n params; one channel of one block)
 *   are added greedily, biggest shortfall against its share first, while they still fit. The result is
 *   at or below T and short of it by less than the smallest unit that could still grow.
 * - prune leaves attention dense, so the whole reduction must come from the MLP; if attention + fixed +
 *   one channel per block already exceed T, it throws with the smallest feasible keep.
 * - drop keeps k = max(1, round(keep · n)) of the n middle blocks at OT's indices round(i(n−1)/(k−1))
 *   (Python's round-half-to-even; k = 1 keeps the first middle block). Granularity is one block.
 */
import type { AttnProj, LayerSpec, MlpProj, ModelSpec } from '../../model/spec';

export const BUDGET_READING = 'budget/uniform-kappa-attn-mlp/floor-then-greedy/v1';

export type CompressionMethod = 'gradot' | 'svd' | 'prune' | 'drop' | 'none';
export const COMPRESSION_METHODS: readonly CompressionMethod[] = ['gradot', 'svd', 'prune', 'drop', 'none'];

export interface Split {
  /** Bottom adapter blocks. */
  bottom: number;
  /** Top adapter blocks. */
  top: number;
}

/** Indices (into spec.layers) of the middle blocks [bottom, L − top). */
export function middleIndices(spec: ModelSpec, split: Split): number[] {
  const L = spec.layers.length;
  if (!(Number.isInteger(split.bottom) && Number.isInteger(split.top) && split.bottom >= 0 && split.top >= 0)) {
    throw new Error(`split: adapter sizes must be non-negative integers, got ${split.bottom}:${split.top}`);
  }
  if (split.bottom + split.top >= L) {
    throw new Error(`split ${split.bottom}:${split.top} leaves no middle blocks in a ${L}-block model`);
  }
  return Array.from({ length: L - split.bottom - split.top }, (_, i) => split.bottom + i);
}

export interface LinearShape {
  proj: AttnProj | MlpProj;
  out: number;
  in: number;
  bias: boolean;
}

export function attnLinears(spec: ModelSpec): LinearShape[] {
  const d = spec.hiddenSize;
  const qd = spec.numHeads * spec.headDim;
  const kvd = spec.numKvHeads * spec.headDim;
  return [
    { proj: 'q', out: qd, in: d, bias: spec.qkvBias },
    { proj: 'k', out: kvd, in: d, bias: spec.qkvBias },
    { proj: 'v', out: kvd, in: d, bias: spec.qkvBias },
    { proj: 'o', out: d, in: qd, bias: spec.oBias },
  ];
}

export function mlpLinears(spec: ModelSpec, width: number): LinearShape[] {
  const d = spec.hiddenSize;
  const l: LinearShape[] = [{ proj: 'up', out: width, in: d, bias: spec.mlpBias }];
  if (spec.gatedMlp) l.push({ proj: 'gate', out: width, in: d, bias: spec.mlpBias });
  l.push({ proj: 'down', out: d, in: width, bias: spec.mlpBias });
  return l;
}

/** Weight parameters of a linear, dense or rank-r. */
export function linearWeightParams(out: number, inn: number, rank?: number): number {
  return rank === undefined ? out * inn : rank * (out + inn);
}

/** Largest rank at which two factors are still smaller than the dense matrix. */
export function maxUsefulRank(out: number, inn: number): number {
  return Math.ceil((out * inn) / (out + inn)) - 1;
}

export function normParams(spec: ModelSpec): number {
  return 2 * (spec.norm === 'layernorm' ? 2 : 1) * spec.hiddenSize;
}

/** Parameters of one block as `layer` describes it (ranks, width). */
export function blockParamCount(spec: ModelSpec, layer: LayerSpec): number {
  let n = normParams(spec);
  for (const l of [...attnLinears(spec), ...mlpLinears(spec, layer.mlpWidth)]) {
    n += linearWeightParams(l.out, l.in, layer.ranks[l.proj]) + (l.bias ? l.out : 0);
  }
  return n;
}

export function sumBlockParams(spec: ModelSpec, layers: LayerSpec[]): number {
  return layers.reduce((s, l) => s + blockParamCount(spec, l), 0);
}

export interface BudgetPlan {
  method: CompressionMethod;
  keep: number;
  reading: string;
  /** Original middle block indices (into spec.layers). */
  middle: number[];
  /** Indices (into spec.layers) of the middle blocks the emulator keeps (all but for `drop`). */
  keptBlocks: number[];
  /** The emulator's middle blocks, in order (source = original index). */
  layers: LayerSpec[];
  paramsBefore: number;
  paramsTarget: number;
  paramsAfter: number;
  /** Largest single unit of the allocation (rank, channel or block): the promised accuracy. */
  granularity: number;
  /** κ: fraction of the compressible parameters kept (gradot, svd, prune). */
  kappa?: number;
  notes: string[];
}

interface Slot {
  layer: number;
  proj: AttnProj | MlpProj | 'width';
  unit: number;
  max: number;
  share: number;
  count: number;
}

/** Floors every slot's share (at least 1, at most max), then adds units while they fit. Returns leftover. */
function allocate(slots: Slot[], budget: number, what: string): number {
  let used = 0;
  for (const s of slots) {
    s.count = Math.min(s.max, Math.max(1, Math.floor(s.share / s.unit)));
    used += s.count * s.unit;
  }
  let left = budget - used;
  if (left < 0) throw new Error(`${what}: budget too small even with rank/width 1 everywhere (short by ${-left} params)`);
  for (;;) {
    let best: Slot | null = null;
    let bestDeficit = -Infinity;
    for (const s of slots) {
      if (s.count >= s.max || s.unit > left) continue;
      const deficit = (s.share - s.count * s.unit) / s.unit;
      if (deficit > bestDeficit) {
        best = s;
        bestDeficit = deficit;
      }
    }
    if (!best) break;
    best.count++;
    left -= best.unit;
  }
  return left;
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** OT's uniform layer choice: k of n indices at round(i(n−1)/(k−1)) (relative to the middle). */
export function uniformChooseBlocks(n: number, k: number): number[] {
  if (!(k >= 1 && k <= n)) throw new Error(`drop: cannot keep ${k} of ${n} blocks`);
  if (k === 1) return [0];
  return Array.from({ length: k }, (_, i) => roundHalfEven((i * (n - 1)) / (k - 1)));
}

export interface BudgetOptions {
  method: CompressionMethod;
  keep: number;
  split: Split;
  /**
   * gradot only: fraction of the attention weights kept (as factor parameters), overriding the default
   * "same κ for attention and MLP"; the MLP width then absorbs the rest of the budget. 1 = attention stays
   * dense (only SCP runs). Throws when the MLP cannot absorb the remainder.
   */
  attnKeep?: number;
}

export function planBudget(spec: ModelSpec, opts: BudgetOptions): BudgetPlan {
  const { method, keep } = opts;
  if (!(keep > 0 && keep <= 1)) throw new Error(`keep must be in (0, 1], got ${keep}`);
  const middle = middleIndices(spec, opts.split);
  for (const i of middle) {
    const l = spec.layers[i]!;
    if (Object.keys(l.ranks).length > 0 || l.mlpWidth !== spec.intermediateSize) {
      throw new Error(`block ${i} is already compressed; plan budgets from the dense model`);
    }
  }
  const dense = middle.map((i) => ({ ...spec.layers[i]!, ranks: {} }));
  const paramsBefore = sumBlockParams(spec, dense);
  const paramsTarget = Math.round(keep * paramsBefore);
  const base = { method, keep, reading: BUDGET_READING, middle, paramsBefore, paramsTarget };
  const finish = (layers: LayerSpec[], keptBlocks: number[], granularity: number, notes: string[], kappa?: number): BudgetPlan => ({
    ...base,
    keptBlocks,
    layers,
    paramsAfter: sumBlockParams(spec, layers),
    granularity,
    kappa,
    notes,
  });

  if (method === 'none' || keep === 1) {
    return finish(dense, middle, 0, method === 'none' ? [] : ['keep = 1: nothing compressed'], 1);
  }
  if (method === 'drop') {
    const n = middle.length;
    const k = Math.min(n, Math.max(1, roundHalfEven(keep * n)));
    const chosen = uniformChooseBlocks(n, k).map((i) => middle[i]!);
    return finish(
      chosen.map((i) => ({ ...spec.layers[i]!, ranks: {} })),
      chosen,
      blockParamCount(spec, dense[0]!),
      [`kept ${k} of ${n} middle blocks: ${chosen.join(',')}`],
    );
  }

  const d = spec.hiddenSize;
  const dff = spec.intermediateSize;
  const upCount = spec.gatedMlp ? 2 : 1;
  // One channel: a row of up (and gate) with their bias entries, and a column of down.
  const channelUnit = upCount * (d + (spec.mlpBias ? 1 : 0)) + d;
  const attn = attnLinears(spec);
  const mlp = mlpLinears(spec, dff);
  const sumW = (ls: LinearShape[]) => ls.reduce((s, l) => s + l.out * l.in, 0);
  const sumB = (ls: LinearShape[]) => ls.reduce((s, l) => s + (l.bias ? l.out : 0), 0);
  const nb = middle.length;
  const norms = normParams(spec);

  let fixedPerBlock: number;
  let compressiblePerBlock: number;
  const rankLinears: LinearShape[] = [];
  let prunes = false;
  const attnKeep = opts.attnKeep;
  if (attnKeep !== undefined && (method !== 'gradot' || !(attnKeep > 0 && attnKeep <= 1))) {
    throw new Error(`attnKeep applies to gradot only and must be in (0, 1], got ${attnKeep} for ${method}`);
  }
  if (method === 'gradot' && attnKeep !== undefined) {
    // Attention at its own fraction: dense (fixed) at 1, else ranks sized to attnKeep; the MLP takes the rest.
    const downBias = spec.mlpBias ? d : 0;
    const attnDense = attnKeep === 1;
    fixedPerBlock = norms + sumB(attn) + downBias + (attnDense ? sumW(attn) : 0);
    const attnShare = attnDense ? 0 : attnKeep * sumW(attn);
    const variable = paramsTarget - nb * fixedPerBlock;
    const mlpKappa = (variable - nb * attnShare) / (nb * dff * channelUnit);
    if (!(mlpKappa > 0 && mlpKappa <= 1)) {
      throw new Error(
        `gradot keep=${keep} with attnKeep=${attnKeep}: the MLP would have to keep ${(mlpKappa * 100).toFixed(1)}% of its ` +
          'channels; choose attnKeep so that it lands in (0, 100%]',
      );
    }
    const slots: Slot[] = [];
    for (let b = 0; b < nb; b++) {
      if (!attnDense) {
        for (const l of attn) {
          slots.push({
            layer: b,
            proj: l.proj,
            unit: l.out + l.in,
            max: maxUsefulRank(l.out, l.in),
            share: attnKeep * l.out * l.in,
            count: 0,
          });
        }
      }
      slots.push({ layer: b, proj: 'width', unit: channelUnit, max: dff, share: mlpKappa * dff * channelUnit, count: 0 });
    }
    allocate(slots, variable, `gradot keep=${keep} attnKeep=${attnKeep}`);
    const layers: LayerSpec[] = dense.map((l) => ({ source: l.source, ranks: {}, mlpWidth: dff }));
    for (const s of slots) {
      if (s.proj === 'width') layers[s.layer]!.mlpWidth = s.count;
      else layers[s.layer]!.ranks[s.proj] = s.count;
    }
    return finish(
      layers,
      middle,
      Math.max(...slots.map((s) => s.unit)),
      [`attnKeep=${attnKeep}, mlp kappa=${mlpKappa.toFixed(4)}`],
      mlpKappa,
    );
  }
  if (method === 'gradot') {
    const downBias = spec.mlpBias ? d : 0;
    fixedPerBlock = norms + sumB(attn) + downBias;
    compressiblePerBlock = sumW(attn) + dff * channelUnit;
    rankLinears.push(...attn);
    prunes = true;
  } else if (method === 'svd') {
    fixedPerBlock = norms + sumB(attn) + sumB(mlp);
    compressiblePerBlock = sumW(attn) + sumW(mlp);
    rankLinears.push(...attn, ...mlp);
  } else {
    const downBias = spec.mlpBias ? d : 0;
    fixedPerBlock = norms + sumW(attn) + sumB(attn) + downBias;
    compressiblePerBlock = dff * channelUnit;
    prunes = true;
    const minimum = nb * (fixedPerBlock + channelUnit);
    if (paramsTarget < minimum) {
      throw new Error(
        `prune cannot reach keep=${keep}: it leaves attention dense, and attention + norms + biases + one MLP ` +
          `channel per block are already ${(minimum / paramsBefore).toFixed(4)} of the middle parameters; ` +
          `use keep >= ${(Math.ceil((minimum / paramsBefore) * 1e4) / 1e4).toFixed(4)} or another method`,
      );
    }
  }
  const variable = paramsTarget - nb * fixedPerBlock;
  const kappa = variable / (nb * compressiblePerBlock);
  if (kappa >= 1) return finish(dense, middle, 0, [`kappa=${kappa.toFixed(4)} >= 1: nothing compressed`], 1);

  const slots: Slot[] = [];
  for (let b = 0; b < nb; b++) {
    for (const l of rankLinears) {
      slots.push({ layer: b, proj: l.proj, unit: l.out + l.in, max: maxUsefulRank(l.out, l.in), share: kappa * l.out * l.in, count: 0 });
    }
    if (prunes) slots.push({ layer: b, proj: 'width', unit: channelUnit, max: dff, share: kappa * dff * channelUnit, count: 0 });
  }
  allocate(slots, variable, `${method} keep=${keep}`);
  const layers: LayerSpec[] = dense.map((l) => ({ source: l.source, ranks: {}, mlpWidth: dff }));
  for (const s of slots) {
    if (s.proj === 'width') layers[s.layer]!.mlpWidth = s.count;
    else layers[s.layer]!.ranks[s.proj] = s.count;
  }
  const granularity = Math.max(...slots.map((s) => s.unit));
  return finish(layers, middle, granularity, [], kappa);
}

// ---------------------------------------------------------------------------------------------------------
// Global ("dynamic") rank allocation: a reading beside the uniform κ above, not replacing it.

export const GLOBAL_RANK_READING = 'budget/global-rank-gcs-per-param/protect-top5pct/greedy-fill/v1';

/** One factored matrix of the middle, with its components' scores (any order) and σ. */
export interface RankCandidate {
  key: string;
  out: number;
  in: number;
  /** GCS of every component (higher = keep). */
  score: ArrayLike<number>;
  /** Components that are always kept (the select.ts top-5% by σ), by index. */
  protect: number[];
}

/**
 * Redistributes a pool of factor parameters over several matrices: every matrix keeps its protected
 * components, then components of all matrices compete by score per parameter (score / (out + in)), best
 * first, each taken while it fits the pool and its matrix stays under maxUsefulRank (where two factors
 * stop being smaller than the dense matrix). Ties: the earlier candidate, then the lower index.
 * Result: kept component indices per key (ascending); Σ rank·(out+in) ≤ pool, and every component left out
 * either did not fit the remaining pool or its matrix was at its cap.
 */
export function allocateRanksGlobally(cands: RankCandidate[], pool: number): { kept: Map<string, number[]>; used: number } {
  const kept = new Map<string, number[]>();
  let used = 0;
  const items: { c: number; k: number; v: number }[] = [];
  cands.forEach((c, ci) => {
    const prot = new Set(c.protect);
    kept.set(c.key, [...prot]);
    used += prot.size * (c.out + c.in);
    for (let k = 0; k < c.score.length; k++) if (!prot.has(k)) items.push({ c: ci, k, v: c.score[k]! / (c.out + c.in) });
  });
  if (used > pool) throw new Error(`global rank allocation: the protected components alone need ${used} params, pool is ${pool}`);
  items.sort((a, b) => b.v - a.v || a.c - b.c || a.k - b.k);
  for (const it of items) {
    const c = cands[it.c]!;
    const unit = c.out + c.in;
    const list = kept.get(c.key)!;
    if (used + unit > pool || list.length >= maxUsefulRank(c.out, c.in)) continue;
    list.push(it.k);
    used += unit;
  }
  for (const l of kept.values()) l.sort((a, b) => a - b);
  return { kept, used };
}
