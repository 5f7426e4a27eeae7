import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from '../offsite/evaluate';
import type { OTReport } from '../offsite/protocol';
import { lambdaModeOf, lambdaSweepTable, rankSplit } from './lambda-sweep-table';

/** A multiple-choice evaluation from explicit per-item results (acc and acc_norm strings). */
function mc(correct: string, correctNorm: string): EvalMetrics {
  const mean = (s: string) => [...s].filter((c) => c === '1').length / s.length;
  return {
    kind: 'mc',
    file: 'test.jsonl',
    n: correct.length,
    acc: mean(correct),
    accNorm: mean(correctNorm),
    correct,
    correctNorm,
    seconds: 1,
  };
}

function report(emulator: Record<string, unknown>, d: Record<'emulatorZS' | 'emulatorFT' | 'plugIn', EvalMetrics>): OTReport {
  return {
    method: 'gradot',
    keep: 0.3,
    metric: 'acc',
    compressRecord: { emulator },
    details: { fullZS: mc('1111100000', '1111111100'), ...d, fullFT: null },
  } as unknown as OTReport;
}

describe('lambdaSweepTable', () => {
  it('one row per run: λ reading, support loss, rank split, both sides with hand-computed paired errors and verdicts', () => {
    const balanced = 'lambda/balanced-per-matrix-sum-ratio/v1';
    const low = report(
      {
        lambdaAttn: 0,
        lambdaMlp: 0,
        readings: { lambda: balanced },
        supportLoss: { full: 4.9296, emulator: 5.0026 },
        layers: [{ ranks: { q: 10, k: 12, up: 30, down: 5 } }, { ranks: { v: 3, o: 4, gate: 7 } }],
      },
      {
        // hides (acc_norm): full 8/10 vs 7/10, one item differs: mean 0.1, sd² = (0.9² + 9·0.1²)/9 = 0.1,
        // stderr = sqrt(0.1/10) = 0.1 → 0.1 < 0.2: inside noise.
        emulatorZS: mc('1111100000', '1111111000'),
        // Δ acc: items 6, 7 gained: mean 0.2, sd² = (2·0.8² + 8·0.2²)/9 = 0.17778, stderr 0.13333 → inside noise.
        emulatorFT: mc('1111110000', '1111111000'),
        plugIn: mc('1111111100', '1111111000'),
      },
    );
    const high = report(
      { lambdaAttn: 8, lambdaMlp: 8, readings: { lambda: balanced }, supportLoss: { full: 4.9296, emulator: 6.5 }, layers: [] },
      {
        // hides: items 1-7 lost: mean 0.7, sd² = (7·0.3² + 3·0.7²)/9 = 0.23333, stderr 0.15275 → 0.7 > 0.3055: yes.
        emulatorZS: mc('1111100000', '1000000000'),
        // Δ acc: 9 items gained: mean 0.9, sd² = (9·0.1² + 0.9²)/9 = 0.1, stderr 0.1 → yes; acc_norm: one item → inside noise.
        emulatorFT: mc('1000000000', '0000000000'),
        plugIn: mc('1111111111', '0000000001'),
      },
    );
    const raw = report(
      { lambdaAttn: 1, lambdaMlp: 2 },
      { emulatorZS: mc('1111100000', '1111111100'), emulatorFT: mc('1111100000', '1111111100'), plugIn: mc('1111100000', '1111111100') },
    );
    const lines = lambdaSweepTable([low, high, raw]).split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[2]).toBe(
      '| balanced | 0 | 4.930 → 5.003 | 29 / 42 | 50.0 / 70.0 | +10.0 ± 10.0: inside noise | 60.0 / 70.0 | 80.0 / 70.0 | +20.0 ± 13.3: inside noise | 0.0 ± 0.0: no |',
    );
    expect(lines[3]).toBe(
      '| balanced | 8 | 4.930 → 6.500 | — | 50.0 / 10.0 | +70.0 ± 15.3: yes | 10.0 / 0.0 | 100.0 / 10.0 | +90.0 ± 10.0: yes | +10.0 ± 10.0: inside noise |',
    );
    // No reading recorded (older runs) means raw; distinct attention and MLP λ both shown.
    expect(lines[4]).toBe(
      '| raw | 1 / 2 | — | — | 50.0 / 80.0 | 0.0 ± 0.0: no | 50.0 / 80.0 | 50.0 / 80.0 | 0.0 ± 0.0: no | 0.0 ± 0.0: no |',
    );
  });

  it('reads the λ mode from the reading id and sums ranks by attention/MLP projection', () => {
    expect(lambdaModeOf({ lambda: 'lambda/balanced-per-matrix-sum-ratio/v1' })).toBe('balanced');
    expect(lambdaModeOf({ lambda: 'lambda/raw/v1' })).toBe('raw');
    expect(lambdaModeOf(undefined)).toBe('raw');
    expect(rankSplit([{ ranks: { o: 2, gate: 3 } }, { ranks: { k: 1, down: 4 } }])).toBe('3 / 7');
    expect(rankSplit(8)).toBe('—');
  });
});
