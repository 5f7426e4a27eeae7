import { describe, expect, it } from 'vitest';
import { splitDataset } from './split';
import type { TextDataset } from './types';

const ds: TextDataset = {
  file: 'c.txt',
  format: 'txt',
  kind: 'lm',
  records: Array.from({ length: 20 }, (_, i) => ({ text: `doc ${i}`, line: i + 1 })),
};

describe('splitDataset', () => {
  it('is a deterministic partition, in file order, with the requested share', () => {
    const a = splitDataset(ds, 0.25, 1);
    expect(a.valid.records).toHaveLength(5);
    expect(a.train.records).toHaveLength(15);
    const lines = [...a.train.records, ...a.valid.records].map((r) => r.line).sort((p, q) => (p ?? 0) - (q ?? 0));
    expect(lines).toEqual(ds.records.map((r) => r.line));
    expect(a.train.records.map((r) => r.line)).toEqual([...a.train.records.map((r) => r.line)].sort((p, q) => (p ?? 0) - (q ?? 0)));
    expect(splitDataset(ds, 0.25, 1)).toEqual(a);
    expect(splitDataset(ds, 0.25, 2).valid.records).not.toEqual(a.valid.records);
    expect(a.train.kind).toBe('lm');
  });
  it('keeps both sides non-empty and rejects bad fractions', () => {
    expect(splitDataset(ds, 0.001).valid.records).toHaveLength(1);
    expect(splitDataset(ds, 0.999).train.records).toHaveLength(1);
    expect(() => splitDataset(ds, 0)).toThrow(RangeError);
    expect(() => splitDataset({ ...ds, records: ds.records.slice(0, 1) }, 0.5)).toThrow(/cannot split/);
  });
});
