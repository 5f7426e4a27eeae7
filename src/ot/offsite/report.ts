/**
 * The five-number OT report as Markdown: one table row per run (method/keep), so runs of `gradot`, `drop`,
 * `svd` and `prune` at one --keep read side by side, as in the OT/GradOT papers' tables. Both sides of
 * offsite tuning stand in every row: the data owner's (Plug-in, Δ) and the model owner's (hides = Full ZS −
 * Emulator ZS), each difference with its paired standard error, and the claims' verdicts (verdicts.ts).
 */
import { pairedDifference } from './metrics';
import type { OTReport } from './protocol';
import { formatClaim, protocolClaims, VERDICT_STDERRS, type Claim, type ClaimId } from './verdicts';

function fmt(v: number | null, metric: 'acc' | 'loss'): string {
  if (v === null || !Number.isFinite(v)) return '—';
  return metric === 'acc' ? (100 * v).toFixed(1) : v.toFixed(4);
}

function fmtDelta(v: number, metric: 'acc' | 'loss', stderr?: number | null): string {
  const s = metric === 'acc' ? (100 * v).toFixed(1) : v.toFixed(4);
  const pm =
    stderr !== undefined && stderr !== null && Number.isFinite(stderr)
      ? ` ± ${metric === 'acc' ? (100 * stderr).toFixed(1) : stderr.toFixed(4)}`
      : '';
  return (v > 0 ? `+${s}` : s) + pm;
}

/** Markdown table of one or more reports (same task expected; the header says which metric). */
export function markdownTable(reports: readonly OTReport[]): string {
  if (reports.length === 0) return '';
  const r0 = reports[0]!;
  const unit = r0.metric === 'acc' ? 'acc, %' : 'answer-token loss, lower is better';
  const head = `| method | keep | ratio | Full ZS | Emulator ZS | Emulator FT | Plug-in | Full FT | Δ | hides |`;
  const sep = `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|`;
  const manySeeds = new Set(reports.map(seedOf)).size > 1;
  const rows = reports.map(
    (r) =>
      `| ${rowLabel(r, manySeeds)} | ${r.keep} | ${Number.isFinite(r.compressionRatio) ? r.compressionRatio.toFixed(2) + '×' : '—'} | ${fmt(r.fullZS, r.metric)} | ${fmt(r.emulatorZS, r.metric)} | ${fmt(r.emulatorFT, r.metric)} | ${fmt(r.plugIn, r.metric)} | ${fmt(r.fullFT, r.metric)} | ${fmtDelta(r.delta, r.metric, r.deltaStderr)} | ${hidesCell(r)} |`,
  );
  const hidesDef = r0.metric === 'acc' ? 'Full ZS − Emulator ZS' : 'Emulator ZS loss − Full ZS loss';
  const out = [
    `**${r0.model}** on **${r0.task}** (${unit}; adapters ${r0.split.bottom}:${r0.split.top}; Δ = ${r0.deltaDefinition}; hides = ${hidesDef}, the model owner's side)`,
    '',
    head,
    sep,
    ...rows,
  ];
  if (manySeeds) out.push('', ...seedSummary(reports));
  if (r0.metric === 'acc') out.push('', ...accNormTable(reports), '', uncertaintyNote(reports));
  const ppl = perplexityLines(reports);
  if (ppl.length) out.push('', ...ppl);
  out.push('', ...verdictTable(reports, manySeeds));
  return out.join('\n');
}

/** The report's claims, recomputed from its evaluations when it predates them (same numbers). */
export function claimsOf(r: OTReport): Claim[] {
  if (r.claims) return r.claims;
  const d = r.details;
  return d?.fullZS && d.emulatorZS && d.emulatorFT && d.plugIn ? protocolClaims(d) : [];
}

function claimOf(r: OTReport, id: ClaimId, metric: Claim['metric']): Claim | undefined {
  return claimsOf(r).find((c) => c.id === id && c.metric === metric);
}

/** Full ZS − Emulator ZS (signed, paired ±), from the report or its evaluations. */
function hidesCell(r: OTReport, metric: Claim['metric'] = r.metric): string {
  const c = claimOf(r, 'emulatorHides', metric);
  if (c) return fmtDelta(c.value, r.metric, c.stderr);
  if (r.privacyGap !== undefined) return fmtDelta(r.privacyGap, r.metric, r.privacyGapStderr);
  return '—';
}

function perplexityLines(reports: readonly OTReport[]): string[] {
  const rows = reports
    .filter((r) => r.perplexityGap)
    .map(
      (r) =>
        `| ${methodName(r)} | ${r.keep} | ${r.perplexityGap!.full.toFixed(2)} | ${r.perplexityGap!.emulator.toFixed(2)} | ${(r.perplexityGap!.emulator / r.perplexityGap!.full).toFixed(2)}× |`,
    );
  return rows.length
    ? [
        'Zero-shot perplexity (the privacy side; higher on the emulator = it hides more):',
        '',
        '| method | keep | full | emulator | ratio |',
        '|---|---:|---:|---:|---:|',
        ...rows,
      ]
    : [];
}

const CLAIM_ORDER: { id: ClaimId; label: string }[] = [
  { id: 'emulatorHides', label: 'privacy: emulator hides (Full ZS − Emulator ZS > 0)' },
  { id: 'deltaPositive', label: 'utility: Δ > 0 (Plug-in − Emulator FT)' },
  { id: 'plugInBeatsFullZS', label: 'utility: Plug-in > Full ZS' },
];

/**
 * Verdict per run and claim: "yes" only beyond two paired standard errors over the same test items. With
 * several seeds, per method: mean ± sample sd of the difference over seeds and in how many seeds it holds.
 */
export function verdictTable(reports: readonly OTReport[], manySeeds: boolean): string[] {
  const metrics = [...new Set(reports.flatMap((r) => claimsOf(r).map((c) => c.metric)))];
  if (metrics.length === 0) return [];
  const head = `| run | claim | ${metrics.join(' | ')} |`;
  const sep = `|---|---|${metrics.map(() => '---:').join('|')}|`;
  const rows: string[] = [];
  for (const r of reports)
    for (const { id, label } of CLAIM_ORDER) {
      const cells = metrics.map((m) => {
        const c = claimOf(r, id, m);
        return c ? formatClaim(c) : '—';
      });
      rows.push(`| ${rowLabel(r, manySeeds)} | ${label} | ${cells.join(' | ')} |`);
    }
  const out = [
    `Verdicts ("yes" only when the difference exceeds ${VERDICT_STDERRS} paired standard errors over the same test items; "no" when it is at most −${VERDICT_STDERRS}):`,
    '',
    head,
    sep,
    ...rows,
  ];
  if (manySeeds) {
    const byMethod = new Map<string, OTReport[]>();
    for (const r of reports) byMethod.set(methodName(r), [...(byMethod.get(methodName(r)) ?? []), r]);
    const srows: string[] = [];
    for (const [method, rs] of byMethod)
      for (const { id, label } of CLAIM_ORDER) {
        const cells = metrics.map((m) => {
          const cs = rs.map((r) => claimOf(r, id, m)).filter((c): c is Claim => c !== undefined);
          if (cs.length === 0) return '—';
          const { mean, sd } = meanSd(cs.map((c) => c.value));
          const unit = m === 'loss' ? 'loss' : 'acc';
          const spread = Number.isFinite(sd) ? ` ± ${fmt(sd, unit)}` : '';
          const tested = cs.filter((c) => c.verdict !== 'untested').length;
          return `${fmtDelta(mean, unit)}${spread}, ${tested > 0 ? `yes in ${cs.filter((c) => c.verdict === 'yes').length} of ${cs.length}` : 'untested'}`;
        });
        srows.push(`| ${method} | ${label} | ${cells.join(' | ')} |`);
      }
    out.push(
      '',
      'Over seeds (mean ± sample sd of the difference; seeds where it holds beyond two paired standard errors):',
      '',
      `| method | claim | ${metrics.join(' | ')} |`,
      sep,
      ...srows,
    );
  }
  return out;
}

const seedOf = (r: OTReport): number => Number(r.tuneOptions?.seed ?? 0);
/** A table row's name: the method, plus the seed when the table holds several seeds. */
const rowLabel = (r: OTReport, manySeeds: boolean): string => (manySeeds ? `${methodName(r)} s${seedOf(r)}` : methodName(r));
/** The name a run was asked for: a method variant (variants.ts, e.g. gradot-paper) or the method. */
export const methodName = (r: Pick<OTReport, 'method' | 'variant'>): string => r.variant ?? r.method;

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
  for (const r of reports) byMethod.set(methodName(r), [...(byMethod.get(methodName(r)) ?? []), r]);
  const metric = reports[0]!.metric;
  const cell = (xs: number[], signed = false): string => {
    const { mean, sd } = meanSd(xs);
    const m = signed ? fmtDelta(mean, metric) : fmt(mean, metric);
    return Number.isFinite(sd) ? `${m} ± ${fmt(sd, metric)}` : m;
  };
  const yes = (rs: OTReport[], id: ClaimId): string =>
    `${rs.filter((r) => claimOf(r, id, metric)?.verdict === 'yes').length} of ${rs.length}`;
  const hides = (r: OTReport): number => claimOf(r, 'emulatorHides', metric)?.value ?? r.privacyGap ?? NaN;
  const rows = [...byMethod].map(
    ([method, rs]) =>
      `| ${method} | ${rs.map(seedOf).join(', ')} | ${cell(rs.map((r) => r.emulatorFT))} | ${cell(rs.map((r) => r.plugIn))} | ${cell(
        rs.map((r) => r.delta),
        true,
      )} | ${rs.filter((r) => r.delta > 0).length} of ${rs.length} | ${yes(rs, 'deltaPositive')} | ${cell(rs.map(hides), true)} | ${yes(rs, 'emulatorHides')} |`,
  );
  return [
    'Over seeds (mean ± sample sd; "> 2 SE": seeds where the difference exceeds two paired standard errors):',
    '',
    '| method | seeds | Emulator FT | Plug-in | Δ | Δ > 0 | Δ > 2 SE | hides | hides > 2 SE |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ];
}

type Phase = keyof OTReport['details'];
const PHASES: readonly Phase[] = ['fullZS', 'emulatorZS', 'emulatorFT', 'plugIn', 'fullFT'];

/** The same runs by acc_norm: a small model's plain acc can sit on a constant-label prior while acc_norm moves. */
function accNormTable(reports: readonly OTReport[]): string[] {
  const manySeeds = new Set(reports.map(seedOf)).size > 1;
  const an = (r: OTReport, k: Phase): number | null => r.details[k]?.accNorm ?? null;
  const rows = reports.map((r) => {
    const fe = an(r, 'emulatorFT'),
      pi = an(r, 'plugIn');
    const a = r.details.emulatorFT?.correctNorm,
      b = r.details.plugIn?.correctNorm;
    const se = a !== undefined && b !== undefined ? pairedDifference(a, b).stderr : null;
    const d = fe !== null && pi !== null ? fmtDelta(pi - fe, 'acc', se) : '—';
    return `| ${rowLabel(r, manySeeds)} | ${r.keep} | ${PHASES.map((k) => fmt(an(r, k), 'acc')).join(' | ')} | ${d} | ${hidesCell(r, 'acc_norm')} |`;
  });
  return [
    'acc_norm, %:',
    '',
    '| method | keep | Full ZS | Emulator ZS | Emulator FT | Plug-in | Full FT | Δ | hides |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ];
}

/** How far apart two numbers must be to mean anything: the largest binomial standard error among the runs. */
function uncertaintyNote(reports: readonly OTReport[]): string {
  let n = 0,
    se = 0;
  for (const r of reports)
    for (const k of PHASES) {
      const m = r.details[k];
      if (!m) continue;
      n = Math.max(n, m.n);
      if (m.accStderr !== undefined) se = Math.max(se, m.accStderr);
    }
  const paired = reports.some((r) => r.deltaStderr !== undefined && r.deltaStderr !== null);
  return (
    `n = ${n} test items per evaluation; one accuracy's binomial standard error is at most ${(100 * se).toFixed(1)} points.` +
    (paired
      ? ' Δ ± is the paired standard error over the same items (per-item Plug-in − Emulator FT), which is what Δ should be read against; hides ± likewise (per-item Full ZS − Emulator ZS).'
      : '')
  );
}

/** A fuller Markdown record of one run (table + tuning and timing details). */
export function markdownReport(r: OTReport): string {
  const lines = [markdownTable([r]), ''];
  lines.push(
    `- parameters: full ${r.params.full}, emulator ${r.params.emulator} (middle ${r.params.middleFull} → ${r.params.middleEmulator}), trainable adapter ${r.params.adapters}`,
    `- tuning: ${r.tune.method}, ${r.tune.steps} steps (${r.tune.epochs.toFixed(2)} epochs), best step ${r.tune.bestStep ?? '—'} (val loss ${r.tune.bestValLoss?.toFixed(4) ?? '—'}), weights from ${r.tune.weightsFrom}, ${r.tune.tokensPerSec.toFixed(0)} tokens/s on ${r.backend}`,
    `- seconds: ${Object.entries(r.seconds)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', ')}`,
    `- verdicts (${r.metric}, beyond ${VERDICT_STDERRS} paired standard errors): ${CLAIM_ORDER.map(({ id, label }) => {
      const c = claimOf(r, id, r.metric);
      return `${label}: ${c ? formatClaim(c) : 'untested'}`;
    }).join('; ')}`,
  );
  return lines.join('\n') + '\n';
}
