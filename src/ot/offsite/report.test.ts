import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from './evaluate';
import type { OTReport } from './protocol';
import { pairedDifference } from './metrics';
import { markdownTable } from './report';

function mc(n: number, correct: number, correctNorm: number): EvalMetrics {
  const p = correct / n,
    q = correctNorm / n;
  // Items 0..correct-1 right: two evaluations with nested right-sets differ on exactly |c1 − c2| items.
  const items = (k: number): string => '1'.repeat(k) + '0'.repeat(n - k);
  return {
    kind: 'mc',
    file: 'test.jsonl',
    n,
    acc: p,
    accStderr: Math.sqrt((p * (1 - p)) / (n - 1)),
    accNorm: q,
    accNormStderr: Math.sqrt((q * (1 - q)) / (n - 1)),
    correct: items(correct),
    correctNorm: items(correctNorm),
    seconds: 1,
  } as EvalMetrics;
}

function report(method: OTReport['method'], fe: [number, number], pi: [number, number], seed = 0): OTReport {
  const d = { fullZS: mc(200, 100, 180), emulatorZS: mc(200, 98, 170), emulatorFT: mc(200, ...fe), plugIn: mc(200, ...pi), fullFT: null };
  return {
    format: 'gradot-ot-report',
    version: 1,
    model: 'm',
    task: 't',
    taskKind: 'mc',
    method,
    keep: 0.3,
    split: { bottom: 1, top: 1 },
    metric: 'acc',
    higherIsBetter: true,
    fullZS: d.fullZS.acc!,
    emulatorZS: d.emulatorZS.acc!,
    emulatorFT: d.emulatorFT.acc!,
    plugIn: d.plugIn.acc!,
    fullFT: null,
    delta: d.plugIn.acc! - d.emulatorFT.acc!,
    deltaStderr: pairedDifference(d.emulatorFT.correct!, d.plugIn.correct!).stderr,
    deltaDefinition: 'Plug-in − Emulator FT (acc)',
    compressionRatio: 3,
    details: d,
    tuneOptions: { seed },
  } as unknown as OTReport;
}

describe('markdownTable', () => {
  it('puts acc and acc_norm of several methods side by side, with signed, paired Δ ± and the worst standard error', () => {
    const md = markdownTable([report('gradot', [190, 191], [192, 193]), report('drop', [180, 181], [170, 171])]);
    // 2 of 200 items differ (both gained): d has mean 0.01, sd sqrt((2·0.99² + 198·0.01²)/199) → stderr 0.70 points.
    const se2 = ((100 * Math.sqrt((2 * 0.99 ** 2 + 198 * 0.01 ** 2) / 199)) / Math.sqrt(200)).toFixed(1);
    expect(se2).toBe('0.7');
    expect(md).toContain(`| gradot | 0.3 | 3.00× | 50.0 | 49.0 | 95.0 | 96.0 | — | +1.0 ± ${se2} |`);
    expect(md).toContain('| drop | 0.3 | 3.00× | 50.0 | 49.0 | 90.0 | 85.0 | — | -5.0 ± 1.5 |');
    // acc_norm rows: Full ZS 90.0, Emulator ZS 85.0, then the FT/plug-in acc_norm and their paired difference.
    expect(md).toContain(`| gradot | 0.3 | 90.0 | 85.0 | 95.5 | 96.5 | — | +1.0 ± ${se2} |`);
    expect(md).toContain('| drop | 0.3 | 90.0 | 85.0 | 90.5 | 85.5 | — | -5.0 ± 1.5 |');
    expect(md).toContain('paired standard error');
    // Largest binomial error is the 50% accuracy: sqrt(.25/199) = 3.54 points.
    expect(md).toContain('n = 200 test items');
    expect(md).toContain('at most 3.5 points');
  });

  it('labels rows by seed and summarises each method over its seeds (mean ± sample sd, Δ > 0 count)', () => {
    // gradot Plug-in 96/95/94 over Emulator FT 95/95/95 → Δ +1, 0, −1 (mean 0, sd 1); drop one seed.
    const md = markdownTable([
      report('gradot', [190, 190], [192, 192], 0),
      report('gradot', [190, 190], [190, 190], 1),
      report('gradot', [190, 190], [188, 188], 2),
      report('drop', [180, 180], [170, 170], 0),
    ]);
    expect(md).toContain('| gradot s1 | 0.3 | 3.00× | 50.0 | 49.0 | 95.0 | 95.0 | — | 0.0 ± 0.0 |');
    expect(md).toContain('| gradot | 0, 1, 2 | 95.0 ± 0.0 | 95.0 ± 1.0 | 0.0 ± 1.0 | 1 of 3 |');
    expect(md).toContain('| drop | 0 | 90.0 | 85.0 | -5.0 | 0 of 1 |');
    expect(md).toContain('| drop s0 | 0.3 | 90.0 | 85.0 |');
  });

  it('puts the privacy side beside Δ and gives verdicts beyond two paired standard errors (+1.0 ± 0.7 is not yes)', () => {
    const md = markdownTable([report('gradot', [190, 191], [192, 193]), report('drop', [180, 181], [170, 171])]);
    // hides = Full ZS − Emulator ZS: acc 100 vs 98 correct → 2 items differ, +1.0 ± 0.7 (as Δ above);
    // acc_norm 180 vs 170 → 10 items: sd² = (10·0.95² + 190·0.05²)/199, stderr = 1.5 points → +5.0 > 3.1: yes.
    expect(md).toContain('| gradot | 0.3 | 3.00× | 50.0 | 49.0 | 95.0 | 96.0 | — | +1.0 ± 0.7 | +1.0 ± 0.7 |');
    expect(md).toContain('| gradot | 0.3 | 90.0 | 85.0 | 95.5 | 96.5 | — | +1.0 ± 0.7 | +5.0 ± 1.5 |');
    expect(((100 * Math.sqrt((10 * 0.95 ** 2 + 190 * 0.05 ** 2) / 199)) / Math.sqrt(200)).toFixed(1)).toBe('1.5');
    expect(md).toContain('| gradot | utility: Δ > 0 (Plug-in − Emulator FT) | +1.0 ± 0.7: inside noise | +1.0 ± 0.7: inside noise |');
    expect(md).toContain('| gradot | privacy: emulator hides (Full ZS − Emulator ZS > 0) | +1.0 ± 0.7: inside noise | +5.0 ± 1.5: yes |');
    expect(md).toContain('| drop | utility: Δ > 0 (Plug-in − Emulator FT) | -5.0 ± 1.5: no | -5.0 ± 1.5: no |');
    // Plug-in 96.0 vs Full ZS 50.0: 92 items gained, none lost → yes.
    expect(md).toContain('| gradot | utility: Plug-in > Full ZS | +46.0 ± 3.5: yes |');
  });

  it('over seeds: how many seeds hold each claim beyond two standard errors, and hides mean ± sd', () => {
    const md = markdownTable([
      report('gradot', [190, 190], [192, 192], 0),
      report('gradot', [190, 190], [190, 190], 1),
      report('gradot', [190, 190], [188, 188], 2),
      report('drop', [180, 180], [170, 170], 0),
    ]);
    // Δ +1.0 ± 0.7 (inside noise), 0.0 ± 0.0 (no), −1.0 ± 0.7 (inside noise): Δ > 0 in 1 seed, beyond 2 SE in none.
    expect(md).toContain('| gradot | 0, 1, 2 | 95.0 ± 0.0 | 95.0 ± 1.0 | 0.0 ± 1.0 | 1 of 3 | 0 of 3 | +1.0 ± 0.0 | 0 of 3 |');
    expect(md).toContain('| drop | 0 | 90.0 | 85.0 | -5.0 | 0 of 1 | 0 of 1 | +1.0 | 0 of 1 |');
    expect(md).toContain(
      '| gradot | privacy: emulator hides (Full ZS − Emulator ZS > 0) | +1.0 ± 0.0, yes in 0 of 3 | +5.0 ± 0.0, yes in 3 of 3 |',
    );
    expect(md).toContain('| gradot | utility: Δ > 0 (Plug-in − Emulator FT) | 0.0 ± 1.0, yes in 0 of 3 |');
  });
});
