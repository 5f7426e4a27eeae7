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
  allocateRanksGlobally, BUDGET_READING, GLOBAL_RANK_READING, planBudget, sumBlockParams, type BudgetPlan, type CompressionMethod,
  type RankCandidate, type Split,
} from './budget';
import { drdScores, GCS_READINGS, LAMBDA_READINGS, rescore, scpScores, type LambdaMode, type ScoreParts } from './gcs';
import type { LinearStats } from './kfac';
import { alwaysKeepCount, lowRankFactors, selectChannels, selectComponents, SELECT_READING, sliceMlp, type MlpTensors } from './select';
import type { SvdFactors } from './gcs';

export interface CompressOptions {
  method: CompressionMethod;
  /** Fraction of middle-block parameters kept. */
  keep: number;
  split: Split;
  /** λ of DRD (attention). Default 1. */
  lambdaAttn?: number;
  /** λ of SCP (MLP). Default 1. */
  lambdaMlp?: number;
  /** SVD algorithm for the `svd` baseline ('auto' = exact up to 256, randomized above). gradot always uses
   *  the exact SVD: DRD scores every component, so it needs the full spectrum. */
  svdMethod?: SvdMethod;
  seed?: number;
  /** gradot: attention's own keep fraction (budget.ts BudgetOptions.attnKeep); default: same as the MLP. */
  attnKeep?: number;
  /** How λ is scaled (gcs.ts LambdaMode). Default 'raw' (the formula as written). */
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
}

/**
 * gradot's default readings, chosen on the demo model (docs/ot-compression.md, "Study"): lowest adapter-
 * gradient shift on a selection slice at keep 0.5 and 0.6, confirmed on a separate test slice against svd
 * and prune. The paper's layout (SCP channels, uniform κ) stays available as mlp = 'scp', 'uniform'.
 */
export const GRADOT_DEFAULTS = { mlp: 'drd', rankAllocation: 'global' } as const;

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

function need(weights: WeightMap, name: string): HostTensor {
  const t = weights.get(name);
  if (!t) throw new Error(`compress: missing tensor ${name}`);
  return t;
}

function needStats(stats: Map<string, LinearStats> | undefined, name: string): LinearStats {
  const s = stats?.get(name);
  if (!s) throw new Error(`compress: gradot needs support statistics for ${name} (run supportPass on the dense model)`);
  return s;
}

function summarize(parts: ScoreParts, kept: number[]): ScoreSummary {
  const keptSet = new Set(kept);
  let removedGradShift = 0, removedLossIncrease = 0, keptScoreMin = Infinity, removedScoreMax = -Infinity;
  for (let i = 0; i < parts.score.length; i++) {
    if (keptSet.has(i)) keptScoreMin = Math.min(keptScoreMin, parts.score[i]);
    else {
      removedGradShift += parts.gradShift[i];
      removedLossIncrease += parts.lossIncrease[i];
      removedScoreMax = Math.max(removedScoreMax, parts.score[i]);
    }
  }
  return {
    candidates: parts.score.length, kept: kept.length, removedGradShift, removedLossIncrease,
    // JSON has no Infinity: a side with no members reports 0.
    keptScoreMin: Number.isFinite(keptScoreMin) ? keptScoreMin : 0,
    removedScoreMax: Number.isFinite(removedScoreMax) ? removedScoreMax : 0,
    lambda: parts.lambda,
  };
}

export function compressModel(
  spec: ModelSpec, weights: WeightMap, opts: CompressOptions, stats?: Map<string, LinearStats>,
): CompressResult {
  const t0 = performance.now();
  let svdMs = 0, scoreMs = 0;
  validateWeights(spec, weights, 'source model');
  const gradot = opts.method === 'gradot';
  // gradot defaults (GRADOT_DEFAULTS); attnKeep is an option of the SCP layout, so it implies mlp = scp.
  const mlpMode = opts.mlp ?? (gradot && opts.attnKeep === undefined ? GRADOT_DEFAULTS.mlp : 'scp');
  const allocation = opts.rankAllocation ?? (gradot ? GRADOT_DEFAULTS.rankAllocation : 'uniform');
  if (!gradot && (mlpMode !== 'scp' || allocation !== 'uniform')) throw new Error(`compress: mlp/rankAllocation options apply to gradot only`);
  if (mlpMode === 'drd' && opts.attnKeep !== undefined) throw new Error('compress: attnKeep needs mlp = scp (with drd every linear shares one κ)');
  const mlpDrd = gradot && mlpMode === 'drd';
  let plan = planBudget(spec, { method: mlpDrd ? 'svd' : opts.method, keep: opts.keep, split: opts.split, attnKeep: opts.attnKeep });
  if (mlpDrd) plan = { ...plan, method: 'gradot', notes: [...plan.notes, 'MLP factored by DRD on the svd layout'] };
  plan = { ...plan, layers: plan.layers.map((l) => ({ ...l, ranks: { ...l.ranks } })) };
  const lambdaAttn = opts.lambdaAttn ?? 1;
  const lambdaMlp = opts.lambdaMlp ?? 1;
  const lambdaMode: LambdaMode = opts.lambdaMode ?? 'raw';
  const isMlp = (p: string) => p === 'up' || p === 'gate' || p === 'down';

  // gradot: SVD + DRD scores per factored matrix, computed once (the global allocation needs them all first).
  const scored = new Map<string, { f: SvdFactors; parts: ScoreParts; kept?: number[] }>();
  const scoreMatrix = (src: number, group: 'attn' | 'mlp', proj: AttnProj | MlpProj) => {
    const key = `layers.${src}.${group}.${proj}`;
    let e = scored.get(key);
    if (!e) {
      const W = need(weights, `${key}.weight`);
      let t = performance.now();
      const f = exactSvd(W.data, W.shape[0], W.shape[1]);
      svdMs += performance.now() - t;
      t = performance.now();
      const lam = group === 'attn' ? lambdaAttn : lambdaMlp;
      const parts = rescore(drdScores(f, needStats(stats, key), lam), lam, lambdaMode);
      scoreMs += performance.now() - t;
      e = { f, parts };
      scored.set(key, e);
    }
    return e;
  };
  if (gradot && allocation === 'global' && plan.kappa !== 1) {
    const cands: RankCandidate[] = [];
    let pool = plan.paramsTarget - plan.paramsAfter;
    for (const l of plan.layers) {
      for (const [proj, r] of Object.entries(l.ranks) as [AttnProj | MlpProj, number][]) {
        const e = scoreMatrix(l.source, isMlp(proj) ? 'mlp' : 'attn', proj);
        const o = e.f.U.length / e.f.rank, i = e.f.Vt.length / e.f.rank;
        pool += r * (o + i);
        const bySigma = Array.from({ length: e.f.rank }, (_, k) => k).sort((a, b) => e.f.S[b] - e.f.S[a] || a - b);
        cands.push({ key: `${l.source}.${proj}`, out: o, in: i, score: e.parts.score, protect: bySigma.slice(0, alwaysKeepCount(e.f.rank)) });
      }
    }
    const t = performance.now();
    const { kept } = allocateRanksGlobally(cands, pool);
    scoreMs += performance.now() - t;
    for (const l of plan.layers) {
      for (const proj of Object.keys(l.ranks) as (AttnProj | MlpProj)[]) {
        const k = kept.get(`${l.source}.${proj}`)!;
        l.ranks[proj] = k.length;
        scored.get(`layers.${l.source}.${isMlp(proj) ? 'mlp' : 'attn'}.${proj}`)!.kept = k;
      }
    }
    plan = { ...plan, paramsAfter: sumBlockParams(spec, plan.layers), reading: GLOBAL_RANK_READING, notes: [...plan.notes, `global rank pool ${pool}`] };
  }
  const L = spec.layers.length;
  const { bottom, top } = opts.split;
  const dense = (i: number): LayerSpec => ({ source: spec.layers[i].source, ranks: {}, mlpWidth: spec.intermediateSize });
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

  emuLayers.forEach((layer, pos) => {
    // Source index = position in the source model (sources of a dense input are 0..L-1).
    const src = pos < bottom ? pos : pos >= emuLayers.length - top ? L - (emuLayers.length - pos) : plan.keptBlocks[pos - bottom];
    const role: Role = pos < bottom ? 'bottom' : pos >= emuLayers.length - top ? 'top' : 'middle';
    const sp = `layers.${src}.`;
    const dp = `layers.${pos}.`;
    const rec: LayerRecord = { index: pos, source: src, role, ranks: { ...layer.ranks }, mlpWidth: layer.mlpWidth };
    const copy = (suffix: string) => {
      const t = weights.get(sp + suffix);
      if (t) out.set(dp + suffix, f32([...t.shape], t.data));
    };
    for (const n of ['ln1.weight', 'ln1.bias', 'ln2.weight', 'ln2.bias']) copy(n);

    // Linears: dense copy, or low-rank factors (gradot DRD / svd baseline).
    const linear = (group: 'attn' | 'mlp', proj: AttnProj | MlpProj, W: HostTensor) => {
      const base = `${group}.${proj}`;
      const rank = layer.ranks[proj];
      if (rank === undefined) {
        out.set(`${dp}${base}.weight`, f32([...W.shape], W.data));
        return;
      }
      const [o, i] = W.shape;
      let factors;
      if (opts.method === 'gradot') {
        const { f, parts, kept: globalKept } = scoreMatrix(src, group, proj);
        const t = performance.now();
        const kept = globalKept ?? selectComponents(f.S, parts.score, rank);
        scoreMs += performance.now() - t;
        factors = lowRankFactors(f, o, i, kept);
        (rec.keptComponents ??= {})[proj] = kept;
        (rec.scores ??= {})[proj] = summarize(parts, kept);
      } else {
        const t = performance.now();
        factors = svdTruncate(W.data, o, i, rank, { method: opts.svdMethod, seed: opts.seed });
        svdMs += performance.now() - t;
        (rec.keptComponents ??= {})[proj] = Array.from({ length: rank }, (_, k) => k);
      }
      out.set(`${dp}${base}.weight_a`, f32([o, rank], factors.a));
      out.set(`${dp}${base}.weight_b`, f32([rank, i], factors.b));
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
        d, dff, upW: mlpT['up.weight'].data, upB: mlpT['up.bias']?.data, downW: mlpT['down.weight'].data,
        gateW: mlpT['gate.weight']?.data, gateB: mlpT['gate.bias']?.data, downB: mlpT['down.bias']?.data,
      };
      const t = performance.now();
      let kept: number[];
      if (opts.method === 'gradot') {
        const parts = rescore(scpScores(
          { d, dff, upW: tensors.upW, upB: tensors.upB, gateW: tensors.gateW, gateB: tensors.gateB, downW: tensors.downW },
          {
            up: needStats(stats, `${sp}mlp.up`), down: needStats(stats, `${sp}mlp.down`),
            gate: tensors.gateW ? needStats(stats, `${sp}mlp.gate`) : undefined,
          },
          lambdaMlp,
        ), lambdaMlp, lambdaMode);
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
      linear('mlp', m, mlpT[`${m}.weight`]);
      const b = mlpT[`${m}.bias`];
      if (b) out.set(`${dp}mlp.${m}.bias`, f32([...b.shape], b.data));
    }
    records.push(rec);
  });

  for (const name of canonicalShapes(emuSpec).keys()) {
    if (!name.startsWith('layers.')) out.set(name, f32([...need(weights, name).shape], need(weights, name).data));
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
    spec: emuSpec, weights: ordered, plan, layers: records, lambdaAttn, lambdaMlp, lambdaMode,
    readings: {
      drd: GCS_READINGS.drd, scp: GCS_READINGS.scp, select: SELECT_READING, budget: BUDGET_READING, prune: PRUNE_READING,
      lambda: LAMBDA_READINGS[lambdaMode],
      ...(gradot ? { mlp: MLP_READINGS[mlpMode] } : {}),
      ...(gradot && allocation === 'global' ? { rankAllocation: GLOBAL_RANK_READING } : {}),
    },
    timings: { svdSeconds: svdMs / 1000, scoreSeconds: scoreMs / 1000, totalSeconds: (performance.now() - t0) / 1000 },
  };
}
