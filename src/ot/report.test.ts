import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from './evaluate';
import type { OTReport } from './protocol';
import { markdownTable } from './report';

function mc(n: number, correct: number, correctNorm: number): EvalMetrics {
  const p = correct / n, q = correctNorm / n;
  return {
    kind: 'mc', file: 'test.jsonl', n, acc: p, accStderr: Math.sqrt(p * (1 - p) / (n - 1)),
    accNorm: q, accNormStderr: Math.sqrt(q * (1 - q) / (n - 1)), seconds: 1,
  } as EvalMetrics;
}

function report(method: OTReport['method'], fe: [number, number], pi: [number, number]): OTReport {
  const d = { fullZS: mc(200, 100, 180), emulatorZS: mc(200, 98, 170), emulatorFT: mc(200, ...fe), plugIn: mc(200, ...pi), fullFT: null };
  return {
    format: 'gradot-ot-report', version: 1, model: 'm', task: 't', taskKind: 'mc', method, keep: 0.3,
    split: { bottom: 1, top: 1 }, metric: 'acc', higherIsBetter: true,
    fullZS: d.fullZS.acc!, emulatorZS: d.emulatorZS.acc!, emulatorFT: d.emulatorFT.acc!, plugIn: d.plugIn.acc!, fullFT: null,
    delta: d.plugIn.acc! - d.emulatorFT.acc!, deltaDefinition: 'Plug-in − Emulator FT (acc)', compressionRatio: 3,
    details: d,
  } as unknown as OTReport;
}

describe('markdownTable', () => {
  it('puts acc and acc_norm of several methods side by side, with signed Δ and the worst standard error', () => {
    const md = markdownTable([report('gradot', [190, 191], [192, 193]), report('drop', [180, 181], [170, 171])]);
    expect(md).toContain('| gradot | 0.3 | 3.00× | 50.0 | 49.0 | 95.0 | 96.0 | — | +1.0 |');
    expect(md).toContain('| drop | 0.3 | 3.00× | 50.0 | 49.0 | 90.0 | 85.0 | — | -5.0 |');
    // acc_norm rows: Full ZS 90.0, Emulator ZS 85.0, then the FT/plug-in acc_norm and their difference.
    expect(md).toContain('| gradot | 0.3 | 90.0 | 85.0 | 95.5 | 96.5 | — | +1.0 |');
    expect(md).toContain('| drop | 0.3 | 90.0 | 85.0 | 90.5 | 85.5 | — | -5.0 |');
    // Largest binomial error is the 50% accuracy: sqrt(.25/199) = 3.54 points.
    expect(md).toContain('n = 200 test items');
    expect(md).toContain('at most 3.5 points');
  });
});
