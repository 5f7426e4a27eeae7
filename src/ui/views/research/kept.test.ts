import { describe, expect, it } from 'vitest';
import type { OTRun } from '../../../jobs/studio-api';
import { keptOfMatrix } from './kept';

function run(layers: unknown[] | null): OTRun {
  return {
    id: 'r',
    createdAt: '',
    model: 'demo',
    task: 't',
    metric: 'acc',
    origin: 'browser',
    setting: { method: 'gradot', keep: 0.3, lambdaAttn: 1, lambdaMlp: 1, adapters: { bottom: 1, top: 1 } },
    fullZS: null,
    emulatorZS: null,
    emulatorFT: null,
    plugIn: null,
    fullFT: null,
    delta: null,
    compressionRatio: null,
    ...(layers ? { report: { compressRecord: { emulator: { layers } } } } : {}),
  };
}

const layers = [
  { index: 0, source: 0, role: 'bottom', ranks: {}, mlpWidth: 64 },
  {
    index: 1,
    source: 1,
    role: 'middle',
    ranks: { q: 3, up: 4 },
    mlpWidth: 64,
    keptRanges: {
      q: [
        [0, 2],
        [7, 8],
      ],
      up: [[0, 4]],
    },
  },
  { index: 2, source: 3, role: 'middle', ranks: { k: 2 }, mlpWidth: 40 },
  { index: 3, source: 4, role: 'top', ranks: {}, mlpWidth: 64 },
];

describe('kept components of a matrix', () => {
  it('recorded components: the cut is their count, and those beyond it are counted', () => {
    const q = keptOfMatrix(run(layers), 1, 'q', 16, 64);
    expect(q.kept).toEqual([0, 1, 7]);
    expect(q.cut).toBe(3);
    expect(q.note).toBe('keeps 3/16, 1 of them outside the top 3');
    expect(keptOfMatrix(run(layers), 1, 'up', 16, 64).note).toBe('keeps 4/16, the top ones');
  });

  it('an older record (rank only) is drawn as the top components and says so', () => {
    const k = keptOfMatrix(run(layers), 3, 'k', 8, 64);
    expect(k.kept).toEqual([0, 1]);
    expect(k.cut).toBe(2);
    expect(k.note).toMatch(/components not recorded/);
  });

  it('dense matrices are kept whole; channel-pruned MLPs have no σ cut; dropped blocks keep nothing', () => {
    expect(keptOfMatrix(run(layers), 1, 'v', 8, 64)).toEqual({ kept: [...Array(8).keys()], note: 'kept whole (8/8)' });
    const pruned = keptOfMatrix(run(layers), 3, 'gate', 16, 64);
    expect(pruned.kept).toEqual([]);
    expect(pruned.note).toMatch(/pruned to 40\/64/);
    expect(keptOfMatrix(run(layers), 2, 'q', 16, 64)).toEqual({ kept: [], note: 'block dropped: nothing kept' });
    expect(keptOfMatrix(run(layers), 0, 'q', 4, 64).kept).toEqual([0, 1, 2, 3]);
    expect(keptOfMatrix(run(null), 1, 'q', 4, 64)).toEqual({ kept: [], note: 'no compression record' });
  });
});
