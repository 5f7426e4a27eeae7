import { describe, expect, it } from 'vitest';
import { takeThreadsFlag } from './threads';
import { UsageError } from './command';

describe('--threads', () => {
  it('is taken out of argv in both spellings', () => {
    expect(takeThreadsFlag(['bench', '--threads', '3', '--only', 'cpu'])).toEqual({ threads: 3, rest: ['bench', '--only', 'cpu'] });
    expect(takeThreadsFlag(['--threads=1', 'eval'])).toEqual({ threads: 1, rest: ['eval'] });
  });
  it('falls back to GRADOT_THREADS, else leaves the default to the pool', () => {
    const prev = process.env.GRADOT_THREADS;
    try {
      process.env.GRADOT_THREADS = '2';
      expect(takeThreadsFlag(['eval']).threads).toBe(2);
      delete process.env.GRADOT_THREADS;
      expect(takeThreadsFlag(['eval']).threads).toBeUndefined();
    } finally {
      if (prev === undefined) delete process.env.GRADOT_THREADS;
      else process.env.GRADOT_THREADS = prev;
    }
  });
  it('rejects a missing or non-positive count with a usage error', () => {
    for (const argv of [['--threads'], ['--threads', '0'], ['--threads=two'], ['--threads', '1.5']]) {
      expect(() => takeThreadsFlag(argv)).toThrow(UsageError);
      expect(() => takeThreadsFlag(argv)).toThrow(/--threads expects a positive integer/);
    }
  });
});
