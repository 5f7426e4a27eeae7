/**
 * gradot's scores for compressModel (compress.ts): the layout decision (budget plan, MLP mode, rank
 * allocation, λ readings), then per matrix the exact SVD and DRD scores, per pruned MLP the SCP channel
 * scores, computed as the support pass hands over each linear's statistics so that one group of blocks'
 * statistics can be dropped before the next group's exist. The SVD factors the build will need are kept
 * under a byte budget, spilled (FactorSpill) or recomputed.
 */
import { exactSvd } from '../../engine/linalg/svd';
import { projsOf } from '../../model/hf';
import type { ModelSpec } from '../../model/spec';
import type { HostTensor, WeightMap } from '../../model/weights';
import { planBudget, type BudgetPlan } from './budget';
import type { CompressOptions } from './compress';
import { drdScores, rescore, scpScores, type LambdaMode, type ScoreParts, type SvdFactors } from './gcs';
import type { LinearStats } from './kfac';

/**
 * gradot's default readings, chosen on the demo model (docs/ot-compression.md, "Study"): lowest adapter-
 * gradient shift on a selection slice at keep 0.5 and 0.6, confirmed on a separate test slice against svd
 * and prune. The paper's layout (SCP channels, uniform κ) stays available as mlp = 'scp', 'uniform'.
 * λ is read 'balanced' (docs/ot-compression.md, "λ"): under 'raw' the loss term is ~0.4% of the shift term
 * on the demo model, so every λ in the UI range selects like λ = 0 and the emulator hides nothing; balanced
 * λ = 1 weighs both terms equally and its emulator hides the model beyond two standard errors. Balanced
 * λ = 0 selects like the old raw default.
 */
export const GRADOT_DEFAULTS = { mlp: 'drd', rankAllocation: 'global', lambdaMode: 'balanced' } as const;

export function need(weights: WeightMap, name: string): HostTensor {
  const t = weights.get(name);
  if (!t) throw new Error(`compress: missing tensor ${name}`);
  return t;
}

export function needStats(stats: Map<string, LinearStats> | undefined, name: string): LinearStats {
  const s = stats?.get(name);
  if (!s) throw new Error(`compress: gradot needs support statistics for ${name} (run supportPass on the dense model)`);
  return s;
}

/** What compressModel decides before looking at any weight: the budget plan and gradot's layout readings. */
export interface CompressionLayout {
  plan: BudgetPlan;
  gradot: boolean;
  mlpMode: 'scp' | 'drd';
  allocation: 'uniform' | 'global';
  lambdaAttn: number;
  lambdaMlp: number;
  lambdaMode: LambdaMode;
}

export function compressionLayout(spec: ModelSpec, opts: CompressOptions): CompressionLayout {
  const gradot = opts.method === 'gradot';
  // gradot defaults (GRADOT_DEFAULTS); attnKeep is an option of the SCP layout, so it implies mlp = scp.
  const mlpMode = opts.mlp ?? (gradot && opts.attnKeep === undefined ? GRADOT_DEFAULTS.mlp : 'scp');
  const allocation = opts.rankAllocation ?? (gradot ? GRADOT_DEFAULTS.rankAllocation : 'uniform');
  if (!gradot && (mlpMode !== 'scp' || allocation !== 'uniform'))
    throw new Error(`compress: mlp/rankAllocation options apply to gradot only`);
  if (mlpMode === 'drd' && opts.attnKeep !== undefined)
    throw new Error('compress: attnKeep needs mlp = scp (with drd every linear shares one κ)');
  const mlpDrd = gradot && mlpMode === 'drd';
  let plan = planBudget(spec, { method: mlpDrd ? 'svd' : opts.method, keep: opts.keep, split: opts.split, attnKeep: opts.attnKeep });
  if (mlpDrd) plan = { ...plan, method: 'gradot', notes: [...plan.notes, 'MLP factored by DRD on the svd layout'] };
  plan = { ...plan, layers: plan.layers.map((l) => ({ ...l, ranks: { ...l.ranks } })) };
  return {
    plan,
    gradot,
    mlpMode,
    allocation,
    lambdaAttn: opts.lambdaAttn ?? 1,
    lambdaMlp: opts.lambdaMlp ?? 1,
    lambdaMode: opts.lambdaMode ?? GRADOT_DEFAULTS.lambdaMode,
  };
}

export const isMlpProj = (p: string): boolean => p === 'up' || p === 'gate' || p === 'down';

/** One DRD-scored matrix: its SVD (null once dropped to save memory: recomputed, identically, when built). */
export interface ScoredMatrix {
  /** What is kept of the SVD for building the factors (null: over the factor budget, recomputed then). */
  f: BuildFactors | null;
  S: Float64Array;
  rank: number;
  parts: ScoreParts;
  kept?: number[];
  /** Over the factor budget and handed to the scorer's FactorSpill (taken back by the build). */
  spilled?: boolean;
}

/**
 * Where the scorer puts the factors that do not fit its budget until the build takes them back (the CLI: a
 * temporary folder, src/storage/factor-spill.ts). Without one, those matrices' SVDs are recomputed: at
 * TinyLlama size that is most of the SVD time again. Values go in and come out bit for bit.
 */
export interface FactorSpill {
  /** false: not kept (no room, a write error); that matrix is recomputed instead. */
  put(key: string, f: BuildFactors): boolean;
  /** The factors put under `key`, once; null if they cannot be read back (then recomputed). */
  take(key: string): BuildFactors | null;
}

/**
 * The SVD as the build needs it once the scores exist: U·diag(S) and Vᵀ already rounded to F32, which is
 * exactly what lowRankFactors + the F32 emulator tensors make of the f64 factors (one rounding of U_ik·S_k,
 * one of Vᵀ), in half the bytes of the f64 U and Vᵀ.
 */
export interface BuildFactors {
  rank: number;
  /** [out, rank] = f32(U · diag(S)). */
  US: Float32Array;
  /** [rank, in] = f32(Vᵀ). */
  Vt: Float32Array;
}

export function buildFactors(f: SvdFactors): BuildFactors {
  const { rank } = f;
  const US = new Float32Array(f.U.length);
  const out = f.U.length / rank;
  for (let i = 0; i < out; i++) for (let k = 0; k < rank; k++) US[i * rank + k] = f.U[i * rank + k]! * f.S[k]!;
  return { rank, US, Vt: Float32Array.from(f.Vt) };
}

/** The kept components' F32 factors a [out, r] and b [r, in], from buildFactors' output. */
export function keptFactors(f: BuildFactors, out: number, inn: number, kept: number[]): { a: Float32Array; b: Float32Array } {
  const r = kept.length;
  const a = new Float32Array(out * r);
  const b = new Float32Array(r * inn);
  kept.forEach((k, c) => {
    if (k < 0 || k >= f.rank) throw new Error(`keptFactors: component ${k} out of range`);
    for (let i = 0; i < out; i++) a[i * r + c] = f.US[i * f.rank + k]!;
    b.set(f.Vt.subarray(k * inn, k * inn + inn), c * inn);
  });
  return { a, b };
}

/**
 * gradot's scores, computed as support statistics arrive (so the statistics of one group of blocks can be
 * dropped before the next group's exist): SVD + DRD scores of every matrix the plan factors, SCP channel
 * scores of every MLP the plan prunes. SVD factors are kept while they fit `factorBudget` bytes; beyond
 * it they go to the `spill` when there is one, else only σ and the scores are kept and compressModel
 * recomputes that matrix's SVD (deterministic, so the result is the same). Numerics are exactly compressModel's own.
 */
export class GradotScorer {
  readonly drd = new Map<string, ScoredMatrix>();
  readonly scp = new Map<number, ScoreParts>();
  svdMs = 0;
  scoreMs = 0;
  private factorBytes = 0;
  private readonly drdKeys = new Set<string>();
  private readonly scpBlocks = new Set<number>();
  private readonly pendingMlp = new Map<number, Map<string, LinearStats>>();
  readonly layout: CompressionLayout;

  constructor(
    private readonly spec: ModelSpec,
    private readonly weights: WeightMap,
    opts: CompressOptions,
    private readonly factorBudget = Infinity,
    readonly spill?: FactorSpill,
  ) {
    this.layout = compressionLayout(spec, opts);
    if (!this.layout.gradot) return;
    const dff = spec.intermediateSize;
    for (const l of this.layout.plan.layers) {
      for (const proj of Object.keys(l.ranks)) this.drdKeys.add(`layers.${l.source}.${isMlpProj(proj) ? 'mlp' : 'attn'}.${proj}`);
      if (l.mlpWidth !== dff) this.scpBlocks.add(l.source);
    }
  }

  /** Scored so far / to score (DRD matrices + SCP MLPs), for progress. */
  get done(): number {
    return this.drd.size + this.scp.size;
  }
  get total(): number {
    return this.drdKeys.size + this.scpBlocks.size;
  }

  /** Whether consume() may hold statistics after it returns (SCP waits for an MLP's three linears). */
  get keepsStats(): boolean {
    return this.scpBlocks.size > 0;
  }

  /** Linears whose statistics this scorer uses (the support pass can observe only these). */
  get needed(): string[] {
    const { attn, mlp } = projsOf(this.spec);
    const out = new Set(this.drdKeys);
    for (const b of this.scpBlocks) for (const p of mlp) out.add(`layers.${b}.mlp.${p}`);
    const order = this.spec.layers.flatMap((_, i) => [
      ...attn.map((p) => `layers.${i}.attn.${p}`),
      ...mlp.map((p) => `layers.${i}.mlp.${p}`),
    ]);
    return order.filter((n) => out.has(n));
  }

  /** DRD scores of one matrix (SVD + scores), exactly as compressModel computes them. */
  scoreDrd(key: string, stats: LinearStats): ScoredMatrix {
    const W = need(this.weights, `${key}.weight`);
    let t = performance.now();
    const f = exactSvd(W.data, W.shape[0]!, W.shape[1]!);
    this.svdMs += performance.now() - t;
    t = performance.now();
    const lam = key.includes('.attn.') ? this.layout.lambdaAttn : this.layout.lambdaMlp;
    const parts = rescore(drdScores(f, stats, lam), lam, this.layout.lambdaMode);
    this.scoreMs += performance.now() - t;
    const bytes = 4 * (f.U.length + f.Vt.length);
    const keep = this.factorBytes + bytes <= this.factorBudget;
    if (keep) this.factorBytes += bytes;
    const spilled = !keep && this.spill !== undefined && this.spill.put(key, buildFactors(f));
    const e: ScoredMatrix = { f: keep ? buildFactors(f) : null, S: f.S, rank: f.rank, parts, ...(spilled ? { spilled } : {}) };
    this.drd.set(key, e);
    return e;
  }

  /** Feeds one linear's statistics (names as supportPass reports them); what the plan does not use is ignored. */
  consume(name: string, stats: LinearStats): void {
    if (this.drdKeys.has(name) && !this.drd.has(name)) this.scoreDrd(name, stats);
    const m = /^layers\.(\d+)\.mlp\.(\w+)$/.exec(name);
    if (!m || !this.scpBlocks.has(Number(m[1]))) return;
    const src = Number(m[1]);
    let p = this.pendingMlp.get(src);
    if (!p) this.pendingMlp.set(src, (p = new Map()));
    p.set(m[2]!, stats);
    if (!p.has('up') || !p.has('down') || (this.spec.gatedMlp && !p.has('gate'))) return;
    this.pendingMlp.delete(src);
    const t = performance.now();
    this.scp.set(
      src,
      scpPartsFor(this.spec, this.weights, src, { up: p.get('up')!, down: p.get('down')!, gate: p.get('gate') }, this.layout),
    );
    this.scoreMs += performance.now() - t;
  }
}

export function scpPartsFor(
  spec: ModelSpec,
  weights: WeightMap,
  src: number,
  st: { up: LinearStats; down: LinearStats; gate?: LinearStats },
  layout: CompressionLayout,
): ScoreParts {
  const sp = `layers.${src}.mlp.`;
  const gateW = weights.get(`${sp}gate.weight`)?.data;
  return rescore(
    scpScores(
      {
        d: spec.hiddenSize,
        dff: spec.intermediateSize,
        upW: need(weights, `${sp}up.weight`).data,
        upB: weights.get(`${sp}up.bias`)?.data,
        gateW,
        gateB: weights.get(`${sp}gate.bias`)?.data,
        downW: need(weights, `${sp}down.weight`).data,
      },
      { up: st.up, down: st.down, gate: gateW ? st.gate : undefined },
      layout.lambdaMlp,
    ),
    layout.lambdaMlp,
    layout.lambdaMode,
  );
}
