/**
 * The studio's compression view data (workers/studio, in Node on the CPU backend): every compressed matrix
 * of every middle block — q, k, v, o, gate, up, down — with kept / full for every method, and spectra for
 * any of them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../workers/studio';
import type { CompressMethod, CompressOptions, InputFile } from './studio-api';
import { studioCompressOptions, studioModelFiles } from './studio-test-helpers';

let support: InputFile;

beforeAll(async () => {
  await api.openModel('model', (await studioModelFiles('llama', 5, 'model')).files);
  const text = Array.from({ length: 16 }, (_, i) =>
    JSON.stringify({ text: `the ${['red', 'blue', 'green'][i % 3]} house by the river number ${i}.` }),
  ).join('\n');
  support = { path: 'support.jsonl', data: new Blob([text]) };
});

const opts = (method: CompressMethod): CompressOptions => studioCompressOptions(method, support);

describe('studio compression results', () => {
  it('svd and gradot: q k v o gate up down per middle block, the MLP factored (rank below full)', async () => {
    for (const method of ['svd', 'gradot'] as const) {
      const r = await api.compress(opts(method), () => undefined);
      for (const layer of [1, 2]) {
        const rows = r.matrices.filter((m) => m.layer === layer);
        expect(rows.map((m) => m.proj).sort(), method).toEqual(['down', 'gate', 'k', 'o', 'q', 'up', 'v']);
        for (const m of rows) {
          expect(m.full, `${method} ${m.proj}`).toBe(Math.min(...m.shape));
          expect(m.kept).toBeGreaterThan(0);
          expect(m.kept).toBeLessThanOrEqual(m.full);
          expect(m.unit).toBe('rank');
        }
      }
      // Most parameters are in the MLP: the table must show it compressed (not "688/688").
      expect(
        r.matrices.filter((m) => ['up', 'gate', 'down'].includes(m.proj)).some((m) => m.kept < m.full),
        method,
      ).toBe(true);
      // A spectrum for an MLP matrix too, with exactly the kept components marked.
      const down = r.matrices.find((m) => m.layer === 1 && m.proj === 'down')!;
      const s = await api.spectrum(r.packageId, 1, 'down');
      expect(s.sigma.length).toBe(down.full);
      expect(s.kept.length).toBe(down.kept);
    }
  });

  it('prune: MLPs sliced by channels show channels kept of the source width; drop: kept blocks full, dropped ones 0', async () => {
    const p = await api.compress(opts('prune'), () => undefined);
    const up = p.matrices.filter((m) => m.proj === 'up');
    expect(up.length).toBe(2);
    for (const m of up) {
      expect(m.unit).toBe('channels');
      expect(m.full).toBe(m.shape[0]);
      expect(m.kept).toBeLessThan(m.full);
    }
    const d = await api.compress(opts('drop'), () => undefined);
    const kept = new Set(d.layers.filter((l) => l.role !== 'dropped').map((l) => l.layer));
    for (const m of d.matrices) expect(m.kept, `${m.layer} ${m.proj}`).toBe(kept.has(m.layer) ? m.full : 0);
    expect(d.matrices.some((m) => m.kept === 0)).toBe(true);
  });
});
