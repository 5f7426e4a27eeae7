/**
 * The Markdown table of a λ sweep (docs/ot-compression.md, "λ"): one row per `gradot ot` report, with λ and
 * its reading, the support loss of the full model and of the emulator (what a larger λ should raise), the
 * middle's rank split between attention and MLP (what the global allocation moves), Emulator ZS (acc and
 * acc_norm), the privacy side (Full ZS − Emulator ZS on acc_norm, paired ±, verdict), Emulator FT, Plug-in
 * and Δ (acc and acc_norm, paired ±, verdicts). Rows keep the order given.
 */
import type { OTReport } from '../offsite/protocol';
import { claimsOf } from '../offsite/report';
import { formatClaim } from '../offsite/verdicts';

interface EmulatorRecord {
  lambdaAttn?: number;
  lambdaMlp?: number;
  readings?: Record<string, string>;
  supportLoss?: { full: number; emulator: number };
  layers?: { role?: string; ranks?: Record<string, number> }[] | number;
}

const ATTN = new Set(['q', 'k', 'v', 'o']);
const pct = (v: number | undefined): string => (v === undefined ? '—' : (100 * v).toFixed(1));

/** 'raw' or 'balanced' from the run's λ reading id ('lambda/balanced-per-matrix-sum-ratio/v1'); raw when absent. */
export function lambdaModeOf(readings: Record<string, string> | undefined): string {
  return (readings?.lambda ?? 'lambda/raw/v1').split('/')[1]!.split('-')[0]!;
}

/** Σ kept ranks of the factored attention and MLP projections over the emulator's layers ('—' if not recorded). */
export function rankSplit(layers: EmulatorRecord['layers']): string {
  if (!Array.isArray(layers)) return '—';
  let attn = 0,
    mlp = 0;
  for (const l of layers)
    for (const [proj, r] of Object.entries(l.ranks ?? {})) {
      if (ATTN.has(proj)) attn += r;
      else mlp += r;
    }
  return attn + mlp === 0 ? '—' : `${attn} / ${mlp}`;
}

export const LAMBDA_SWEEP_HEAD = [
  '| λ mode | λ | support loss full → emulator | attn / MLP rank | Emulator ZS acc / acc_norm | hides (acc_norm) | Emulator FT acc / acc_norm | Plug-in acc / acc_norm | Δ acc | Δ acc_norm |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];

export function lambdaSweepTable(reports: readonly OTReport[]): string {
  const rows = reports.map((r) => {
    const e = (r.compressRecord?.emulator ?? {}) as EmulatorRecord;
    const c = claimsOf(r);
    const claim = (id: string, metric: string): string => {
      const x = c.find((y) => y.id === id && y.metric === metric);
      return x ? formatClaim(x) : '—';
    };
    const both = (k: 'emulatorZS' | 'emulatorFT' | 'plugIn'): string => `${pct(r.details[k].acc)} / ${pct(r.details[k].accNorm)}`;
    const sl = e.supportLoss;
    const lambda = e.lambdaAttn === undefined ? '—' : e.lambdaAttn === e.lambdaMlp ? `${e.lambdaAttn}` : `${e.lambdaAttn} / ${e.lambdaMlp}`;
    return (
      `| ${lambdaModeOf(e.readings)} | ${lambda} | ${sl ? `${sl.full.toFixed(3)} → ${sl.emulator.toFixed(3)}` : '—'} | ${rankSplit(e.layers)} | ` +
      `${both('emulatorZS')} | ${claim('emulatorHides', 'acc_norm')} | ${both('emulatorFT')} | ${both('plugIn')} | ` +
      `${claim('deltaPositive', 'acc')} | ${claim('deltaPositive', 'acc_norm')} |`
    );
  });
  return [...LAMBDA_SWEEP_HEAD, ...rows].join('\n');
}
