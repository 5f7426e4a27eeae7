/**
 * Emulator construction: a dense model + (for gradot) support-pass statistics -> a compressed spec and its
 * canonical weights, plus a per-block record of every choice (ranks, kept components and channels, score
 * summaries) for emulator.json.
 *
 * Blocks: [0, l) bottom adapter and [L−r, L) top adapter are copied; the middle follows the budget plan
 * (budget.ts): gradot = DRD on q/k/v/o and, by default, on the MLP linears too, with ranks allocated
 * globally by GCS per parameter (GRADOT_DEFAULTS; the paper's SCP channel pruning of the MLP under one κ is
 * mlp = 'scp', rankAllocation = 'uniform'); svd = truncated SVD of every linear; prune =
 * magnitude channel pruning; drop = OT's uniform layer drop; none = copy. Embeddings, positions, final norm
 * and head are copied unchanged. Statistics are keyed by the ORIGINAL model's linear names
 * (`layers.{source}.attn.q`), which is what supportPass on the dense model produces.
 */
import { exactSvd, type SvdMethod } from '../../engine/linalg/svd';
import { canonicalShapes, projsOf, validateWeights } from '../../model/hf';
import type { AttnProj, LayerSpec, MlpProj, ModelSpec } from '../../model/spec';
import type { HostTensor, WeightMap } from '../../model/weights';
import { magnitudeChannelScores, PRUNE_READING, svdTruncate } from './baselines';
import {
  allocateRanksGlobally,
  BUDGET_READING,
  GLOBAL_RANK_READING,
  sumBlockParams,
  type BudgetPlan,
  type CompressionMethod,
  type RankCandidate,
  type Split,
} from './budget';
import { GCS_READINGS, LAMBDA_READINGS, type LambdaMode, type ScoreParts } from './gcs';
import type { LinearStats } from './kfac';
import { alwaysKeepCount, lowRankFactors, selectChannels, selectComponents, SELECT_READING, sliceMlp, type MlpTensors } from './select';
import { compressionLayout, GradotScorer, isMlpProj, keptFactors, need, needStats, scpPartsFor, type ScoredMatrix } from './scorer';

export interface CompressOptions {
  method: CompressionMethod;
  /** Fraction of middle-block parameters kept. */
  keep: number;
  split: Split;
  /** λ of DRD (attention). Default 1. */
  lambdaAttn?: number;
  /** λ of SCP (MLP). Default 1. */
  lambdaMlp?: number;
  /** SVD algorithm for the `svd` baseline ('auto' = exact, randomized only for ranks below a tenth of the
   *  matrix's smaller side, svd.ts chooseSvdMethod). gradot always uses
   *  the exact SVD: DRD scores every component, so it needs the full spectrum. */
  svdMethod?: SvdMethod;
  seed?: number;
  /** gradot: attention's own keep fraction (budget.ts BudgetOptions.attnKeep); default: same as the MLP. */
  attnKeep?: number;
  /** How λ is scaled (gcs.ts LambdaMode). Default GRADOT_DEFAULTS.lambdaMode ('balanced'); 'raw' is the formula as written. */
  lambdaMode?: LambdaMode;
  /**
   * gradot: how the MLP is compressed (MLP_READINGS). 'scp' (the paper): channel pruning by SCP.
   * 'drd': every MLP linear is factored like attention (DRD scores, same selection), on the `svd`
   * baseline's layout (one κ for all linears), so gradot and svd differ only in which components are kept. Default: GRADOT_DEFAULTS.mlp ('scp' when attnKeep
   * is given).
   */
  mlp?: 'scp' | 'drd';
  /**
   * gradot: 'uniform' (BUDGET_READING): each factored matrix keeps its planned rank. 'global'
   * (GLOBAL_RANK_READING): the planned ranks' parameters (+ the plan's leftover) are pooled over every
   * factored matrix of the middle and components compete across matrices and blocks by GCS per parameter.
   * Default: GRADOT_DEFAULTS.rankAllocation.
   */
  rankAllocation?: 'uniform' | 'global';
  /** Called after each factored linear is built (done, total): the build's own progress, for an ETA. */
  onLinearBuilt?: (done: number, total: number) => void;
}

export { GRADOT_DEFAULTS, GradotScorer, buildFactors, compressionLayout } from './scorer';
export type { BuildFactors, CompressionLayout, FactorSpill, ScoredMatrix } from './scorer';

export const MLP_READINGS = {
  scp: 'gradot-mlp/scp-channels/v1',
  drd: 'gradot-mlp/drd-lowrank-on-svd-layout/v1',
} as const;

/** Summary of one scored matrix (or MLP) for the record: what was removed and what it cost. */
export interface ScoreSummary {
  candidates: number;
  kept: number;
  /** Σ over removed candidates of ‖GδA‖₁ (each scored alone). */
  removedGradShift: number;
  /** Σ over removed candidates of ⟨g, δ⟩ (first-order loss increase, each alone). */
  removedLossIncrease: number;
  keptScoreMin: number;
  removedScoreMax: number;
  /** λ actually applied (differs from the option under lambdaMode 'balanced'). */
  lambda: number;
}

export type Role = 'bottom' | 'middle' | 'top';

export interface LayerRecord {
  /** Position in the emulator. */
  index: number;
  /** Block index in the source model. */
  source: number;
  role: Role;
  ranks: LayerSpec['ranks'];
  mlpWidth: number;
  /** Component indices (into the source matrix's SVD, σ descending) kept per low-rank projection. */
  keptComponents?: Partial<Record<AttnProj | MlpProj, number[]>>;
  /** Source channel ids kept (ascending), for pruned MLPs. */
  keptChannels?: number[];
  scores?: Partial<Record<AttnProj | MlpProj | 'mlp', ScoreSummary>>;
}

export interface CompressResult {
  spec: ModelSpec;
  weights: WeightMap;
  plan: BudgetPlan;
  layers: LayerRecord[];
  lambdaAttn: number;
  lambdaMlp: number;
  lambdaMode: LambdaMode;
  readings: Record<string, string>;
  timings: { svdSeconds: number; scoreSeconds: number; totalSeconds: number };
}

function f32(shape: number[], data: ArrayLike<number>): HostTensor {
  return { dtype: 'F32', shape, data: data instanceof Float32Array ? data.slice() : Float32Array.from(data) };
}

/**
 * Host arrays the emulator shares with its source model (embeddings, head, norms, the adapter blocks and
 * every other tensor compression leaves as it is): at real sizes a copy of them is most of the emulator
 * (Qwen2.5-0.5B: 0.8 GB in F32). Nothing writes into a WeightMap's arrays; roundWeightsTo copies a shared
 * array before converting it.
 */
export const sharedWithSource = new WeakSet<ArrayBufferView>();

/** The source tensor itself (same array, same dtype label), or an F32 copy when it is not F32 data. */
function share(t: HostTensor): HostTensor {
  if (!(t.data instanceof Float32Array)) return f32([...t.shape], t.data);
  sharedWithSource.add(t.data);
  return { dtype: t.dtype, shape: [...t.shape], data: t.data };
}

function summarize(parts: ScoreParts, kept: number[]): ScoreSummary {
  const keptSet = new Set(kept);
  let removedGradShift = 0,
    removedLossIncrease = 0,
    keptScoreMin = Infinity,
    removedScoreMax = -Infinity;
  for (let i = 0; i < parts.score.length; i++) {
    if (keptSet.has(i)) keptScoreMin = Math.min(keptScoreMin, parts.score[i]!);
    else {
      removedGradShift += parts.gradShift[i]!;
      removedLossIncrease += parts.lossIncrease[i]!;
      removedScoreMax = Math.max(removedScoreMax, parts.score[i]!);
    }
  }
  return {
    candidates: parts.score.length,
    kept: kept.length,
    removedGradShift,
    removedLossIncrease,
    // JSON has no Infinity: a side with no members reports 0.
    keptScoreMin: Number.isFinite(keptScoreMin) ? keptScoreMin : 0,
    removedScoreMax: Number.isFinite(removedScoreMax) ? removedScoreMax : 0,
    lambda: parts.lambda,
  };
}

/**
 * Builds the emulator. gradot's scores come from `scorer` (filled during a streamed support pass) or are
 * computed here from `stats` (every statistic in memory at once).
 */
export function compressModel(
  spec: ModelSpec,
  weights: WeightMap,
  opts: CompressOptions,
  stats?: Map<string, LinearStats>,
  scorer?: GradotScorer,
): CompressResult {
  const t0 = performance.now();
  let svdMs = 0,
    scoreMs = 0;
  validateWeights(spec, weights, 'source model');
  const layout = scorer?.layout ?? compressionLayout(spec, opts);
  const { gradot, mlpMode, allocation, lambdaAttn, lambdaMlp, lambdaMode } = layout;
  let plan = layout.plan;
  plan = { ...plan, layers: plan.layers.map((l) => ({ ...l, ranks: { ...l.ranks } })) };
  const isMlp = isMlpProj;
  const local = scorer ?? new GradotScorer(spec, weights, opts);

  // gradot: SVD + DRD scores per factored matrix, computed once (the global allocation needs them all first).
  const matrixKey = (src: number, group: 'attn' | 'mlp', proj: AttnProj | MlpProj) => `layers.${src}.${group}.${proj}`;
  const scoreMatrix = (src: number, group: 'attn' | 'mlp', proj: AttnProj | MlpProj): ScoredMatrix => {
    const key = matrixKey(src, group, proj);
    return local.drd.get(key) ?? local.scoreDrd(key, needStats(stats, key));
  };
  if (gradot && allocation === 'global' && plan.kappa !== 1) {
    const cands: RankCandidate[] = [];
    let pool = plan.paramsTarget - plan.paramsAfter;
    for (const l of plan.layers) {
      for (const [proj, r] of Object.entries(l.ranks) as [AttnProj | MlpProj, number][]) {
        const e = scoreMatrix(l.source, isMlp(proj) ? 'mlp' : 'attn', proj);
        const W = need(weights, `layers.${l.source}.${isMlp(proj) ? 'mlp' : 'attn'}.${proj}.weight`);
        const o = W.shape[0]!,
          i = W.shape[1]!;
        pool += r * (o + i);
        const bySigma = Array.from({ length: e.rank }, (_, k) => k).sort((a, b) => e.S[b]! - e.S[a]! || a - b);
        cands.push({ key: `${l.source}.${proj}`, out: o, in: i, score: e.parts.score, protect: bySigma.slice(0, alwaysKeepCount(e.rank)) });
      }
    }
    const t = performance.now();
    const { kept } = allocateRanksGlobally(cands, pool);
    scoreMs += performance.now() - t;
    for (const l of plan.layers) {
      for (const proj of Object.keys(l.ranks) as (AttnProj | MlpProj)[]) {
        const k = kept.get(`${l.source}.${proj}`)!;
        l.ranks[proj] = k.length;
        scoreMatrix(l.source, isMlp(proj) ? 'mlp' : 'attn', proj).kept = k;
      }
    }
    plan = {
      ...plan,
      paramsAfter: sumBlockParams(spec, plan.layers),
      reading: GLOBAL_RANK_READING,
      notes: [...plan.notes, `global rank pool ${pool}`],
    };
  }
  const L = spec.layers.length;
  const { bottom, top } = opts.split;
  const dense = (i: number): LayerSpec => ({ source: spec.layers[i]!.source, ranks: {}, mlpWidth: spec.intermediateSize });
  const emuLayers: LayerSpec[] = [
    ...Array.from({ length: bottom }, (_, i) => dense(i)),
    ...plan.layers.map((l) => ({ source: l.source, ranks: { ...l.ranks }, mlpWidth: l.mlpWidth })),
    ...Array.from({ length: top }, (_, i) => dense(L - top + i)),
  ];
  const emuSpec: ModelSpec = { ...spec, layers: emuLayers };
  const out: WeightMap = new Map();
  const records: LayerRecord[] = [];
  const { attn, mlp } = projsOf(spec);
  const d = spec.hiddenSize;
  const dff = spec.intermediateSize;

  const toBuild = emuLayers.reduce((n, l) => n + Object.keys(l.ranks).length, 0);
  let built = 0;
  emuLayers.forEach((layer, pos) => {
    // Source index = position in the source model (sources of a dense input are 0..L-1).
    const src = pos < bottom ? pos : pos >= emuLayers.length - top ? L - (emuLayers.length - pos) : plan.keptBlocks[pos - bottom]!;
    const role: Role = pos < bottom ? 'bottom' : pos >= emuLayers.length - top ? 'top' : 'middle';
    const sp = `layers.${src}.`;
    const dp = `layers.${pos}.`;
    const rec: LayerRecord = { index: pos, source: src, role, ranks: { ...layer.ranks }, mlpWidth: layer.mlpWidth };
    const copy = (suffix: string) => {
      const t = weights.get(sp + suffix);
      if (t) out.set(dp + suffix, share(t));
    };
    for (const n of ['ln1.weight', 'ln1.bias', 'ln2.weight', 'ln2.bias']) copy(n);

    // Linears: dense copy, or low-rank factors (gradot DRD / svd baseline).
    const linear = (group: 'attn' | 'mlp', proj: AttnProj | MlpProj, W: HostTensor) => {
      const base = `${group}.${proj}`;
      const rank = layer.ranks[proj];
      if (rank === undefined) {
        out.set(`${dp}${base}.weight`, share(W));
        return;
      }
      const [o, i] = W.shape;
      let factors: { a: ArrayLike<number>; b: ArrayLike<number> };
      if (opts.method === 'gradot') {
        const e = scoreMatrix(src, group, proj);
        const t = performance.now();
        const kept = e.kept ?? selectComponents(e.S, e.parts.score, rank);
        scoreMs += performance.now() - t;
        const back = e.spilled ? (local.spill?.take(matrixKey(src, group, proj)) ?? null) : null;
        e.spilled = false;
        if (e.f ?? back) {
          factors = keptFactors((e.f ?? back)!, o!, i!, kept);
        } else {
          // Dropped under the scorer's factor budget: the same SVD again (deterministic, same factors, and
          // lowRankFactors + one F32 rounding below give the same values as keptFactors).
          const ts = performance.now();
          const f = exactSvd(W.data, o!, i!);
          svdMs += performance.now() - ts;
          factors = lowRankFactors(f, o!, i!, kept);
        }
        // Each matrix is built once: its factors (up to their share of the memory budget over all matrices) can go now
        // instead of living through evaluation and packaging.
        e.f = null;
        const parts = e.parts;
        (rec.keptComponents ??= {})[proj] = kept;
        (rec.scores ??= {})[proj] = summarize(parts, kept);
      } else {
        const t = performance.now();
        factors = svdTruncate(W.data, o!, i!, rank, { method: opts.svdMethod, seed: opts.seed });
        svdMs += performance.now() - t;
        (rec.keptComponents ??= {})[proj] = Array.from({ length: rank }, (_, k) => k);
      }
      out.set(`${dp}${base}.weight_a`, f32([o!, rank], factors.a));
      out.set(`${dp}${base}.weight_b`, f32([rank, i!], factors.b));
      opts.onLinearBuilt?.(++built, toBuild);
    };

    for (const a of attn) {
      linear('attn', a, need(weights, `${sp}attn.${a}.weight`));
      copy(`attn.${a}.bias`);
    }

    // MLP: slice to the planned width first (gradot, prune), then factor what the plan factors (svd).
    let mlpT: Record<string, HostTensor> = {};
    for (const m of mlp) {
      mlpT[`${m}.weight`] = need(weights, `${sp}mlp.${m}.weight`);
      const b = weights.get(`${sp}mlp.${m}.bias`);
      if (b) mlpT[`${m}.bias`] = b;
    }
    if (layer.mlpWidth !== dff) {
      const tensors: MlpTensors = {
        d,
        dff,
        upW: mlpT['up.weight']!.data,
        upB: mlpT['up.bias']?.data,
        downW: mlpT['down.weight']!.data,
        gateW: mlpT['gate.weight']?.data,
        gateB: mlpT['gate.bias']?.data,
        downB: mlpT['down.bias']?.data,
      };
      const t = performance.now();
      let kept: number[];
      if (opts.method === 'gradot') {
        const parts =
          local.scp.get(src) ??
          scpPartsFor(
            spec,
            weights,
            src,
            {
              up: needStats(stats, `${sp}mlp.up`),
              down: needStats(stats, `${sp}mlp.down`),
              gate: tensors.gateW ? needStats(stats, `${sp}mlp.gate`) : undefined,
            },
            layout,
          );
        kept = selectChannels(parts.score, layer.mlpWidth);
        (rec.scores ??= {}).mlp = summarize(parts, kept);
      } else if (opts.method === 'prune') {
        kept = selectChannels(magnitudeChannelScores(tensors), layer.mlpWidth);
      } else {
        throw new Error(`compress: method ${opts.method} does not prune channels`);
      }
      scoreMs += performance.now() - t;
      rec.keptChannels = kept;
      const s = sliceMlp(tensors, kept);
      const w = layer.mlpWidth;
      mlpT = {};
      mlpT['up.weight'] = f32([w, d], s.upW);
      if (s.upB) mlpT['up.bias'] = f32([w], s.upB);
      if (s.gateW) mlpT['gate.weight'] = f32([w, d], s.gateW);
      if (s.gateB) mlpT['gate.bias'] = f32([w], s.gateB);
      mlpT['down.weight'] = f32([d, w], s.downW);
      if (s.downB) mlpT['down.bias'] = f32([d], s.downB);
    }
    for (const m of mlp) {
      linear('mlp', m, mlpT[`${m}.weight`]!);
      const b = mlpT[`${m}.bias`];
      if (b) out.set(`${dp}mlp.${m}.bias`, share(b));
    }
    records.push(rec);
  });

  for (const name of canonicalShapes(emuSpec).keys()) {
    if (!name.startsWith('layers.')) out.set(name, share(need(weights, name)));
  }
  // Canonical order (the decoder and the package writer both rely on a stable order).
  const ordered: WeightMap = new Map();
  for (const name of canonicalShapes(emuSpec).keys()) {
    const t = out.get(name);
    if (!t) throw new Error(`compress: produced no tensor for ${name}`);
    ordered.set(name, t);
  }
  validateWeights(emuSpec, ordered, 'emulator');
  return {
    spec: emuSpec,
    weights: ordered,
    plan,
    layers: records,
    lambdaAttn,
    lambdaMlp,
    lambdaMode,
    readings: {
      drd: GCS_READINGS.drd,
      scp: GCS_READINGS.scp,
      select: SELECT_READING,
      budget: BUDGET_READING,
      prune: PRUNE_READING,
      lambda: LAMBDA_READINGS[lambdaMode],
      ...(gradot ? { mlp: MLP_READINGS[mlpMode] } : {}),
      ...(gradot && allocation === 'global' ? { rankAllocation: GLOBAL_RANK_READING } : {}),
    },
    timings: {
      // With a scorer, its SVD and scoring time (spent during the support pass) is counted here too.
      svdSeconds: (svdMs + local.svdMs) / 1000,
      scoreSeconds: (scoreMs + local.scoreMs) / 1000,
      totalSeconds: (performance.now() - t0) / 1000,
    },
  };
}
