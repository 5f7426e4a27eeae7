/**
 * Summarises a λ sweep of `gradot ot` runs (one report folder per λ) as the Markdown table of
 * docs/ot-compression.md ("λ"): per run, λ and its reading, the support loss of the full model and of the
 * emulator, Emulator ZS (acc, acc_norm), the privacy side (Full ZS − Emulator ZS on acc_norm, paired ±),
 * Emulator FT, Plug-in and Δ (acc and acc_norm, paired ±), with the verdicts.
 *
 *   for l in 0 0.5 1 2 4 8; do npx gradot ot public/models/demo --method gradot --keep 0.3 --adapters 1:1 ... \
 *       --lambda-mode balanced --lambda-attn $l --lambda-mlp $l --out /tmp/sweep/balanced-$l; done
 *   npx tsx src/ot/experiments/lambda-sweep.ts /tmp/sweep/balanced-0 /tmp/sweep/balanced-0.5 ...
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OTReport } from '../offsite/protocol';
import { claimsOf } from '../offsite/report';
import { formatClaim } from '../offsite/verdicts';

interface EmulatorRecord {
  lambdaAttn?: number;
  lambdaMlp?: number;
  readings?: Record<string, string>;
  supportLoss?: { full: number; emulator: number };
}

const pct = (v: number | undefined): string => (v === undefined ? '—' : (100 * v).toFixed(1));

const rows: string[] = [];
for (const dir of process.argv.slice(2)) {
  const reports = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as OTReport[];
  for (const r of reports) {
    const e = (r.compressRecord?.emulator ?? {}) as EmulatorRecord;
    const c = claimsOf(r);
    const claim = (id: string, metric: string) => c.find((x) => x.id === id && x.metric === metric);
    const hides = claim('emulatorHides', 'acc_norm');
    const sl = e.supportLoss;
    const both = (k: 'emulatorZS' | 'emulatorFT' | 'plugIn') => `${pct(r.details[k].acc)} / ${pct(r.details[k].accNorm)}`;
    const d = (m: string) => { const x = claim('deltaPositive', m); return x ? formatClaim(x) : '—'; };
    const mode = (e.readings?.lambda ?? 'lambda/raw').split('/')[1]!.split('-')[0];
    rows.push(`| ${mode} | ${e.lambdaAttn ?? '—'} | ${sl ? `${sl.full.toFixed(3)} → ${sl.emulator.toFixed(3)}` : '—'} | ` +
      `${both('emulatorZS')} | ${hides ? formatClaim(hides) : '—'} | ${both('emulatorFT')} | ${both('plugIn')} | ${d('acc')} | ${d('acc_norm')} |`);
  }
}
console.log([
  '| λ mode | λ | support loss full → emulator | Emulator ZS acc / acc_norm | hides (acc_norm) | Emulator FT acc / acc_norm | Plug-in acc / acc_norm | Δ acc | Δ acc_norm |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows,
].join('\n'));
