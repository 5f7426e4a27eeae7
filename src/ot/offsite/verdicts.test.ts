import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from './evaluate';
import { formatClaim, judge, protocolClaims } from './verdicts';

/** A multiple-choice evaluation from explicit per-item results (acc and acc_norm strings). */
function mc(correct: string, correctNorm = correct): EvalMetrics {
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

describe('judge: yes only beyond two paired standard errors', () => {
  it('reads +1.0 ± 0.7 as inside noise, not yes', () => {
    expect(judge(0.01, 0.007)).toBe('inside noise');
    expect(judge(0.015, 0.007)).toBe('yes');
    expect(judge(-0.015, 0.007)).toBe('no');
    expect(judge(-0.01, 0.007)).toBe('inside noise');
    // Exactly equal everywhere (e.g. drop's 50.0 vs 50.0): the claim does not hold.
    expect(judge(0, 0)).toBe('no');
    expect(judge(0.01, null)).toBe('untested');
    expect(judge(Number.NaN, 0.1)).toBe('untested');
  });
});

describe('protocolClaims', () => {
  it('pairs the same items for both sides, with hand-computed standard errors', () => {
    // 10 items. Full ZS right on 0-4, emulator ZS on 0 only: per-item full − emulator = 1 on items 1-4, else 0:
    // mean 0.4, sd² = (4·0.6² + 6·0.4²)/9 = 0.26667, stderr = sqrt(0.26667/10) = 0.16330 → 0.4 > 0.3266: yes.
    const fullZS = mc('1111100000', '1111111100');
    const emulatorZS = mc('1000000000', '1111111000');
    // Emulator FT right on 0-5, Plug-in on 0-6: one item differs: mean 0.1, sd² = (0.9² + 9·0.1²)/9 = 0.1,
    // stderr = 0.1 → 0.1 < 0.2: inside noise. Plug-in − Full ZS: items 5, 6 → mean 0.2,
    // sd² = (2·0.8² + 8·0.2²)/9 = 0.17778, stderr = 0.13333 → 0.2 < 0.2667: inside noise.
    const emulatorFT = mc('1111110000', '1111111111');
    const plugIn = mc('1111111000', '1111111111');
    const cs = protocolClaims({ fullZS, emulatorZS, emulatorFT, plugIn });
    const get = (id: string, metric: string) => cs.find((c) => c.id === id && c.metric === metric)!;
    const hides = get('emulatorHides', 'acc');
    expect(hides.side).toBe('privacy');
    expect(hides.value).toBeCloseTo(0.4, 12);
    expect(hides.stderr).toBeCloseTo(Math.sqrt(0.26666666666666666 / 10), 12);
    expect(hides.verdict).toBe('yes');
    const delta = get('deltaPositive', 'acc');
    expect(delta.value).toBeCloseTo(0.1, 12);
    expect(delta.stderr).toBeCloseTo(0.1, 12);
    expect(delta.verdict).toBe('inside noise');
    const beats = get('plugInBeatsFullZS', 'acc');
    expect(beats.value).toBeCloseTo(0.2, 12);
    expect(beats.stderr).toBeCloseTo(Math.sqrt(0.17777777777777778 / 10), 12);
    expect(beats.verdict).toBe('inside noise');
    // acc_norm: full 8/10, emulator 7/10 (item 7) → 0.1 ± 0.1: inside noise; Δ on acc_norm: 1.0 vs 1.0 → no.
    expect(get('emulatorHides', 'acc_norm').verdict).toBe('inside noise');
    expect(get('deltaPositive', 'acc_norm').verdict).toBe('no');
    expect(formatClaim(delta)).toBe('+10.0 ± 10.0: inside noise');
    expect(formatClaim(hides)).toBe('+40.0 ± 16.3: yes');
  });

  it('loss metrics: signed so lower loss counts as better, untested without per-item losses', () => {
    const ev = (loss: number): EvalMetrics => ({ kind: 'sft', file: 'test.jsonl', n: 5, loss, perplexity: Math.exp(loss), seconds: 1 });
    const cs = protocolClaims({ fullZS: ev(2.0), emulatorZS: ev(2.5), emulatorFT: ev(1.5), plugIn: ev(1.25) });
    const hides = cs.find((c) => c.id === 'emulatorHides')!;
    expect(hides.metric).toBe('loss');
    expect(hides.value).toBeCloseTo(0.5, 12);
    expect(hides.verdict).toBe('untested');
    expect(cs.find((c) => c.id === 'deltaPositive')!.value).toBeCloseTo(0.25, 12);
    expect(formatClaim(hides)).toBe('+0.5000: untested');
  });
});
