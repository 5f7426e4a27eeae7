import { describe, expect, it } from 'vitest';
import type { OTRun } from '../jobs/studio-api';
import { parseRunsJson, RUN_COLUMNS, runsToCsv, runsToJson } from './runs';

function run(over: Partial<OTRun> = {}): OTRun {
  return {
    id: 'r1', createdAt: '2026-01-01T00:00:00.000Z', model: 'demo', task: 'imdb, "mc"', metric: 'acc',
    setting: { method: 'gradot', keep: 0.3, lambdaAttn: 1, lambdaMlp: 0.5, adapters: { bottom: 2, top: 2 } },
    fullZS: 0.61, emulatorZS: 0.52, emulatorFT: 0.7, plugIn: 0.81, fullFT: null, delta: 0.11, compressionRatio: 0.45,
    origin: 'browser', ...over,
  };
}

describe('runs export/import', () => {
  it('CSV has one header and quotes cells with commas and quotes', () => {
    const csv = runsToCsv([run(), run({ id: 'r2', fullFT: 0.9 })]).trim().split('\n');
    expect(csv[0]).toBe(RUN_COLUMNS.join(','));
    expect(csv).toHaveLength(3);
    expect(csv[1]).toContain('"imdb, ""mc"""');
    // null renders as an empty cell, not "null"
    expect(csv[1]!.split(',').includes('null')).toBe(false);
  });

  it('JSON export round-trips through the importer (marked as imported)', () => {
    const back = parseRunsJson(runsToJson([run()]));
    expect(back).toHaveLength(1);
    expect(back[0]!.origin).toBe('import');
    expect({ ...back[0]!, origin: 'browser' }).toEqual(run());
  });

  it('keeps the paired standard error of Δ through CSV and JSON', () => {
    const r = run({ deltaStderr: 0.007, task: 'genre-short-mc' }); // no comma in any cell, so split(',') finds columns
    const csv = runsToCsv([r]).trim().split('\n');
    const col = RUN_COLUMNS.indexOf('deltaStderr');
    expect(csv[1]!.split(',')[col]).toBe('0.007');
    expect({ ...parseRunsJson(runsToJson([r]))[0]!, origin: 'browser' }).toEqual(r);
  });

  it('importer derives Δ when absent and rejects runs without a method', () => {
    const [r] = parseRunsJson(JSON.stringify([{ setting: { method: 'svd', keep: 0.5 }, plugIn: 0.8, emulatorFT: 0.5 }]));
    expect(r!.delta).toBeCloseTo(0.3, 12);
    expect(() => parseRunsJson(JSON.stringify([{ setting: {} }]))).toThrow(/method/);
    expect(() => parseRunsJson('{"nope": 1}')).toThrow(/array of runs/);
  });
});
