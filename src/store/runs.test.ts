import { describe, expect, it } from 'vitest';
import type { OTRun } from '../jobs/studio-api';
import { hidesOf, lambdaModeOfRun, parseRunsJson, RUN_COLUMNS, runsToCsv, runsToJson } from './runs';

function run(over: Partial<OTRun> = {}): OTRun {
  return {
    id: 'r1',
    createdAt: '2026-01-01T00:00:00.000Z',
    model: 'demo',
    task: 'imdb, "mc"',
    metric: 'acc',
    setting: { method: 'gradot', keep: 0.3, lambdaAttn: 1, lambdaMlp: 0.5, adapters: { bottom: 2, top: 2 } },
    fullZS: 0.61,
    emulatorZS: 0.52,
    emulatorFT: 0.7,
    plugIn: 0.81,
    fullFT: null,
    delta: 0.11,
    compressionRatio: 0.45,
    origin: 'browser',
    ...over,
  };
}

describe('runs export/import', () => {
  it('CSV has one header and quotes cells with commas and quotes', () => {
    const csv = runsToCsv([run(), run({ id: 'r2', fullFT: 0.9 })])
      .trim()
      .split('\n');
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

  it("keeps a browser run's report (its compression record) through export and import", () => {
    const report = {
      compressRecord: {
        emulator: {
          layers: [
            {
              index: 1,
              source: 1,
              role: 'middle',
              ranks: { q: 2 },
              mlpWidth: 8,
              keptRanges: {
                q: [
                  [0, 1],
                  [3, 4],
                ],
              },
            },
          ],
        },
      },
    };
    const back = parseRunsJson(runsToJson([run({ report })]))[0]!;
    expect(back.report).toEqual(report);
    expect(parseRunsJson(JSON.stringify([{ setting: { method: 'svd' }, report: 'nope' }]))[0]!.report).toBeUndefined();
  });

  it('carries the privacy side and the verdicts through CSV and JSON; drops unknown verdicts on import', () => {
    const r = run({
      task: 'genre-short-mc',
      hidesStderr: 0.02,
      verdicts: { deltaPositive: 'inside noise', plugInBeatsFullZS: 'yes', emulatorHides: 'yes' },
    });
    const cells = runsToCsv([r]).trim().split('\n')[1]!.split(',');
    // hides = Full ZS − Emulator ZS = 0.61 − 0.52.
    expect(Number(cells[RUN_COLUMNS.indexOf('hides')])).toBeCloseTo(0.09, 12);
    expect(cells[RUN_COLUMNS.indexOf('hidesStderr')]).toBe('0.02');
    expect(cells[RUN_COLUMNS.indexOf('deltaVerdict')]).toBe('inside noise');
    expect(cells[RUN_COLUMNS.indexOf('hidesVerdict')]).toBe('yes');
    expect({ ...parseRunsJson(runsToJson([r]))[0]!, origin: 'browser' }).toEqual(r);
    const [bad] = parseRunsJson(
      JSON.stringify([{ ...r, verdicts: { deltaPositive: 'maybe', plugInBeatsFullZS: 'yes', emulatorHides: 'yes' } }]),
    );
    expect(bad!.verdicts).toBeUndefined();
  });

  it('hidesOf: larger = the emulator hides more, for accuracy and for loss; null when a phase is missing', () => {
    // acc: Full ZS 0.61 − Emulator ZS 0.52 = 0.09; loss: emulator 3.5 − full 3.25 = 0.25 (worse emulator, hides more).
    expect(hidesOf(run())).toBeCloseTo(0.09, 12);
    expect(hidesOf(run({ metric: 'loss', fullZS: 3.25, emulatorZS: 3.5 }))).toBe(0.25);
    expect(hidesOf(run({ metric: 'loss', fullZS: 3.5, emulatorZS: 3.25 }))).toBe(-0.25);
    expect(hidesOf(run({ emulatorZS: null }))).toBeNull();
  });

  it('lambdaModeOfRun: the λ reading of a gradot run from its compression record', () => {
    const rec = (lambda: string) => ({ compressRecord: { emulator: { readings: { lambda } } } });
    expect(lambdaModeOfRun(run({ report: rec('lambda/balanced-per-matrix-sum-ratio/v1') }))).toBe('balanced');
    expect(lambdaModeOfRun(run({ report: rec('lambda/raw/v1') }))).toBe('raw');
    expect(lambdaModeOfRun(run())).toBeNull();
    const svd = run({ report: rec('lambda/raw/v1') });
    expect(lambdaModeOfRun({ ...svd, setting: { ...svd.setting, method: 'svd' } })).toBeNull();
    const cells = runsToCsv([run({ task: 'genre-short-mc', report: rec('lambda/balanced-per-matrix-sum-ratio/v1') })])
      .trim()
      .split('\n')[1]!
      .split(',');
    expect(cells[RUN_COLUMNS.indexOf('lambdaMode')]).toBe('balanced');
  });

  it('importer derives Δ when absent and rejects runs without a method', () => {
    const [r] = parseRunsJson(JSON.stringify([{ setting: { method: 'svd', keep: 0.5 }, plugIn: 0.8, emulatorFT: 0.5 }]));
    expect(r!.delta).toBeCloseTo(0.3, 12);
    expect(() => parseRunsJson(JSON.stringify([{ setting: {} }]))).toThrow(/method/);
    expect(() => parseRunsJson('{"nope": 1}')).toThrow(/array of runs/);
  });
});

import { settingPoints } from './runs';

describe('settingPoints', () => {
  it('a loss task is turned around so that larger is better on both axes', () => {
    const [p] = settingPoints([run({ metric: 'loss', fullZS: 2.0, emulatorZS: 2.6, plugIn: 1.5, emulatorFT: 1.7, delta: 0.2 })], 'plugIn');
    expect(p!.hides).toBeCloseTo(0.6, 12);
    expect(p!.utility).toBeCloseTo(-1.5, 12);
    const [d] = settingPoints([run({ metric: 'loss', fullZS: 2.0, emulatorZS: 2.6, plugIn: 1.5, emulatorFT: 1.7, delta: 0.2 })], 'delta');
    expect(d!.utility).toBeCloseTo(0.2, 12);
  });

  it('averages seeds of one setting and measures their spread', () => {
    const pts = settingPoints(
      [
        run({ id: 'a', seed: 0, fullZS: 0.6, emulatorZS: 0.5, plugIn: 0.8 }),
        run({ id: 'b', seed: 1, fullZS: 0.6, emulatorZS: 0.4, plugIn: 0.7 }),
        run({
          id: 'c',
          setting: { method: 'svd', keep: 0.3, lambdaAttn: 0, lambdaMlp: 0, adapters: { bottom: 2, top: 2 } },
          fullZS: 0.6,
          emulatorZS: 0.55,
          plugIn: 0.75,
        }),
        run({ id: 'd', emulatorZS: null }),
      ],
      'plugIn',
    );
    expect(pts).toHaveLength(2);
    const g = pts.find((p) => p.method === 'gradot')!;
    expect(g.seeds).toBe(2);
    expect(g.hides).toBeCloseTo(0.15, 12);
    expect(g.utility).toBeCloseTo(0.75, 12);
    expect(g.utilityStd).toBeCloseTo(Math.SQRT1_2 * 0.1, 12);
    const s = pts.find((p) => p.method === 'svd')!;
    expect([s.seeds, s.utilityStd]).toEqual([1, 0]);
    expect(s.hides).toBeCloseTo(0.05, 12);
  });
});

import { keptRanks } from './runs';

describe('keptRanks', () => {
  it('reads the middle blocks of a run’s compression record', () => {
    const r = run({
      report: {
        compressRecord: {
          emulator: {
            layers: [
              { index: 0, source: 0, role: 'adapter', ranks: {}, mlpWidth: 64 },
              { index: 1, source: 1, role: 'middle', ranks: { k: 3, q: 5 }, mlpWidth: 40 },
              { index: 2, source: 3, role: 'middle', ranks: { q: 7 }, mlpWidth: 32 },
            ],
          },
        },
      },
    });
    const k = keptRanks(r)!;
    expect(k.blocks).toEqual([1, 3]);
    expect(k.cols).toEqual(['q', 'k']);
    expect(k.ranks).toEqual([
      [5, 3],
      [7, null],
    ]);
    expect(k.mlpWidth).toEqual([40, 32]);
    expect(keptRanks(run())).toBeNull();
  });
});
