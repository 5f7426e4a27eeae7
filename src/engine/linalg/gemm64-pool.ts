/**
 * Multi-threaded f64 GEMM: gemm64's blocking and micro-kernel, with the column panels of C (and, when there
 * are too few of them, row blocks of each panel) shared among worker threads.
 *
 * How: one shared WebAssembly memory holds a control page, per-thread packing scratch, the operands (copied
 * in once per product) and a result area laid out as gemm64's per-panel C strips. Every thread (the caller
 * included) runs its own instance of the f64 module (buildModule64 with an imported shared memory), packs
 * with its WebAssembly `pack` and multiplies with `mk`. Work units (a panel, or a row block of one) are
 * claimed by compare-exchange on a counter tagged with the product's sequence number, so a thread slowed
 * down by another process just takes fewer units, and the caller waits for the units to be done, never for
 * a worker that has not woken up. The caller then adds the strips into C exactly as the single-threaded
 * gemm64 does.
 *
 * Determinism: a unit covers whole elements of C and every element is summed over k in the same order, by
 * the same kernel, with the same blocking (KC, and MC starting at a multiple of MC) as the single-threaded
 * path; which thread computes it cannot matter. Results are bitwise identical to gemm64 on one thread, for
 * any thread count (gemm64-pool.test.ts).
 *
 * Threads: as many as the CPU backend uses (cpuThreadsInfo().threads: `--threads`, the studio's setting;
 * 1 where the platform cannot share memory or block), unless setGemm64Threads overrides it. Workers start
 * lazily on the first large product (worker_threads in Node, Web Workers in a browser) and block in
 * Atomics.wait between products, like the CPU backend's pool. In Node the caller waits for them to start
 * (a worker boots while its creator blocks); a browser worker starts only once its creator yields, so
 * there the first products run on the caller alone.
 */
import { cpuThreadsInfo } from '../cpu/pool';
import type { Strided } from './gemm64';
import { buildModule64, KC, MC, MR, NC, NR } from './gemm64-kernel';

const PAGE = 65536;
/** 2 GiB: byte addresses stay below 2^31 (the module computes them as i32). */
const MAX_PAGES = 32768;
/** Threads in all (caller included) the pool can hold: scratch is reserved for this many. */
export const MAX_GEMM64_THREADS = 16;

// Control words (Int32 indices into page 0).
const SEQ = 0; // odd while the caller writes a product's parameters, even (and new) once they are set
const FINISHED = 1; // units of the current product done
const NTHREADS = 2;
const STOP = 3;
const NUNITS = 5;
const ERROR = 6;
const WORKER_UNITS = 7; // units done by workers since the pool started (tests, benches)
const A_BASE = 8; // byte offset of A(0, 0)
const A_RS = 9;
const A_CS = 10;
const B_BASE = 11;
const B_RS = 12;
const B_CS = 13;
const K_WORD = 14;
/** Byte offset of the 64-bit claim word: (SEQ of the product << 32) | next unclaimed unit. A claim is a
 *  compare-exchange on it, so a worker that wakes late cannot claim a unit of a later product with the
 *  parameters of an earlier one. */
const NEXT_BYTE = 96;
const READY0 = 32; // READY0 + id: worker id is ready
const UNIT0 = 64; // units: [j0, nc, ncPad, r0, r1, outByte] each
const UNIT_WORDS = 6;
const MAX_UNITS = Math.floor((PAGE / 4 - UNIT0) / UNIT_WORDS);

const A_SCRATCH = MC * KC * 8;
const SLOT_BYTES = A_SCRATCH + KC * NC * 8;
const HEAP_BASE = PAGE + MAX_GEMM64_THREADS * SLOT_BYTES;

/** Staged bytes (operands and strips) a product aims to stay under: larger ones run in row groups. The
 *  shared memory never shrinks, so this bounds what the pool keeps resident. Tests lower it. */
let STAGE_BYTES = 32 << 20;

let MIN_GROUP_ROWS = 8 * MC;

/** Tests: a small staging budget (and minimum group of `minRows` rows, a multiple of 64) exercises the row
 *  groups; returns the previous budget. */
export function setGemm64StageBytes(n: number, minRows = 8 * MC): number {
  const prev = STAGE_BYTES;
  STAGE_BYTES = n;
  MIN_GROUP_ROWS = minRows;
  return prev;
}

/** Products below this many flops (2mnk) stay single-threaded: copying the operands in and waking the
 *  workers costs more than the second core saves (measured in docs/svd.md). */
export const GEMM64_PAR_MIN_FLOPS = 2 * 192 * 192 * 192;

// Worker body, plain JS so the same text runs as a Node eval worker and a Blob-URL Web Worker; `unit`
// mirrors runUnit below (no arithmetic of its own: it only sequences pack and mk).
const WORKER_SOURCE = `
'use strict';
function run(d) {
  const ex = new WebAssembly.Instance(d.module, { env: { mem: d.memory } }).exports;
  const mk = ex.mk, pack = ex.pack;
  const c = new Int32Array(d.memory.buffer, 0, ${PAGE / 4});
  const id = d.id, sA = d.scratch, sB = d.scratch + ${A_SCRATCH};
  const n64 = new BigUint64Array(d.memory.buffer, ${NEXT_BYTE}, 1);
  const ld = (i) => Atomics.load(c, i);
  function unit(u, A, aRs, aCs, B, bRs, bCs, K) {
    const b = ${UNIT0} + u * ${UNIT_WORDS};
    const j0 = c[b], nc = c[b + 1], ncPad = c[b + 2], r0 = c[b + 3], r1 = c[b + 4], out = c[b + 5];
    for (let p0 = 0; p0 < K; p0 += ${KC}) {
      const kc = Math.min(${KC}, K - p0);
      pack(B + 8 * (p0 * bRs + j0 * bCs), bCs, bRs, sB, nc, ncPad, kc);
      for (let i0 = r0; i0 < r1; i0 += ${MC}) {
        const mc = Math.min(${MC}, r1 - i0);
        const mcPad = Math.ceil(mc / ${MR}) * ${MR};
        pack(A + 8 * (i0 * aRs + p0 * aCs), aRs, aCs, sA, mc, mcPad, kc);
        mk(sA, sB, out + 8 * i0 * ncPad, mcPad, ncPad, kc, p0 === 0 ? 0 : 1);
      }
    }
  }
  let seen = Atomics.load(c, ${SEQ});
  Atomics.store(c, ${READY0} + id, 1);
  Atomics.notify(c, ${READY0} + id);
  for (;;) {
    let s = Atomics.load(c, ${SEQ});
    for (let i = 0; s === seen && i < 4000; i++) s = Atomics.load(c, ${SEQ});
    if (s === seen) { Atomics.wait(c, ${SEQ}, seen); continue; }
    seen = s;
    if (ld(${STOP})) return;
    if (s & 1) continue;
    const T = ld(${NTHREADS}), U = ld(${NUNITS});
    const A = ld(${A_BASE}), aRs = ld(${A_RS}), aCs = ld(${A_CS}), B = ld(${B_BASE}), bRs = ld(${B_RS}), bCs = ld(${B_CS}), K = ld(${K_WORD});
    if (ld(${SEQ}) !== s || id >= T) continue;
    const tag = BigInt(s >>> 0) << 32n;
    for (;;) {
      const v = Atomics.load(n64, 0);
      if ((v >> 32n) << 32n !== tag) break;
      const u = Number(v & 0xffffffffn);
      if (u >= U) break;
      if (Atomics.compareExchange(n64, 0, v, v + 1n) !== v) continue;
      try {
        unit(u, A, aRs, aCs, B, bRs, bCs, K);
      } catch (e) {
        Atomics.store(c, ${ERROR}, 1);
      }
      Atomics.add(c, ${WORKER_UNITS}, 1);
      Atomics.add(c, ${FINISHED}, 1);
      Atomics.notify(c, ${FINISHED});
    }
  }
}
if (typeof require === 'function') run(require('node:worker_threads').workerData);
else self.onmessage = (e) => run(e.data);
`;

type Fn7 = (a: number, b: number, c: number, d: number, e: number, f: number, g: number) => void;

interface WorkerLike {
  terminate(): unknown;
}

interface Pool {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  mk: Fn7;
  pack: Fn7;
  ctrl: Int32Array;
  workers: WorkerLike[];
}

let pool: Pool | null | undefined;
let override: number | null = null;
/** Why the pool could not start (null while it can). */
let reason: string | null = null;

type WorkerThreads = typeof import('node:worker_threads');
let nodeWt: WorkerThreads | null = null;

function isNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
}

// Node: worker_threads is only reachable through a dynamic import, and products are synchronous; load it
// as soon as this module is, so it is there by the first large product.
const nodeWtReady: Promise<void> = isNode()
  ? (async () => {
      try {
        const name = 'node:worker_threads';
        nodeWt = (await import(/* @vite-ignore */ name)) as WorkerThreads;
      } catch {
        nodeWt = null;
      }
    })()
  : Promise.resolve();

/** Threads f64 products use from now on (null: follow the CPU backend's thread count); tests and benches. */
export function setGemm64Threads(n: number | null): void {
  if (n !== null && !(Number.isInteger(n) && n >= 1 && n <= MAX_GEMM64_THREADS)) {
    throw new Error(`gemm64 threads: expected an integer in 1..${MAX_GEMM64_THREADS}, got ${n}`);
  }
  override = n;
}

/** Threads an f64 product of the current setting asks for. */
export function gemm64ThreadsWanted(): number {
  const n = override ?? cpuThreadsInfo().threads;
  return Math.max(1, Math.min(MAX_GEMM64_THREADS, n));
}

/** Threads a large f64 product runs on now, why fewer than wanted (null if none), and how many work units
 *  the workers (not the caller) have computed so far. */
export function gemm64ThreadsInfo(): { wanted: number; ready: number; reason: string | null; workerUnits: number } {
  return {
    wanted: gemm64ThreadsWanted(),
    ready: pool ? 1 + readyWorkers(pool) : 1,
    reason,
    workerUnits: pool ? Atomics.load(pool.ctrl, WORKER_UNITS) : 0,
  };
}

function makePool(): Pool | null {
  if (pool !== undefined) return pool;
  pool = null;
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') {
    reason = 'SharedArrayBuffer is unavailable';
    return null;
  }
  try {
    const initial = Math.ceil(HEAP_BASE / PAGE);
    const memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true });
    const module = new WebAssembly.Module(buildModule64({ shared: { initial, maximum: MAX_PAGES } }));
    const ex = new WebAssembly.Instance(module, { env: { mem: memory } }).exports;
    pool = { memory, module, mk: ex.mk as Fn7, pack: ex.pack as Fn7, ctrl: new Int32Array(memory.buffer, 0, PAGE / 4), workers: [] };
  } catch (e) {
    reason = `shared WebAssembly memory is unavailable (${(e as Error).message})`;
    pool = null;
  }
  return pool;
}

function readyWorkers(p: Pool): number {
  let n = 0;
  while (n < p.workers.length && Atomics.load(p.ctrl, READY0 + n + 1) === 1) n++;
  return n;
}

/** Starts workers up to `threads` in all; in Node waits (blocking) up to 10 s for them to be ready. */
function spawn(p: Pool, threads: number): void {
  const start = p.workers.length + 1;
  if (start >= threads) return;
  try {
    for (let id = start; id < threads; id++) {
      const data = { memory: p.memory, module: p.module, id, scratch: PAGE + id * SLOT_BYTES };
      if (isNode()) {
        if (!nodeWt) return; // worker_threads still loading: this product runs with the workers it has
        const w = new nodeWt.Worker(WORKER_SOURCE, { eval: true, workerData: data });
        w.unref(); // an idle pool must not keep the process alive
        p.workers.push(w);
      } else {
        if (typeof Worker === 'undefined') {
          reason = 'Web Workers are unavailable here';
          return;
        }
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        const w = new Worker(url);
        w.postMessage(data);
        p.workers.push(w);
      }
    }
  } catch (e) {
    reason = `workers could not start (${(e as Error).message})`;
    return;
  }
  if (!isNode()) return;
  const t0 = Date.now();
  for (let id = start; id < threads; id++) {
    const left = 10_000 - (Date.now() - t0);
    if (left <= 0 || Atomics.wait(p.ctrl, READY0 + id, 0, left) === 'timed-out') break;
  }
}

/** Starts the workers for `threads` threads and resolves once they are ready (tests, benches). */
export async function startGemm64Threads(threads: number): Promise<number> {
  await nodeWtReady;
  const p = makePool();
  if (!p) return 1;
  spawn(p, Math.min(threads, MAX_GEMM64_THREADS));
  const t0 = Date.now();
  while (1 + readyWorkers(p) < threads && p.workers.length + 1 >= threads && Date.now() - t0 < 20_000) {
    await new Promise((res) => setTimeout(res, 2));
  }
  return 1 + readyWorkers(p);
}

/** Stops the workers (tests); the next large product starts them again. */
export function stopGemm64Threads(): void {
  const p = pool;
  if (!p) return;
  Atomics.store(p.ctrl, STOP, 1);
  Atomics.add(p.ctrl, SEQ, 2);
  Atomics.notify(p.ctrl, SEQ);
  for (const w of p.workers) void w.terminate();
  pool = undefined;
}

/** Element range [lo, hi) of `data` that an operand with rows x cols elements reads. */
function span(X: Strided, rows: number, cols: number): [number, number] {
  return [X.off, X.off + (rows - 1) * X.rs + (cols - 1) * X.cs + 1];
}

function copyIn(f64: Float64Array, at: number, data: ArrayLike<number>, lo: number, hi: number): void {
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    f64.set((data as unknown as Float64Array).subarray(lo, hi), at);
  } else {
    for (let i = lo; i < hi; i++) f64[at + i - lo] = data[i]!;
  }
}

/**
 * gemm64's product on the pool. Returns false (having done nothing) when it should run single-threaded:
 * fewer than 2 threads wanted or ready, a small product, strides it cannot address, or operands too big
 * for the 2 GiB memory. C's window has already been zeroed unless accumulating.
 */
export function gemm64Parallel(
  A: Strided,
  B: Strided,
  C: Float64Array,
  cOff: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  upper: boolean,
): boolean {
  const want = gemm64ThreadsWanted();
  if (want < 2 || 2 * m * n * k < GEMM64_PAR_MIN_FLOPS) return false;
  if (!(A.rs >= 0 && A.cs >= 0 && B.rs >= 0 && B.cs >= 0)) return false;
  const p = makePool();
  if (!p) return false;
  if (p.workers.length + 1 < want && reason === null) spawn(p, want); // after a failed start, no retries
  const T = Math.min(want, 1 + readyWorkers(p));
  if (T < 2) return false;

  // Layout: B (the union of A and B when they read the same array, as in the Gram), then A's rows of one
  // row group, then that group's strips. Groups keep the staged bytes near STAGE_BYTES: the memory keeps
  // its largest size for good, and a product as big as GradOT's G·W (113 MB) would otherwise stay resident.
  const [aLo, aHi] = span(A, m, k);
  const [bLo, bHi] = span(B, k, n);
  const same = A.data === B.data;
  const lo = same ? Math.min(aLo, bLo) : bLo;
  const hi = same ? Math.max(aHi, bHi) : bHi;
  const bBytes = 8 * (hi - lo);
  const panels = Math.ceil(n / NC);
  if (2 * panels + 3 * T > MAX_UNITS) return false;
  const nPad = Math.ceil(n / NR) * NR;
  const outBytes = (rows: number) => 8 * (rows + MR) * nPad;
  let g = m;
  let gatherA = false;
  if (!same && bBytes + 8 * (aHi - aLo) + outBytes(m) > STAGE_BYTES) {
    // At least MIN_GROUP_ROWS rows: every group re-reads all of B while packing it, so when B alone is
    // near the budget (2048x5632), 64-row groups would cost more memory traffic than they save.
    g = Math.max(MIN_GROUP_ROWS, Math.floor((STAGE_BYTES - bBytes) / (8 * (k + nPad)) / MC) * MC);
    if (g >= m) g = m;
    else gatherA = A.cs !== 1;
  }
  const aBytes = same ? 0 : g === m ? 8 * (aHi - aLo) : gatherA ? 8 * g * k : 8 * ((g - 1) * A.rs + k);
  const total = HEAP_BASE + bBytes + aBytes + outBytes(g) + 64;
  if (total > MAX_PAGES * PAGE) return false;
  const have = p.memory.buffer.byteLength;
  if (total > have) {
    try {
      p.memory.grow(Math.ceil((total - have) / PAGE));
    } catch {
      return false;
    }
  }

  const f64 = new Float64Array(p.memory.buffer);
  const bArea = HEAP_BASE;
  const aArea = bArea + bBytes;
  const outArea = aArea + aBytes;
  copyIn(f64, bArea / 8, same ? A.data : B.data, lo, hi);
  const bAddr = bArea + 8 * (B.off - lo);
  for (let R0 = 0; R0 < m; R0 += g) {
    const R1 = Math.min(m, R0 + g);
    // A(i, p) is at aAddr + 8·(i·aRs + p·aCs) for i in [R0, R1).
    let aAddr: number;
    let aRs = A.rs;
    let aCs = A.cs;
    if (same) {
      aAddr = bArea + 8 * (A.off - lo);
    } else if (g === m) {
      copyIn(f64, aArea / 8, A.data, aLo, aHi);
      aAddr = aArea;
    } else if (!gatherA) {
      const from = A.off + R0 * A.rs;
      copyIn(f64, aArea / 8, A.data, from, from + (R1 - R0 - 1) * A.rs + k);
      aAddr = aArea - 8 * R0 * A.rs;
    } else {
      gatherRows(f64, aArea / 8, A, R0, R1, k);
      aRs = k;
      aCs = 1;
      aAddr = aArea - 8 * R0 * k;
    }
    // Units: whole panels, or row blocks (multiples of MC) when there are too few panels for the threads.
    const chunks = panels >= 3 * T ? 1 : Math.ceil((3 * T) / panels);
    const rowBlock = Math.max(MC, Math.ceil(Math.ceil((R1 - R0) / chunks) / MC) * MC);
    const units: number[] = [];
    let outAt = outArea;
    for (let q = 0; q < panels; q++) {
      const j0 = q * NC;
      const nc = Math.min(NC, n - j0);
      const ncPad = Math.ceil(nc / NR) * NR;
      const e = Math.min(R1, upper ? Math.min(m, j0 + nc) : m);
      if (e <= R0) continue;
      const base = outAt - 8 * R0 * ncPad; // strip row r (global) at base + 8·r·ncPad
      for (let r0 = R0; r0 < e; r0 += rowBlock) units.push(j0, nc, ncPad, r0, Math.min(e, r0 + rowBlock), base);
      outAt += 8 * Math.ceil((e - R0) / MR) * MR * ncPad;
    }
    if (units.length === 0) continue;
    runJob(p, units, [aAddr, aRs, aCs, bAddr, B.rs, B.cs, k], T);
    // C (+)= strips, element by element, exactly as gemm64 adds its strip per panel.
    const out = new Float64Array(p.memory.buffer);
    for (let b = 0; b < units.length; b += UNIT_WORDS) {
      const j0 = units[b]!,
        nc = units[b + 1]!,
        ncPad = units[b + 2]!,
        r0 = units[b + 3]!,
        r1 = units[b + 4]!,
        base = units[b + 5]! / 8;
      for (let r = r0; r < r1; r++) {
        const co = cOff + r * ldc + j0;
        const bo = base + r * ncPad;
        for (let col = 0; col < nc; col++) C[co + col]! += out[bo + col]!;
      }
    }
  }
  return true;
}

/** Copies rows [R0, R1) of a strided A into a dense row-major [R1 - R0, k] block at element `at`, reading
 *  along A's smaller stride. A copy: the packed values, hence the products, are the same. */
function gatherRows(f64: Float64Array, at: number, A: Strided, R0: number, R1: number, k: number): void {
  const d = A.data;
  const rows = R1 - R0;
  if (A.rs <= A.cs) {
    for (let q = 0; q < k; q++) {
      const src = A.off + R0 * A.rs + q * A.cs;
      for (let i = 0; i < rows; i++) f64[at + i * k + q] = d[src + i * A.rs]!;
    }
  } else {
    for (let i = 0; i < rows; i++) {
      const src = A.off + (R0 + i) * A.rs;
      for (let q = 0; q < k; q++) f64[at + i * k + q] = d[src + q * A.cs]!;
    }
  }
}

/** Publishes one job (units and [A, aRs, aCs, B, bRs, bCs, K]), takes the caller's share, and returns
 *  once every unit is done. */
function runJob(p: Pool, units: number[], prm: number[], T: number): void {
  const U = units.length / UNIT_WORDS;
  // Publish: SEQ odd, parameters, a claim word tagged with the new SEQ, then SEQ even.
  const c = p.ctrl;
  const seq = (Atomics.load(c, SEQ) + 2) | 0;
  Atomics.store(c, SEQ, seq - 1);
  for (let t = 0; t < units.length; t++) c[UNIT0 + t] = units[t]!;
  const words = [A_BASE, A_RS, A_CS, B_BASE, B_RS, B_CS, K_WORD];
  for (let t = 0; t < words.length; t++) Atomics.store(c, words[t]!, prm[t]!);
  Atomics.store(c, NUNITS, U);
  Atomics.store(c, NTHREADS, T);
  Atomics.store(c, FINISHED, 0);
  Atomics.store(c, ERROR, 0);
  const next = new BigUint64Array(p.memory.buffer, NEXT_BYTE, 1);
  Atomics.store(next, 0, BigInt(seq >>> 0) << 32n);
  Atomics.store(c, SEQ, seq);
  Atomics.notify(c, SEQ);

  // The caller's share (claimed like a worker's), then wait until every unit is done: a worker that has
  // not woken up by then is not waited for.
  let failure: unknown = null;
  for (;;) {
    const v = Atomics.load(next, 0);
    const u = Number(v & 0xffffffffn);
    if (u >= U) break;
    if (Atomics.compareExchange(next, 0, v, v + 1n) !== v) continue;
    try {
      runUnit(p, c, u, PAGE);
    } catch (e) {
      failure ??= e;
    }
    Atomics.add(c, FINISHED, 1);
  }
  let d = Atomics.load(c, FINISHED);
  for (let i = 0; d < U && i < 4000; i++) d = Atomics.load(c, FINISHED);
  while (d < U) {
    Atomics.wait(c, FINISHED, d, 1000);
    d = Atomics.load(c, FINISHED);
  }
  if (failure) throw failure;
  if (Atomics.load(c, ERROR)) throw new Error('gemm64: a worker thread failed on its share of the product');
}

/** The caller's copy of the worker's `unit` (same sequence of pack and mk calls), on the caller's scratch. */
function runUnit(p: Pool, c: Int32Array, u: number, scratch: number): void {
  const A = c[A_BASE]!,
    aRs = c[A_RS]!,
    aCs = c[A_CS]!,
    B = c[B_BASE]!,
    bRs = c[B_RS]!,
    bCs = c[B_CS]!,
    K = c[K_WORD]!;
  const sA = scratch,
    sB = scratch + A_SCRATCH;
  const b = UNIT0 + u * UNIT_WORDS;
  const j0 = c[b]!,
    nc = c[b + 1]!,
    ncPad = c[b + 2]!,
    r0 = c[b + 3]!,
    r1 = c[b + 4]!,
    out = c[b + 5]!;
  for (let p0 = 0; p0 < K; p0 += KC) {
    const kc = Math.min(KC, K - p0);
    p.pack(B + 8 * (p0 * bRs + j0 * bCs), bCs, bRs, sB, nc, ncPad, kc);
    for (let i0 = r0; i0 < r1; i0 += MC) {
      const mc = Math.min(MC, r1 - i0);
      const mcPad = Math.ceil(mc / MR) * MR;
      p.pack(A + 8 * (i0 * aRs + p0 * aCs), aRs, aCs, sA, mc, mcPad, kc);
      p.mk(sA, sB, out + 8 * i0 * ncPad, mcPad, ncPad, kc, p0 === 0 ? 0 : 1);
    }
  }
}
