/**
 * Runs a row kernel (kernels.ts) over a job cut into units, on the calling thread or on the pool.
 *
 * One thread (or a job too small to be worth a wake-up): the kernel is called unit by unit on the operands
 * themselves, no copies. Several threads: the operands are staged into the pool's shared memory, the units
 * are shared out (contiguous ranges per thread, the caller takes the first), and the outputs are copied back.
 * Either way each unit runs the same function on the same values, so the bits do not depend on the thread
 * count; units are cut by the caller independently of it (reductions add per-unit partials in unit order).
 */

import { KERNELS } from './kernels';
import { dispatch, MAX_UNITS, maxStagedBytes, rowThreadsFor, withHeap, writeRowDesc, writeRowParams } from './pool';

type Arr = Float32Array | Float64Array | Int32Array;

/** An array argument: read (in), written (out), or both. */
export interface ArrArg {
  a: Arr;
  io: 'in' | 'out' | 'inout';
  /** Added to the array's offset for unit u (per-unit partial sums): u * unitStride. */
  unitStride?: number;
}

export type KernelArg = ArrArg | number;

export interface RowJob {
  op: number;
  /** Unit u covers [lo(u), hi(u)) of the kernel's range. */
  units: number;
  range: (u: number) => [number, number];
  /** Arguments in the kernel's order without the offsets of arrays and without (lo, hi): an array stands
   *  for itself and its offset; numbers are the signature's 'i' and 'd' entries. */
  args: KernelArg[];
  /** Values touched, for the threading decision. */
  work: number;
}

function isArr(x: KernelArg): x is ArrArg {
  return typeof x !== 'number';
}

export function runRows(job: RowJob): void {
  const { op, units, range, args } = job;
  const k = KERNELS[op]!;
  const fn = k.fn as unknown as (...a: unknown[]) => void;
  const T = Math.min(rowThreadsFor(job.work), units);
  if (T <= 1 || stagedBytes(job.args) > maxStagedBytes() || !runStaged(job, k.sig, T)) {
    const flat: unknown[] = [];
    const patch: [number, number][] = [];
    for (const x of args) {
      if (isArr(x)) {
        flat.push(x.a);
        if (x.unitStride) patch.push([flat.length, x.unitStride]);
        flat.push(0);
      } else flat.push(x);
    }
    for (let u = 0; u < units; u++) {
      for (const [i, s] of patch) flat[i] = u * s;
      const [lo, hi] = range(u);
      fn(...flat, lo, hi);
    }
  }
}

/** Bytes the distinct arrays take once staged. */
function stagedBytes(args: KernelArg[]): number {
  let bytes = 0;
  const seen = new Set<Arr>();
  for (const x of args) {
    if (isArr(x) && !seen.has(x.a)) {
      seen.add(x.a);
      bytes += Math.ceil(x.a.byteLength / 16) * 16;
    }
  }
  return bytes;
}

/** The pool path; false when no WebAssembly runtime exists (the caller runs the kernel itself). Jobs whose
 *  operands exceed the staging limit run on the calling thread instead (same bits, no memory ceiling). */
function runStaged(job: RowJob, sig: string, T: number): boolean {
  const { op, units, range, args } = job;
  return withHeap(stagedBytes(args), (h) => {
    // Stage every distinct array once (an array passed twice aliases, as in the direct call).
    const off = new Map<Arr, number>();
    for (const x of args) {
      if (!isArr(x) || off.has(x.a)) continue;
      const at = h.alloc(x.a.byteLength);
      const view = x.a instanceof Float32Array ? h.f32 : x.a instanceof Float64Array ? h.f64 : h.i32;
      const eo = at / x.a.BYTES_PER_ELEMENT;
      off.set(x.a, eo);
      if (x.io !== 'out') view.set(x.a, eo);
    }
    const ints: number[] = [];
    const doubles: number[] = [];
    const patch: [number, number][] = [];
    let ai = 0;
    // Walk the signature: arrays give their staged offset to the following 'i'.
    for (let c = 0; c < sig.length; c++) {
      const t = sig[c];
      const x = args[ai++]!;
      if (t === 'F' || t === 'D' || t === 'I') {
        if (!isArr(x)) throw new Error(`row kernel ${op}: argument ${ai - 1} should be an array`);
        if (x.unitStride) patch.push([ints.length, x.unitStride]);
        ints.push(off.get(x.a)!);
        c++; // its offset
      } else if (t === 'i') ints.push(x as number);
      else doubles.push(x as number);
    }
    writeRowParams(doubles);
    const base = ints.slice();
    for (let u0 = 0; u0 < units; u0 += MAX_UNITS) {
      const n = Math.min(MAX_UNITS, units - u0);
      for (let u = 0; u < n; u++) {
        for (const [i, s] of patch) ints[i] = base[i]! + (u0 + u) * s;
        const [lo, hi] = range(u0 + u);
        writeRowDesc(u, op, lo, hi, ints);
      }
      dispatch(n, T, true);
    }
    for (const x of args) {
      if (!isArr(x) || x.io === 'in') continue;
      const eo = off.get(x.a)!;
      const view = x.a instanceof Float32Array ? h.f32 : x.a instanceof Float64Array ? h.f64 : h.i32;
      x.a.set(view.subarray(eo, eo + x.a.length) as never);
    }
  });
}

/** Units of `n` values for elementwise kernels: about four per thread, whole cache lines. */
export function elementUnits(n: number, threads: number): { units: number; range: (u: number) => [number, number] } {
  const units = Math.max(1, Math.min(4 * threads, Math.ceil(n / 4096)));
  const per = Math.ceil(n / units / 16) * 16;
  return { units: Math.ceil(n / per), range: (u) => [u * per, Math.min(n, (u + 1) * per)] };
}

/** Units of `rows` rows in fixed chunks of `chunk` (chunking that must not depend on the thread count). */
export function rowUnits(rows: number, chunk: number): { units: number; range: (u: number) => [number, number] } {
  return { units: Math.max(1, Math.ceil(rows / chunk)), range: (u) => [u * chunk, Math.min(rows, (u + 1) * chunk)] };
}
