import { describe, expect, it } from 'vitest';
import { fitRange, meanStd, niceTicks, paretoFrontier, spreadCoincident } from './plane';

describe('plane geometry', () => {
  it('fits the axis to the data instead of starting at 0', () => {
    const [lo, hi] = fitRange([3.3, 3.7, 4]);
    expect(lo).toBeGreaterThan(3.2);
    expect(lo).toBeLessThan(3.3);
    expect(hi).toBeGreaterThan(4);
    expect(hi).toBeLessThan(4.1);
    const [a, b] = fitRange([0.5, 0.5]);
    expect(a).toBeLessThan(0.5);
    expect(b).toBeGreaterThan(0.5);
  });
  it('gives round ticks inside the range', () => {
    expect(niceTicks(3.25, 4.05, 4)).toEqual([3.4, 3.6, 3.8, 4]);
    for (const t of niceTicks(-0.013, 0.21, 5)) expect(t >= -0.013 && t <= 0.21).toBe(true);
  });
  it('keeps only points that no other beats on both axes', () => {
    const pts = [
      { x: 0.1, y: 0.5 },
      { x: 0.2, y: 0.45 },
      { x: 0.15, y: 0.4 },
      { x: 0.05, y: 0.6 },
      { x: 0.2, y: 0.3 },
    ];
    expect(paretoFrontier(pts)).toEqual([
      { x: 0.05, y: 0.6 },
      { x: 0.1, y: 0.5 },
      { x: 0.2, y: 0.45 },
    ]);
  });
  it('moves coincident points apart and leaves distinct ones alone', () => {
    const off = spreadCoincident(
      [
        [
          [10, 10],
          [100, 100],
        ],
        [
          [10, 10],
          [10.5, 10],
        ],
      ],
      7,
    );
    expect(off[0]).toEqual([
      [0, 0],
      [0, 0],
    ]);
    expect(Math.hypot(...off[1]![0]!)).toBeCloseTo(7, 9);
    const [a, b] = [off[1]![0]!, off[1]![1]!];
    expect(Math.hypot(a[0] - b[0], a[1] - b[1])).toBeGreaterThan(3);
  });
  it('mean and sample std', () => {
    const r = meanStd([1, 2, 3, 4]);
    expect(r.mean).toBe(2.5);
    expect(r.std).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect(meanStd([7]).std).toBe(0);
  });
});
