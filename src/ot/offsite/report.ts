/**
 * The five-number OT report as Markdown: one table row per run (method/keep), so runs of `gradot`, `drop`,
 * `svd` and `prune` at one --keep read side by side, as in the OT/GradOT papers' tables.
 */
import { pairedDifference } from './metrics';
import type { OTReport } from './protocol';

function fmt(v: number | null, metric: 'acc' | 'loss'): string {
  if (v === null || !Number.isFinite(v)) return '—';
  return metric === 'acc' ? (100 * v).toFixed(1) : v.toFixed(4);
}

function fmtDelta(v: number, metric: 'acc' | 'loss', stderr?: number | null): string {
  const s = metric === 'acc' ? (100 * v).toFixed(1) : v.toFixed(4);
  const pm = stderr !== undefined && stderr !== null && Number.isFinite(stderr) ? ` ± ${metric === 'acc' ? (100 * stderr).toFixed(1) : stderr.toFixed(4)}` : '';
  return (v > 0 ? `+${s}` : s) + pm;
}

/** Markdown table of one or more reports (same task expected; the header says which metric). */
export function markdownTable(reports: readonly OTReport[]): string {
  if (reports.length === 0) return '';
  const r0 = reports[0]!;
  const unit = r0.metric === 'acc' ? 'acc, %' : 'answer-token loss, lower is better';
  const head = `| method | keep | ratio | Full ZS | Emulator ZS | Emulator FT | Plug-in | Full FT | Δ |`;
  const sep = `|---|---:|---:|---:|---:|---:|---:|---:|---:|`;
  const manySeeds = new Set(reports.map(seedOf)).size > 1;
  const rows = reports.map((r) =>
    `| ${rowLabel(r, manySeeds)} | ${r.keep} | ${Number.isFinite(r.compressionRatio) ? r.compressionRatio.toFixed(2) + '×' : '—'} | ${fmt(r.fullZS, r.metric)} | ${fmt(r.emulatorZS, r.metric)} | ${fmt(r.emulatorFT, r.metric)} | ${fmt(r.plugIn, r.metric)} | ${fmt(r.fullFT, r.metric)} | ${fmtDelta(r.delta, r.metric, r.deltaStderr)} |`);
  const out = [
    `**${r0.model}** on **${r0.task}** (${unit}; adapters ${r0.split.bottom}:${r0.split.top}; Δ = ${r0.deltaDefinition})`,
    '',
    head,
    sep,
    ...rows,
  ];
  if (manySeeds) out.push('', ...seedSummary(reports));
  if (r0.metric === 'acc') out.push('', ...accNormTable(reports), '', uncertaintyNote(reports));
  return out.join('\n');
}

const seedOf = (r: OTReport): number => Number(r.tuneOptions?.seed ?? 0);
/** A table row's name: the method, plus the seed when the table holds several seeds. */
const rowLabel = (r: OTReport, manySeeds: boolean): string => (manySeeds ? `${r.method} s${seedOf(r)}` : r.method);

function meanSd(xs: readonly number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, sd };
}

/**
 * Per method over its seeds: mean ± sample sd of Emulator FT, Plug-in and Δ, and in how many seeds Δ > 0 —
 * training randomness, which the per-run paired ± (test-sample noise) does not cover.
 */
export function seedSummary(reports: readonly OTReport[]): string[] {
  const byMethod = new Map<string, OTReport[]>();
  for (const r of reports) byMethod.set(r.method, [...(byMethod.get(r.method) ?? []), r]);
  const metric = reports[0]!.metric;
  const cell = (xs: number[], signed = false): string => {
    const { mean, sd } = meanSd(xs);
    const m = signed ? fmtDelta(mean, metric) : fmt(mean, metric);
    return Number.isFinite(sd) ? `${m} ± ${fmt(sd, metric)}` : m;
  };
  const rows = [...byMethod].map(([method, rs]) =>
    `| ${method} | ${rs.map(seedOf).join(', ')} | ${cell(rs.map((r) => r.emulatorFT))} | ${cell(rs.map((r) => r.plugIn))} | ${cell(rs.map((r) => r.delta), true)} | ${rs.filter((r) => r.delta > 0).length} of ${rs.length} |`);
  return ['Over seeds (mean ± sample sd):', '', '| method | seeds | Emulator FT | Plug-in | Δ | Δ > 0 |', '|---|---|---:|---:|---:|---:|', ...rows];
}

type Phase = keyof OTReport['details'];
const PHASES: readonly Phase[] = ['fullZS', 'emulatorZS', 'emulatorFT', 'plugIn', 'fullFT'];

/** The same runs by acc_norm: a small model's plain acc can sit on a constant-label prior while acc_norm moves. */
function accNormTable(reports: readonly OTReport[]): string[] {
  const manySeeds = new Set(reports.map(seedOf)).size > 1;
  const an = (r: OTReport, k: Phase): number | null => r.details[k]?.accNorm ?? null;
  const rows = reports.map((r) => {
    const fe = an(r, 'emulatorFT'), pi = an(r, 'plugIn');
    const a = r.details.emulatorFT?.correctNorm, b = r.details.plugIn?.correctNorm;
    const se = a !== undefined && b !== undefined ? pairedDifference(a, b).stderr : null;
    const d = fe !== null && pi !== null ? fmtDelta(pi - fe, 'acc', se) : '—';
    return `| ${rowLabel(r, manySeeds)} | ${r.keep} | ${PHASES.map((k) => fmt(an(r, k), 'acc')).join(' | ')} | ${d} |`;
  });
  return ['acc_norm, %:', '', '| method | keep | Full ZS | Emulator ZS | Emulator FT | Plug-in | Full FT | Δ |',
    '|---|---:|---:|---:|---:|---:|---:|---:|', ...rows];
}

/** How far apart two numbers must be to mean anything: the largest binomial standard error among the runs. */
function uncertaintyNote(reports: readonly OTReport[]): string {
  let n = 0, se = 0;
  for (const r of reports) for (const k of PHASES) {
    const m = r.details[k];
    if (!m) continue;
    n = Math.max(n, m.n);
    if (m.accStderr !== undefined) se = Math.max(se, m.accStderr);
  }
  const paired = reports.some((r) => r.deltaStderr !== undefined && r.deltaStderr !== null);
  return `n = ${n} test items per evaluation; one accuracy's binomial standard error is at most ${(100 * se).toFixed(1)} points.` +
    (paired ? ' Δ ± is the paired standard error over the same items (per-item Plug-in − Emulator FT), which is what Δ should be read against.' : '');
}

/** A fuller Markdown record of one run (table + tuning and timing details). */
export function markdownReport(r: OTReport): string {
  const lines = [markdownTable([r]), ''];
  lines.push(
    `- parameters: full ${r.params.full}, emulator ${r.params.emulator} (middle ${r.params.middleFull} → ${r.params.middleEmulator}), trainable adapter ${r.params.adapters}`,
    `- tuning: ${r.tune.method}, ${r.tune.steps} steps (${r.tune.epochs.toFixed(2)} epochs), best step ${r.tune.bestStep ?? '—'} (val loss ${r.tune.bestValLoss?.toFixed(4) ?? '—'}), weights from ${r.tune.weightsFrom}, ${r.tune.tokensPerSec.toFixed(0)} tokens/s on ${r.backend}`,
    `- seconds: ${Object.entries(r.seconds).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`,
    `- checks: Plug-in beats Full ZS: ${r.checks.plugInBeatsFullZS ? 'yes' : 'no'}; Δ > 0: ${r.checks.deltaPositive ? 'yes' : 'no'}`,
  );
  return lines.join('\n') + '\n';
}
