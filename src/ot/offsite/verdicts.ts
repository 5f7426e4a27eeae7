/**
 * The protocol's claims and their verdicts, on both sides of offsite tuning:
 *
 *   utility (data owner)    Δ = Plug-in − Emulator FT > 0; Plug-in beats Full ZS
 *   privacy (model owner)   the emulator hides the model: Full ZS − Emulator ZS > 0
 *
 * A claim is "yes" only when its difference is larger than two paired standard errors (per-item
 * differences over the same test items, metrics.pairedDifference), "no" when the difference is at most
 * −2 standard errors (or exactly zero with zero spread), and "inside noise" otherwise. Without per-item
 * results (loss metrics keep no per-item numbers) nothing can be said: "untested".
 * Every difference is signed so that larger = the claim holds more (for loss metrics, lower loss is better).
 */
import type { EvalMetrics } from './evaluate';
import { pairedDifference } from './metrics';

/** How many paired standard errors a difference must clear. */
export const VERDICT_STDERRS = 2;

export type Verdict = 'yes' | 'no' | 'inside noise' | 'untested';

export interface Claim {
  /** Stable id: 'deltaPositive' | 'plugInBeatsFullZS' | 'emulatorHides'. */
  id: ClaimId;
  /** Which side of offsite tuning the claim speaks for. */
  side: 'utility' | 'privacy';
  /** The claim in words, e.g. "Plug-in − Emulator FT > 0". */
  text: string;
  /** 'acc', 'acc_norm' or 'loss'. */
  metric: 'acc' | 'acc_norm' | 'loss';
  /** The difference (larger = the claim holds more). */
  value: number;
  /** Paired standard error of `value` over the test items; null without per-item results. */
  stderr: number | null;
  verdict: Verdict;
}

export type ClaimId = 'deltaPositive' | 'plugInBeatsFullZS' | 'emulatorHides';

/** The verdict of one signed difference against its paired standard error. */
export function judge(value: number, stderr: number | null): Verdict {
  if (stderr === null || !Number.isFinite(stderr) || !Number.isFinite(value)) return 'untested';
  if (value - VERDICT_STDERRS * stderr > 0) return 'yes';
  if (value + VERDICT_STDERRS * stderr <= 0) return 'no';
  return 'inside noise';
}

const CLAIMS: { id: ClaimId; side: Claim['side']; text: string; better: keyof Phases; worse: keyof Phases }[] = [
  { id: 'deltaPositive', side: 'utility', text: 'Plug-in − Emulator FT > 0', better: 'plugIn', worse: 'emulatorFT' },
  { id: 'plugInBeatsFullZS', side: 'utility', text: 'Plug-in − Full ZS > 0', better: 'plugIn', worse: 'fullZS' },
  { id: 'emulatorHides', side: 'privacy', text: 'Full ZS − Emulator ZS > 0', better: 'fullZS', worse: 'emulatorZS' },
];

export interface Phases {
  fullZS: EvalMetrics;
  emulatorZS: EvalMetrics;
  emulatorFT: EvalMetrics;
  plugIn: EvalMetrics;
}

/**
 * Every claim on every metric the evaluations carry: acc and acc_norm for multiple choice (paired over the
 * items' '0'/'1' strings), loss otherwise (untested: no per-item losses).
 */
export function protocolClaims(p: Phases): Claim[] {
  const out: Claim[] = [];
  const mc = p.fullZS.acc !== undefined;
  for (const c of CLAIMS) {
    const a = p[c.better],
      b = p[c.worse];
    if (mc) {
      for (const metric of ['acc', 'acc_norm'] as const) {
        const va = metric === 'acc' ? a.acc : a.accNorm,
          vb = metric === 'acc' ? b.acc : b.accNorm;
        const sa = metric === 'acc' ? a.correct : a.correctNorm,
          sb = metric === 'acc' ? b.correct : b.correctNorm;
        if (va === undefined || vb === undefined) continue;
        // pairedDifference(x, y) is the mean of y − x: the worse phase first.
        const stderr = sa !== undefined && sb !== undefined ? pairedDifference(sb, sa).stderr : null;
        const value = va - vb;
        out.push({ id: c.id, side: c.side, text: c.text, metric, value, stderr, verdict: judge(value, stderr) });
      }
    } else if (a.loss !== undefined && b.loss !== undefined) {
      const value = b.loss - a.loss; // lower loss is better
      out.push({ id: c.id, side: c.side, text: c.text, metric: 'loss', value, stderr: null, verdict: 'untested' });
    }
  }
  return out;
}

/** The claim of `id` on the report's headline metric (acc for multiple choice, else loss). */
export function headlineClaim(claims: readonly Claim[], id: ClaimId): Claim | undefined {
  return claims.find((c) => c.id === id && c.metric !== 'acc_norm');
}

/** "+1.0 ± 0.7: inside noise" in percentage points (acc) or nats (loss). */
export function formatClaim(c: Claim): string {
  const pct = c.metric !== 'loss';
  const f = (v: number): string => (pct ? (100 * v).toFixed(1) : v.toFixed(4));
  const v = (c.value > 0 ? '+' : '') + f(c.value);
  return `${v}${c.stderr !== null && Number.isFinite(c.stderr) ? ` ± ${f(c.stderr)}` : ''}: ${c.verdict}`;
}

/** The headline verdicts of a report, for a run record (runs table, CSV); undefined without claims. */
export function runVerdicts(r: { claims?: readonly Claim[] }): Record<ClaimId, Verdict> | undefined {
  if (!r.claims) return undefined;
  const v = (id: ClaimId): Verdict => headlineClaim(r.claims!, id)?.verdict ?? 'untested';
  return { deltaPositive: v('deltaPositive'), plugInBeatsFullZS: v('plugInBeatsFullZS'), emulatorHides: v('emulatorHides') };
}
