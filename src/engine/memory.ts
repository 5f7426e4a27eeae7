/**
 * Storage accounting for leak tests and diagnostics: a Backend wrapper that counts every storage the wrapped
 * backend hands out and every free. In strict mode it also throws on what would corrupt a GPU buffer pool:
 * freeing a storage twice, or passing a freed storage to any kernel. CPU tests run through it therefore
 * catch both leaks the garbage collector would hide and frees a WebGPU backend would reject.
 *
 * It wraps, rather than extends, the backends: counting stays out of the kernels, and any backend (or
 * backend-specific extras such as WebGpuBackend.flush) keeps working through the wrapper.
 */

import type { Backend, Storage } from './backend';

/** Backend methods that return fresh storage (directly or as fields of a result object). */
const ALLOCATING: ReadonlySet<string> = new Set([
  'zeros',
  'fromArray',
  'sliceCols',
  'add',
  'sub',
  'mul',
  'scale',
  'addBias',
  'sumRows',
  'sumSquares',
  'activation',
  'activationBackward',
  'matmul',
  'gather',
  'scatterAdd',
  'layerNorm',
  'layerNormBackward',
  'rmsNorm',
  'rmsNormBackward',
  'attention',
  'attentionBackward',
  'rope',
  'crossEntropy',
  'crossEntropyBackward',
]);

export interface StorageTracker {
  /** Use this backend in place of the wrapped one. */
  readonly backend: Backend;
  /** Storages allocated through the wrapper and not yet freed. */
  live(): number;
  readonly stats: { allocated: number; freed: number };
}

export interface TrackOptions {
  /** Throw on double free and on a freed storage passed to any method (what a GPU backend would reject). */
  strict?: boolean;
}

function isStorage(v: unknown): v is Storage {
  return v !== null && typeof v === 'object' && typeof (v as Storage).length === 'number' && !ArrayBuffer.isView(v) && !Array.isArray(v);
}

export function trackStorages(inner: Backend, opts: TrackOptions = {}): StorageTracker {
  const strict = opts.strict ?? false;
  const live = new Set<Storage>();
  const dead = new WeakSet<Storage>();
  const stats = { allocated: 0, freed: 0 };
  const wrappers = new Map<PropertyKey, unknown>();

  const adopt = (s: unknown): void => {
    if (isStorage(s) && !live.has(s)) {
      live.add(s);
      stats.allocated++;
    }
  };

  const wrap = (name: string, fn: (...a: unknown[]) => unknown): ((...a: unknown[]) => unknown) => {
    if (name === 'free') {
      return (s: unknown) => {
        const st = s as Storage;
        if (live.delete(st)) {
          dead.add(st);
          stats.freed++;
        } else if (dead.has(st) && strict) {
          throw new Error('free: storage freed twice (a GPU backend rejects this)');
        }
        return fn.call(inner, s);
      };
    }
    return (...args: unknown[]) => {
      if (strict) {
        for (const a of args) {
          if (isStorage(a) && dead.has(a)) throw new Error(`${name}: storage used after free()`);
        }
      }
      const r = fn.apply(inner, args);
      if (ALLOCATING.has(name)) {
        if (isStorage(r)) adopt(r);
        else if (r !== null && typeof r === 'object') for (const v of Object.values(r)) adopt(v);
      }
      return r;
    };
  };

  const backend = new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      let w = wrappers.get(prop);
      if (!w) {
        w = wrap(String(prop), v as (...a: unknown[]) => unknown);
        wrappers.set(prop, w);
      }
      return w;
    },
  });
  return { backend, live: () => live.size, stats };
}
