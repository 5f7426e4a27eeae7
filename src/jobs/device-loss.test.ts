/**
 * A tuning job whose GPU device is lost mid-run continues on the CPU backend from its last checkpoint and
 * ends with the same adapter as a run that was never interrupted (the backend here is the CPU backend
 * behind a stand-in that "loses its device" after a number of kernel calls, as a driver reset would).
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../engine/backend';
import { CpuBackend } from '../engine/cpu/backend';
import { memoryCheckpointStore } from '../storage';
import { synthExamples, tinyModel } from '../ot/offsite/test-helpers';
import { withCpuFallback } from './device-loss';
import { tuneJob, withRecipeDefaults } from './tune';

/** The CPU backend under the name 'webgpu', whose device is lost at the `failAt`-th matmul. */
function flakyGpu(failAt: number): Backend & { lost: boolean; calls: number } {
  const cpu = new CpuBackend();
  const state = { lost: false, calls: 0 };
  return new Proxy(cpu, {
    get(target, prop, receiver) {
      if (prop === 'name') return 'webgpu';
      if (prop === 'lost') return state.lost;
      if (prop === 'calls') return state.calls;
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'matmul' && typeof v === 'function') {
        return (...args: unknown[]) => {
          if (state.lost || ++state.calls >= failAt) {
            state.lost = true;
            throw new Error('GPU device lost (destroyed)');
          }
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as Backend & { lost: boolean; calls: number };
}

describe('device loss', () => {
  const model = tinyModel('llama', 4, 3);
  const data = { train: synthExamples(32, 1), valid: [] };
  const recipe = withRecipeDefaults({ lr: 3e-3, batchSize: 4, epochs: 1, seed: 2, checkpointEvery: 2 });
  const opts = { split: { bottom: 1, top: 1 }, recipe, tokenizer: { eosId: 0 } };

  it('a tuning run resumes on the CPU from its last checkpoint, with the uninterrupted result', async () => {
    const reference = await tuneJob(model, data, { ...opts, backend: new CpuBackend() });

    const store = memoryCheckpointStore();
    const gpu = flakyGpu(150);
    const messages: string[] = [];
    const used: string[] = [];
    const r = await withCpuFallback(
      gpu,
      (be) => {
        used.push(be === gpu ? 'gpu' : 'cpu');
        return tuneJob(model, data, { ...opts, backend: be, store });
      },
      {
        isLost: (be) => (be as { lost?: boolean }).lost === true,
        cpu: () => new CpuBackend(),
        onFallback: (m) => messages.push(m),
        settleMs: 0,
      },
    );

    expect(gpu.lost).toBe(true);
    expect(used).toEqual(['gpu', 'cpu']);
    expect(messages).toHaveLength(1);
    // Lost after the first checkpoint (steps 2, 4, ...), so the CPU run did not start from step 0.
    expect(r.resumedFrom).toBeGreaterThanOrEqual(2);
    expect(r.resumedFrom).toBeLessThan(r.steps);
    expect(r.steps).toBe(reference.steps);
    for (const [name, t] of reference.adapter.weights) {
      const got = r.adapter.weights.get(name)!;
      expect(Buffer.from(got.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
  });

  it('any other failure, or a cancel, is not retried', async () => {
    const gpu = flakyGpu(1e9);
    const boom = withCpuFallback(
      gpu,
      async () => {
        throw new Error('a bad file');
      },
      { isLost: () => false, cpu: () => new CpuBackend(), settleMs: 0 },
    );
    await expect(boom).rejects.toThrow('a bad file');
    const ac = new AbortController();
    ac.abort();
    let runs = 0;
    const cancelled = withCpuFallback(
      gpu,
      async () => {
        runs++;
        throw new Error('cancelled');
      },
      { isLost: () => true, cpu: () => new CpuBackend(), signal: ac.signal, settleMs: 0 },
    );
    await expect(cancelled).rejects.toThrow('cancelled');
    expect(runs).toBe(1);
  });
});
