/**
 * Runs a row kernel (kernels.ts) over a job cut into units, on the calling thread or on the pool.
 *
 * One thread (or a job too small to be worth a wake-up): the kernel is called unit by unit on the operands
 * themselves, no copies. Several threads: the units are shared out (contiguous ranges per thread, the
 * caller takes the first); the workers' units run on copies staged into the pool's shared memory and their
 * outputs are copied back, while the calling thread runs its own units on the operands themselves. When
 * every array says which elements a range of units touches (`per` / `unitStride`), only the workers' slices
 * are staged; otherwise whole arrays are, and the caller runs its units on the staged copies too.
 * Either way each unit runs the same function on the same values, so the bits do not depend on the thread
 * count; units are cut by the caller independently of it (reductions add per-unit partials in unit order).
 */

import { KERNELS } from './kernels';
import { dispatch, MAX_UNITS, mainUnits, maxStagedBytes, rowThreadsFor, withHeap, writeRowDesc, writeRowParams } from './pool';

type Arr = Float32Array | Float64Array | Int32Array;

/** An array argument: read (in), written (out), or both. */
export interface ArrArg {
  a: Arr;
  io: 'in' | 'out' | 'inout';
  /** Added to the array's offset for unit u (per-unit partial sums): u * unitStride. Unit u touches
   *  elements [u·unitStride, (u+1)·unitStride). */
  unitStride?: number;
  /** Elements per index of the kernel's range: unit u touches [lo(u)·per, hi(u)·per). Without it (and
   *  without unitStride) any unit may touch any element (a weight vector, the targets). */
  per?: number;
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
  if (T <= 1 || stagedBytes(args) > maxStagedBytes() || !runStaged(job, k.sig, T)) runDirect(fn, args, range, 0, units);
}

/** Units [u0, u1) on the caller's own arrays. */
function runDirect(fn: (...a: unknown[]) => void, args: KernelArg[], range: RowJob['range'], u0: number, u1: number): void {
  const flat: unknown[] = [];
  const patch: [number, number][] = [];
  for (const x of args) {
    if (isArr(x)) {
      flat.push(x.a);
      if (x.unitStride) patch.push([flat.length, x.unitStride]);
      flat.push(0);
    } else flat.push(x);
  }
  for (let u = u0; u < u1; u++) {
    for (const [i, s] of patch) flat[i] = u * s;
    const [lo, hi] = range(u);
    fn(...flat, lo, hi);
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
  const fn = KERNELS[op]!.fn as unknown as (...a: unknown[]) => void;
  // The caller's units run on its own arrays when every written array has a known slice per unit.
  const sliced = (x: ArrArg) => x.unitStride !== undefined || x.per !== undefined;
  const split = units <= MAX_UNITS && args.every((x) => !isArr(x) || x.io === 'in' || sliced(x));
  const first = split ? mainUnits(units, T) : 0;
  if (split && first >= units) {
    // Only the caller would run: no staging at all.
    runDirect(fn, args, range, 0, units);
    return true;
  }
  // Elements [lo, hi) of each distinct array the staged units touch.
  const spans = new Map<Arr, { lo: number; hi: number; io: ArrArg['io'] }>();
  for (const x of args) {
    if (!isArr(x)) continue;
    let lo = 0;
    let hi = x.a.length;
    if (split) {
      if (x.unitStride !== undefined) [lo, hi] = [first * x.unitStride, units * x.unitStride];
      else if (x.per !== undefined) [lo, hi] = [range(first)[0] * x.per, range(units - 1)[1] * x.per];
    }
    const prev = spans.get(x.a);
    if (!prev) spans.set(x.a, { lo, hi, io: x.io });
    else spans.set(x.a, { lo: Math.min(prev.lo, lo), hi: Math.max(prev.hi, hi), io: prev.io === x.io ? x.io : 'inout' });
  }
  let bytes = 0;
  for (const [a, sp] of spans) bytes += Math.ceil(((sp.hi - sp.lo) * a.BYTES_PER_ELEMENT) / 16) * 16;
  return withHeap(
    bytes,
    (h) => {
      const viewOf = (a: Arr) => (a instanceof Float32Array ? h.f32 : a instanceof Float64Array ? h.f64 : h.i32);
      // Element offset of each array in the memory: element e of the array lives at off + e.
      const off = new Map<Arr, number>();
      for (const [a, sp] of spans) {
        const at = h.alloc((sp.hi - sp.lo) * a.BYTES_PER_ELEMENT) / a.BYTES_PER_ELEMENT;
        off.set(a, at - sp.lo);
        if (sp.io !== 'out') viewOf(a).set(a.subarray(sp.lo, sp.hi) as never, at);
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
      // The caller's own units, on its own arrays (the direct call's arguments).
      const mainShare = split ? (lo: number, hi: number) => runDirect(fn, args, range, lo, hi) : undefined;
      for (let u0 = 0; u0 < units; u0 += MAX_UNITS) {
        const n = Math.min(MAX_UNITS, units - u0);
        for (let u = 0; u < n; u++) {
          for (const [i, st] of patch) ints[i] = base[i]! + (u0 + u) * st;
          const [lo, hi] = range(u0 + u);
          writeRowDesc(u, op, lo, hi, ints);
        }
        dispatch(n, T, true, mainShare);
      }
      for (const [a, sp] of spans) {
        if (sp.io === 'in') continue;
        const at = off.get(a)! + sp.lo;
        a.set(viewOf(a).subarray(at, at + (sp.hi - sp.lo)) as never, sp.lo);
      }
    },
    T,
  );
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
