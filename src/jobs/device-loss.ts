/**
 * What a job does when its GPU device is lost mid-run: it runs again on the CPU backend. A job with a
 * checkpoint store (tuning) resumes from its last checkpoint there; the others start over. Anything else
 * that fails (including a cancel) is rethrown as it is.
 */
import type { Backend } from '../engine/backend';

export interface CpuFallbackOptions {
  /** Whether `be` lost its device (the GPU backend's `lost` flag or its `onLost` callback). */
  isLost(be: Backend): boolean;
  /** The backend to continue on. */
  cpu(): Backend;
  /** A cancelled job is not retried. */
  signal?: AbortSignal;
  /** Called once before the retry (to tell the user). */
  onFallback?: (message: string) => void;
  /** How long to wait for the loss to be reported after an error (a read on a destroyed device can fail
   *  before `device.lost` resolves); default 1000 ms. */
  settleMs?: number;
}

export async function withCpuFallback<T>(be: Backend, job: (be: Backend) => Promise<T>, o: CpuFallbackOptions): Promise<T> {
  try {
    return await job(be);
  } catch (e) {
    if (o.signal?.aborted) throw e;
    const deadline = Date.now() + (o.settleMs ?? 1000);
    while (!o.isLost(be) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!o.isLost(be)) throw e;
    o.onFallback?.('WebGPU device lost: continuing on the CPU backend from the last checkpoint');
    return job(o.cpu());
  }
}
