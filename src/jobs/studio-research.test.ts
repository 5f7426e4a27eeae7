/**
 * The researcher view's worker calls (workers/studio, in Node on the CPU backend): the speed calibration
 * behind the grid's estimate, the source spectra of compared runs, the kept components a run's report
 * carries, and "Try it" stopping in its export stage when cancelled there.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend';
import { linearName } from '../model/decoder';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import { buildEmulator, toRanges } from '../ot/emulator/package';
import { api } from '../../workers/studio';
import { taskName } from '../../workers/studio/protocol';
import type { GenerateStage } from './studio-api';
import { studioModelFiles } from './studio-test-helpers';

let spec: ModelSpec;
let weights: WeightMap;

beforeAll(async () => {
  const m = await studioModelFiles('llama', 11, 'model');
  ({ spec, weights } = m);
  await api.openModel('model', m.files);
});

describe('researcher measurements', () => {
  it('calibrate: a finite, positive forward cost per token on this backend, and an SVD time', async () => {
    const c = await api.calibrate(16);
    expect(c.model).toBe('model');
    expect(c.backend).toMatch(/^cpu/);
    expect(c.seqLen).toBe(16);
    expect(c.tokens).toBeGreaterThanOrEqual(16);
    expect(Number.isFinite(c.forwardSecPerToken) && c.forwardSecPerToken > 0).toBe(true);
    expect(Number.isFinite(c.svdSecondsPerMatrix) && c.svdSecondsPerMatrix >= 0).toBe(true);
    expect(Number.isFinite(c.loadSeconds) && c.loadSeconds > 0).toBe(true);
    // Cached per model and sequence length: the same measurement comes back.
    expect(await api.calibrate(16)).toEqual(c);
  });

  it('modelSpectra: σ of the open model matrix, descending, with Σσ² = ‖W‖²', async () => {
    const [q, down] = await api.modelSpectra([
      { layer: 1, proj: 'q' },
      { layer: 2, proj: 'down' },
    ]);
    for (const [s, proj, layer] of [
      [q!, 'q', 1],
      [down!, 'down', 2],
    ] as const) {
      const w = weights.get(`${linearName(layer, proj)}.weight`)!;
      const [o, i] = w.shape as [number, number];
      expect(s.sigma.length).toBe(Math.min(o, i));
      for (let k = 1; k < s.sigma.length; k++) expect(s.sigma[k]!).toBeLessThanOrEqual(s.sigma[k - 1]! * (1 + 1e-6));
      let fro = 0;
      for (const v of w.data as Float32Array) fro += v * v;
      const sum = s.sigma.reduce((a, v) => a + v * v, 0);
      expect(Math.abs(sum - fro) / fro).toBeLessThan(1e-4);
    }
    await expect(api.modelSpectra([{ layer: 1, proj: 'nope' }])).rejects.toThrow(/no matrix nope in block 1/);
  });

  it('kept components as runs: toRanges', () => {
    expect(toRanges([0, 1, 2, 5, 6])).toEqual([
      [0, 3],
      [5, 7],
    ]);
    expect(toRanges([7, 0, 1, 1])).toEqual([
      [0, 2],
      [7, 8],
    ]);
    expect(toRanges([])).toEqual([]);
  });

  it("a run's report carries the kept components of each factorized matrix (the spectrum's cut)", async () => {
    const r = await buildEmulator(spec, weights, {
      method: 'svd',
      keep: 0.5,
      split: { bottom: 1, top: 1 },
      seed: 0,
      backend: new CpuBackend(),
      modelId: 'model',
      support: [],
    });
    const middle = r.report.layers.filter((l) => l.role === 'middle');
    expect(middle.length).toBeGreaterThan(0);
    for (const l of middle) {
      for (const [proj, rank] of Object.entries(l.ranks ?? {})) {
        if (typeof rank !== 'number') continue;
        // svd keeps the top components in σ order: one run [0, rank).
        expect(l.keptRanges?.[proj], `block ${l.source} ${proj}`).toEqual([[0, rank]]);
      }
    }
    // It survives the JSON a run is stored as.
    expect(JSON.parse(JSON.stringify(r.report)).layers).toEqual(r.report.layers);
  });
});

describe('protocol task name', () => {
  it('a task folder of plainly named files is named after the folder; other files by their name', () => {
    expect(taskName('genre-short-mc/test.jsonl')).toBe('genre-short-mc');
    expect(taskName('data/imdb/valid.jsonl')).toBe('imdb');
    expect(taskName('test.jsonl')).toBe('test.jsonl');
    expect(taskName('mytask/qa-test.jsonl')).toBe('qa-test.jsonl');
  });
});

describe('try it: cancel', () => {
  it('a cancel during the ONNX export stops there: transformers.js is never loaded, nothing is kept', async () => {
    const stages: GenerateStage[] = [];
    const jobId = 'gen-test-cancel';
    const p = api.generate(
      { target: { kind: 'plugin' }, prompt: 'the red house', maxNewTokens: 4, sample: false, temperature: 1, topK: 1, jobId },
      () => undefined,
      (s) => {
        stages.push(s);
        if (s === 'exporting to ONNX') void api.cancel(jobId);
      },
    );
    await expect(p).rejects.toThrow(/cancelled/);
    expect(stages).toEqual(['loading model', 'exporting to ONNX']);
    // The next run starts from the beginning (the half-done export was not kept).
    const again: GenerateStage[] = [];
    const p2 = api.generate(
      { target: { kind: 'plugin' }, prompt: 'the red house', maxNewTokens: 4, sample: false, temperature: 1, topK: 1, jobId: 'gen-test-2' },
      () => undefined,
      (s) => {
        again.push(s);
        if (s === 'loading transformers.js') void api.cancel('gen-test-2');
      },
    );
    await expect(p2).rejects.toThrow(/cancelled/);
    expect(again.slice(0, 3)).toEqual(['loading model', 'exporting to ONNX', 'loading transformers.js']);
  });

  it('a cancel that overtakes the call starting the generation still stops it, before any stage', async () => {
    await api.cancel('gen-test-early');
    const stages: GenerateStage[] = [];
    const p = api.generate(
      {
        target: { kind: 'plugin' },
        prompt: 'the red house',
        maxNewTokens: 4,
        sample: false,
        temperature: 1,
        topK: 1,
        jobId: 'gen-test-early',
      },
      () => undefined,
      (s) => stages.push(s),
    );
    await expect(p).rejects.toThrow(/cancelled/);
    expect(stages).toEqual([]);
  });
});
