import { describe, expect, it } from 'vitest';
import { backendLabel, compactTick, formatDuration, liveTiming, overallProgress } from './format';

describe('formatDuration', () => {
  it('never prints 60 seconds inside a minute', () => {
    expect(formatDuration(119.6)).toBe('2m 00s');
    expect(formatDuration(59.6)).toBe('1m 00s');
    expect(formatDuration(119.4)).toBe('1m 59s');
    for (let s = 0; s < 7300; s += 0.37) expect(formatDuration(s)).not.toMatch(/\b60[sm]/);
  });
  it('formats seconds, minutes and hours', () => {
    expect(formatDuration(4.4)).toBe('4s');
    expect(formatDuration(65)).toBe('1m 05s');
    expect(formatDuration(3599.7)).toBe('1h 00m');
    expect(formatDuration(7385)).toBe('2h 03m');
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(Infinity)).toBe('—');
  });
});

describe('liveTiming', () => {
  it('counts the ETA down and elapsed up between events', () => {
    const p = { fraction: 0.5, elapsedS: 10, etaS: 30, receivedAtMs: 1000 };
    expect(liveTiming(p, 1000)).toEqual({ elapsedS: 10, etaS: 30 });
    expect(liveTiming(p, 6000)).toEqual({ elapsedS: 15, etaS: 25 });
    expect(liveTiming(p, 100_000).etaS).toBe(0);
  });
  it('derives an ETA from the fraction when the worker sent none', () => {
    const t = liveTiming({ fraction: 0.25, elapsedS: 20, etaS: null, receivedAtMs: 0 }, 2000);
    expect(t.etaS).toBeCloseTo(58, 6);
    expect(liveTiming({ fraction: null, elapsedS: 3, etaS: null, receivedAtMs: 0 }, 0).etaS).toBeNull();
  });
});

describe('overallProgress', () => {
  it('adds finished parts to the current part', () => {
    const o = overallProgress(2, 4, 0.5, 50);
    expect(o.fraction).toBeCloseTo(0.625, 9);
    expect(o.etaS).toBeCloseTo(30, 9);
    expect(overallProgress(0, 3, null, 5).etaS).toBeNull();
    expect(overallProgress(3, 3, 1, 90)).toEqual({ fraction: 1, etaS: 0 });
  });
});

import { describeBackend, explainPackageSize } from './format';

describe('describeBackend', () => {
  it('says jobs run on the CPU when the WebGPU adapter is a software fallback', () => {
    const d = describeBackend({ kind: 'webgpu', adapterName: 'SwiftShader', isFallbackAdapter: true, threads: 4 });
    expect(d.runsOn).toBe('CPU');
    expect(d.label).toBe('CPU (4 threads)');
    expect(d.why).toMatch(/SwiftShader.*CPU backend is faster/);
  });
  it('says so when a software adapter runs the jobs on request', () => {
    const d = describeBackend({ kind: 'webgpu', adapterName: 'SwiftShader', isFallbackAdapter: true, jobsOn: 'webgpu' });
    expect(d.runsOn).toBe('WebGPU');
    expect(d.label).toContain('software');
  });
  it('names a hardware adapter and the reason WebGPU is missing', () => {
    expect(describeBackend({ kind: 'webgpu', adapterName: 'nvidia' }).label).toBe('WebGPU · nvidia');
    const c = describeBackend({ kind: 'cpu', reason: 'navigator.gpu is undefined' });
    expect([c.runsOn, c.label]).toEqual(['CPU', 'CPU']);
    expect(c.why).toContain('navigator.gpu is undefined');
  });
});

describe('explainPackageSize', () => {
  it('explains an F32 package larger than an F16 model', () => {
    const s = explainPackageSize({
      packageBytes: 22.5 * 2 ** 20,
      paramsAfter: 5.6e6,
      modelBytes: 15.1 * 2 ** 20,
      modelParams: 7.9e6,
      modelDtypes: ['F16'],
    });
    expect(s).toMatch(/32-bit floats.*F16/);
  });
  it('says nothing when the package is not larger per parameter', () => {
    expect(
      explainPackageSize({ packageBytes: 10e6, paramsAfter: 5e6, modelBytes: 16e6, modelParams: 8e6, modelDtypes: ['F16'] }),
    ).toBeNull();
  });
});

describe('compactTick and backendLabel', () => {
  it('shortens large ticks and leaves small ones as they are', () => {
    expect(compactTick(15_000_000)).toBe('15M');
    expect(compactTick(7_500_000)).toBe('7.5M');
    expect(compactTick(2_500_000_000)).toBe('2.5B');
    expect(compactTick(25_000)).toBe('25K');
    expect(compactTick(4000)).toBe('4000');
    expect(compactTick(0.25)).toBe('0.25');
    expect(compactTick(0)).toBe('0');
  });
  it("words the engine's backend names as the badge does", () => {
    expect(backendLabel('cpu-f32')).toBe('CPU');
    expect(backendLabel('cpu-f64')).toBe('CPU (f64)');
    expect(backendLabel('webgpu')).toBe('WebGPU');
    expect(backendLabel('CPU (2 threads)')).toBe('CPU (2 threads)');
  });
});
