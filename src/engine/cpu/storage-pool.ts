/**
 * A size-keyed free list of typed arrays for the CPU backend: `free()` hands a tensor's array back and the
 * next op that needs that many elements takes it, instead of allocating a fresh one.
 *
 * Why: a CPU tensor is a typed array whose memory returns only when V8 collects its small wrapper. At real
 * sizes a step frees memory far faster than the collector runs, so freed activations pile up (about 1.2 GB
 * in the Qwen2.5-0.5B-shaped build's evaluation), and every fresh array above glibc's mmap threshold is a
 * fresh mapping whose pages the kernel must fault in and zero (about 14 M page faults, 56 GB, in the
 * gpt2-shaped compress). A transformer's steps allocate the same few sizes over and over, so exact sizes
 * are enough: most allocations after the first batch are hits.
 *
 * Bounds, so that the pool never raises the peak: it holds at most `maxBytes`; giving back past that drops
 * the oldest arrays (to the garbage collector, where they would all have gone without a pool), and an array
 * bigger than the cap is never kept. A miss (the op allocates fresh) drops as many bytes of the oldest
 * arrays, so arrays of sizes no longer in use leave as new ones arrive. `trim()` drops everything (phase
 * ends).
 *
 * Only whole arrays the backend itself allocated may enter (the backend checks; see CpuBackend.free):
 * never views, and never arrays owned by a model or loader.
 *
 * Debug mode (`poison`): arrays are filled with NaN when given back and fresh arrays start as NaN instead
 * of 0, so a read through an array kept past its storage's free(), or an op that relies on a fresh array
 * being zero, turns into NaN, which every job stops on. On by default under Vitest.
 */

import type { FloatArray } from '../backend';

export interface StoragePoolOptions {
  /** Most bytes held at once (default DEFAULT_POOL_BYTES). */
  maxBytes?: number;
  /** Fill arrays with NaN when given back (debug: makes a use after free loud). */
  poison?: boolean;
  /** Drop held bytes as misses allocate fresh ones (default true; see take). */
  drainOnMiss?: boolean;
}

/** Default cap: a quarter of the default job memory budget (1 GiB). */
export const DEFAULT_POOL_BYTES = 256 * 2 ** 20;

export interface StoragePoolStats {
  /** take() calls answered from the pool. */
  hits: number;
  /** take() calls that found nothing of that size. */
  misses: number;
  /** Arrays accepted by give(). */
  kept: number;
  /** Arrays dropped: over the cap on give(), evicted for room, or trimmed. */
  dropped: number;
}

/** Whether the pool is on and in debug mode, from the environment (GRADOT_POOL=0 turns it off; the debug
 *  mode is GRADOT_POOL_DEBUG=1, and on under Vitest unless GRADOT_POOL_DEBUG=0; GRADOT_POOL_DRAIN=0 keeps
 *  held arrays on misses, for measuring). */
export function poolSettingsFromEnv(): { enabled: boolean; poison: boolean; drainOnMiss: boolean } {
  const env = typeof process !== 'undefined' && process.env ? process.env : {};
  const enabled = env.GRADOT_POOL !== '0';
  const debug = env.GRADOT_POOL_DEBUG;
  const poison = debug === '1' || (debug !== '0' && env.VITEST !== undefined);
  return { enabled, poison, drainOnMiss: env.GRADOT_POOL_DRAIN !== '0' };
}

/** Counters summed over every pool of the process, printed at exit under GRADOT_MEMTRACE=1. */
const totals: StoragePoolStats & { peakBytes: number } = { hits: 0, misses: 0, kept: 0, dropped: 0, peakBytes: 0 };
let traceHooked = false;

function hookTrace(): void {
  if (traceHooked || typeof process === 'undefined' || !process.env?.GRADOT_MEMTRACE || typeof process.once !== 'function') return;
  traceHooked = true;
  process.once('exit', () => {
    const t = totals;
    process.stderr.write(
      `memtrace storage pool: ${t.hits} hits, ${t.misses} misses, ${t.kept} kept, ${t.dropped} dropped, peak held ${Math.round(t.peakBytes / 2 ** 20)} MiB\n`,
    );
  });
}

export class StoragePool {
  readonly maxBytes: number;
  readonly poison: boolean;
  readonly drainOnMiss: boolean;
  readonly stats: StoragePoolStats = { hits: 0, misses: 0, kept: 0, dropped: 0 };
  /** Element count -> arrays of that length, oldest first. */
  private readonly buckets = new Map<number, FloatArray[]>();
  /** Every held array, oldest first (a Set keeps insertion order): the eviction order. */
  private readonly order = new Set<FloatArray>();
  private held = 0;
  /** Bytes allocated fresh on misses and not yet matched by dropped arrays (see take). */
  private debt = 0;

  constructor(opts: StoragePoolOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_POOL_BYTES;
    this.poison = opts.poison ?? false;
    this.drainOnMiss = opts.drainOnMiss ?? true;
    if (!(this.maxBytes >= 0)) throw new RangeError(`StoragePool: maxBytes must be >= 0 (got ${this.maxBytes})`);
    hookTrace();
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.held;
  }

  /** Arrays held now. */
  get size(): number {
    return this.order.size;
  }

  /** An array of exactly n elements from the pool (contents: whatever its last user left, or NaN in debug
   *  mode), or null. */
  take(n: number): FloatArray | null {
    const bucket = this.buckets.get(n);
    const a = bucket?.pop();
    if (!a) {
      this.stats.misses++;
      totals.misses++;
      // The caller allocates n fresh elements instead: as many bytes of the oldest held arrays go, so when
      // the sizes in use change the pool drains as fast as new memory is taken. Counted as a debt that
      // whole arrays pay off, so a small miss never drops a large array at once.
      if (this.order.size === 0 || !this.drainOnMiss) return null;
      const first = this.order.values().next().value!;
      this.debt += n * first.BYTES_PER_ELEMENT;
      while (this.order.size > 0 && this.order.values().next().value!.byteLength <= this.debt) this.debt -= this.evictOldest();
      return null;
    }
    if (bucket!.length === 0) this.buckets.delete(n);
    this.order.delete(a);
    this.held -= a.byteLength;
    this.stats.hits++;
    totals.hits++;
    return a;
  }

  /** Keeps `a` for reuse (the caller gives up every reference to it); false when it is dropped instead. */
  give(a: FloatArray): boolean {
    if (a.length === 0 || a.byteLength > this.maxBytes) {
      this.stats.dropped++;
      totals.dropped++;
      return false;
    }
    if (this.poison) a.fill(Number.NaN);
    let bucket = this.buckets.get(a.length);
    if (!bucket) {
      bucket = [];
      this.buckets.set(a.length, bucket);
    }
    bucket.push(a);
    this.order.add(a);
    this.held += a.byteLength;
    this.stats.kept++;
    totals.kept++;
    while (this.held > this.maxBytes) this.evictOldest();
    if (this.held > totals.peakBytes) totals.peakBytes = this.held;
    return true;
  }

  /** Drops every held array (to the garbage collector). */
  trim(): void {
    this.debt = 0;
    this.stats.dropped += this.order.size;
    totals.dropped += this.order.size;
    this.buckets.clear();
    this.order.clear();
    this.held = 0;
  }

  /** Drops the oldest held array; returns its bytes. */
  private evictOldest(): number {
    const a = this.order.values().next().value as FloatArray;
    this.order.delete(a);
    // The oldest array overall is the oldest of its own bucket (both lists are in insertion order).
    const bucket = this.buckets.get(a.length)!;
    bucket.shift();
    if (bucket.length === 0) this.buckets.delete(a.length);
    this.held -= a.byteLength;
    this.stats.dropped++;
    totals.dropped++;
    return a.byteLength;
  }
}
