/**
 * Asks the JavaScript engine to collect garbage now, where the runtime allows it (Node started with
 * --expose-gc, as the `gradot` launcher does; a no-op in browsers), once the process's typed arrays have
 * grown by RECLAIM_GROWTH_BYTES since the last collection it asked for.
 *
 * Why: a CPU tensor is a typed array whose memory returns only when V8 collects its (small) wrapper, and at
 * real sizes a few steps free memory faster than V8's heuristics collect it. Measured on the
 * Qwen2.5-0.5B-shaped build: evaluating the emulator over two batches left 1.5 GB of freed activations and
 * logit blocks uncollected (RSS 2.8 → 4.5 GB). Why the threshold: a forced collection is not free (on the
 * gpt2-shaped build, one after every batch and block cost 16 s of 3.5 min and lowered no peak), so it runs
 * only when there is that much to win. Callers use it where large transients were just freed, not per op.
 */
export const RECLAIM_GROWTH_BYTES = 512 * 2 ** 20;

let atLastCollection = 0;

/**
 * `pooled`: at a phase end, pass the backend so the freed arrays it holds for reuse (the CPU backend's
 * storage pool) are dropped first: the next phase allocates other sizes, or none (compression, packaging).
 */
export function reclaimHostMemory(pooled?: object, opts: { force?: boolean } = {}): void {
  const trim = (pooled as { trim?: unknown } | undefined)?.trim;
  if (typeof trim === 'function') trim.call(pooled);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc || typeof process === 'undefined' || typeof process.memoryUsage !== 'function') return;
  const now = process.memoryUsage().arrayBuffers;
  // force (phase ends, a few per job): growth since the last collection misses garbage that replaced live
  // arrays without net growth (TinyLlama's held-out gradients: 1.2 GB left into packaging).
  if (!opts.force && now - atLastCollection < RECLAIM_GROWTH_BYTES) {
    // Memory went down meanwhile (V8 collected on its own): measure growth from there.
    if (now < atLastCollection) atLastCollection = now;
    return;
  }
  gc();
  atLastCollection = process.memoryUsage().arrayBuffers;
}
