/**
 * The CPU backend's f32 runtime: one WebAssembly memory holding per-thread packing scratch and the operands
 * of the current job, the GEMM module (simd.ts) instantiated against it, and, where the platform allows, a
 * pool of workers (worker_threads in Node, Web Workers in a browser) that instantiate the same module
 * against the same memory (`shared: true`). Besides GEMM descriptors, a job can be a list of row-kernel
 * descriptors (kernels.ts: activations, norms, cross-entropy, attention's softmax, AdamW), which the workers run
 * as JS over the same memory.
 *
 * Why this shape: the engine's ops are synchronous, so a product cannot await workers. The calling thread
 * writes job descriptors into the shared memory, bumps a sequence word (Atomics.notify), computes its own
 * share, then Atomics.wait()s for the others. Atomics.wait is allowed in Node's main thread and in Web Workers
 * (where the studio's engine runs), not on a page's main thread; there the pool stays at one thread and says
 * why.
 *
 * Determinism: every job descriptor covers whole output elements (rows or columns of C), and the module's
 * summation order per element does not depend on the split, so results are bitwise identical for any thread
 * count (tested in threads.test.ts).
 */

import { KERNELS } from './kernels';
import { DESC_WORDS, SCRATCH_BYTES, buildGemmModule, enableRelaxedSimdInNode, relaxedSimdSupported, simdSupported } from './simd';

/** Control words at the start of the memory (Int32 indices). */
const SEQ = 0; // bumped once per job
const DONE = 1; // workers that finished the current job
const NUNITS = 2;
const NTHREADS = 3;
const STOP = 4;
const KERNEL = 5; // 1: relaxed-SIMD instance, 0: plain SIMD
const ERROR = 6; // set by a worker whose share threw
const MODE = 7; // 0: GEMM descriptors, 1: row-kernel descriptors (kernels.ts)
const WORKER_SPIN = 8; // microseconds an idle worker polls before sleeping (setCpuSpin)
const READY0 = 16; // READY0 + id: worker id has instantiated the module
/**
 * Polling before sleeping (setCpuSpin). A thread asleep in Atomics.wait takes tens to hundreds of
 * microseconds to wake (a futex wake, slower in a virtual machine), and a dispatch can pay that twice: the
 * worker's start and the caller's resume; a training step makes ~300 dispatches. Polling for a while before
 * sleeping hides that when the cores are free, but on a shared machine it backfires: with a load average of
 * 7-10 on 2 cores, polling for 0.3-2 ms made the 2-thread training step 1.7-4x slower than sleeping at once
 * (the pollers lose their scheduling priority to the other processes). So polling is gated: in 'auto' mode
 * it runs only while other processes leave the cores idle, measured in Node from /proc every SPIN_CHECK_MS
 * (system-wide busy CPU minus this process's own); elsewhere (a browser) threads sleep at once. A poll that
 * finds it was not running for PREEMPTED_MS (the core went to another process) sleeps at once too.
 */
let workerSpinMs = 0.5;
let callerSpinMs = 0.5;
/** GRADOT_CPU_SPIN=auto|on|off sets the default (Node), for measuring one against another. */
const envSpin = typeof process !== 'undefined' ? process.env?.GRADOT_CPU_SPIN : undefined;
let spinMode: 'auto' | 'on' | 'off' = envSpin === 'on' || envSpin === 'off' ? envSpin : 'auto';
/** Whether polling runs now (mode 'on', or 'auto' with idle cores). */
let spinning = false;
const PREEMPTED_MS = 0.05;
/** Polling even when off: ~10 us catches a job dispatched right after the last (consecutive descriptor
 *  batches) without a sleep, as the earlier fixed 4000 polls did. */
const MIN_POLL_MS = 0.01;
const SPIN_CHECK_MS = 250;
/** Other processes' CPU (in cores) under which the cores count as idle. */
const IDLE_BELOW_CORES = 0.25;
const MAX_THREADS = 32;
/** Byte offset of the dispatch's f64 parameter block (row kernels' doubles: eps, scale). */
const PARAM_BASE = 8 * Math.ceil((4 * (READY0 + MAX_THREADS + 1)) / 8);
const PARAM_COUNT = 8;
const DESC_BASE = PARAM_BASE + 8 * PARAM_COUNT;
/** Words per descriptor slot: a GEMM reads the first DESC_WORDS; a row kernel [op, lo, hi, ints...]. */
const UNIT_WORDS = 16;
const DESC_BYTES = 4 * UNIT_WORDS;
/** Job descriptors per dispatch (one 64 KiB page holds the control block and these). */
export const MAX_UNITS = Math.floor((65536 - DESC_BASE) / DESC_BYTES);
const SCRATCH_BASE = 65536;
const PAGE = 65536;
/** 2 GiB: byte addresses stay below 2^31 (the module compares them as i32). */
const MAX_PAGES = 32768;
let stagedLimit = 1 << 30;

/** Operands staged per dispatch at most (bytes); matmul.ts splits bigger products (rows or batch entries). */
export function maxStagedBytes(): number {
  return stagedLimit;
}

/** Tests: a small limit exercises the split path; returns the previous limit. */
export function setMaxStagedBytes(n: number): number {
  const prev = stagedLimit;
  stagedLimit = n;
  return prev;
}

export type CpuKernel = 'wasm-relaxed-simd' | 'wasm-simd' | 'js';

export interface CpuThreadsInfo {
  /** Threads an f32 product runs on now (1 = the calling thread only). */
  threads: number;
  /** Threads asked for (setting / --threads / default). */
  requested: number;
  /** Why threads < requested (no SharedArrayBuffer, not cross-origin isolated, Atomics.wait not allowed,
   *  workers unavailable), else null. */
  reason: string | null;
  /** Which f32 kernel runs. */
  kernel: CpuKernel;
  /** Whether this runtime has Relaxed SIMD (FMA) at all. */
  relaxedAvailable: boolean;
}

type GemmFn = (desc: number, scratch: number) => void;

interface WorkerLike {
  terminate(): unknown;
}

interface Runtime {
  memory: WebAssembly.Memory;
  /** Compiled once, handed to every worker (a Module is shareable between threads). */
  modules: { simd: WebAssembly.Module; relaxed: WebAssembly.Module | null };
  shared: boolean;
  gemm: { relaxed: GemmFn | null; simd: GemmFn };
  ctrl: Int32Array;
  workers: WorkerLike[];
  /** Threads whose scratch exists (1 + workers). */
  slots: number;
  heapBase: number;
  f32: Float32Array;
  i32: Int32Array;
  f64: Float64Array;
}

let rt: Runtime | null | undefined;
let requested = 1;
let active = 1;
let reason: string | null = null;
let kernelChoice: 'auto' | 'simd' | 'js' = 'auto';
let initialised = false;

/**
 * Runs row-kernel descriptor `base` (an Int32 index into the memory): [op, lo, hi, ints...], arguments laid
 * out by the kernel's signature (kernels.ts). Self-contained: the workers run this same function's text.
 */
function runUnit(
  KF: readonly ((...a: never[]) => void)[],
  KS: readonly string[],
  F: Float32Array,
  D: Float64Array,
  I: Int32Array,
  base: number,
  pBase: number,
): void {
  const op = I[base]!;
  const sig = KS[op]!;
  const args: unknown[] = [];
  let w = base + 3;
  let p = pBase;
  for (let c = 0; c < sig.length; c++) {
    const t = sig.charCodeAt(c);
    // F, D, I: the memory as f32 / f64 / i32; i: a descriptor word; d: a parameter double.
    args.push(t === 70 ? F : t === 68 ? D : t === 73 ? I : t === 105 ? I[w++] : D[p++]);
  }
  args.push(I[base + 1], I[base + 2]);
  (KF[op] as (...a: unknown[]) => void)(...args);
}

const KERNEL_FNS = KERNELS.map((k) => k.fn as unknown as (...a: never[]) => void);
const KERNEL_SIGS = KERNELS.map((k) => k.sig as string);

// Worker body: plain JS so that the same text runs as a Node eval worker and as a Blob-URL Web Worker, with
// no bundler or TypeScript loader involved. GEMMs run in the WebAssembly module it is handed; row kernels
// are the text of kernels.ts's functions (and of runUnit), embedded here, so a worker runs exactly the code
// the calling thread runs.
const WORKER_SOURCE = `
'use strict';
const KF = [${KERNELS.map((k) => `(${k.fn.toString()})`).join(',\n')}];
const KS = ${JSON.stringify(KERNEL_SIGS)};
const runUnit = (${runUnit.toString()});
function run(d) {
  const env = { env: { mem: d.memory } };
  const simd = new WebAssembly.Instance(d.simd, env).exports.gemm;
  const relaxed = d.relaxed ? new WebAssembly.Instance(d.relaxed, env).exports.gemm : null;
  const ctrl = new Int32Array(d.memory.buffer, 0, ${READY0 + MAX_THREADS + 1});
  let F = null, D = null, I = null;
  const id = d.id;
  let seen = Atomics.load(ctrl, ${SEQ});
  Atomics.store(ctrl, ${READY0} + id, 1);
  for (;;) {
    let s = Atomics.load(ctrl, ${SEQ});
    if (s === seen) {
      const t0 = performance.now();
      const spin = Math.max(${MIN_POLL_MS}, Atomics.load(ctrl, ${WORKER_SPIN}) / 1000);
      let last = t0;
      for (let i = 1; s === seen; i++) {
        s = Atomics.load(ctrl, ${SEQ});
        if ((i & 63) === 0) {
          const now = performance.now();
          if (now - last > ${PREEMPTED_MS} || now - t0 > spin) break;
          last = now;
        }
      }
    }
    if (s === seen) { Atomics.wait(ctrl, ${SEQ}, seen); continue; }
    seen = s;
    if (Atomics.load(ctrl, ${STOP})) return;
    const T = Atomics.load(ctrl, ${NTHREADS});
    if (id >= T) continue;
    const U = Atomics.load(ctrl, ${NUNITS});
    const g = Atomics.load(ctrl, ${KERNEL}) && relaxed ? relaxed : simd;
    const rows = Atomics.load(ctrl, ${MODE}) === 1;
    try {
      const hi = Math.floor(((id + 1) * U) / T);
      if (rows) {
        const buf = d.memory.buffer;
        if (!F || F.byteLength !== buf.byteLength) { F = new Float32Array(buf); D = new Float64Array(buf); I = new Int32Array(buf); }
        for (let u = Math.floor((id * U) / T); u < hi; u++) runUnit(KF, KS, F, D, I, (${DESC_BASE} + u * ${DESC_BYTES}) >> 2, ${PARAM_BASE / 8});
      } else {
        for (let u = Math.floor((id * U) / T); u < hi; u++) g(${DESC_BASE} + u * ${DESC_BYTES}, d.scratch);
      }
    } catch (e) {
      Atomics.store(ctrl, ${ERROR}, 1);
    } finally {
      Atomics.add(ctrl, ${DONE}, 1);
      Atomics.notify(ctrl, ${DONE});
    }
  }
}
if (typeof require === 'function') run(require('node:worker_threads').workerData);
else self.onmessage = (e) => run(e.data);
`;

function isNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
}

/** Why this context cannot block on Atomics.wait / share memory, or null when it can. */
function threadBlocker(): string | null {
  if (typeof SharedArrayBuffer === 'undefined') {
    return 'SharedArrayBuffer is unavailable (the page is not cross-origin isolated: COOP/COEP headers missing)';
  }
  const g = globalThis as { crossOriginIsolated?: boolean };
  if (!isNode() && g.crossOriginIsolated === false) return 'the page is not cross-origin isolated (COOP/COEP headers missing)';
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
  } catch {
    return "Atomics.wait is not allowed on a page's main thread (the engine runs multi-threaded inside a worker)";
  }
  if (!isNode() && typeof Worker === 'undefined') return 'Web Workers are unavailable here';
  return null;
}

function makeRuntime(slots: number, wantShared: boolean): Runtime | null {
  if (!simdSupported()) return null;
  const relaxedOk = relaxedSimdSupported();
  const heapBase = SCRATCH_BASE + slots * SCRATCH_BYTES;
  const initialPages = Math.ceil((heapBase + (4 << 20)) / PAGE);
  let memory: WebAssembly.Memory | null = null;
  let shared = false;
  if (wantShared) {
    try {
      memory = new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, shared: true });
      shared = true;
    } catch {
      memory = null;
    }
  }
  memory ??= new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES });
  const mod = (relaxed: boolean) => new WebAssembly.Module(buildGemmModule({ shared, initialPages, maxPages: MAX_PAGES, relaxed }));
  const simdMod = mod(false);
  const relaxedMod = relaxedOk ? mod(true) : null;
  const inst = (m: WebAssembly.Module) => new WebAssembly.Instance(m, { env: { mem: memory } }).exports.gemm as GemmFn;
  const r: Runtime = {
    memory,
    shared,
    modules: { simd: simdMod, relaxed: relaxedMod },
    gemm: { simd: inst(simdMod), relaxed: relaxedMod ? inst(relaxedMod) : null },
    ctrl: new Int32Array(memory.buffer, 0, READY0 + MAX_THREADS + 1),
    workers: [],
    slots,
    heapBase,
    f32: new Float32Array(memory.buffer),
    i32: new Int32Array(memory.buffer),
    f64: new Float64Array(memory.buffer),
  };
  return r;
}

function runtime(): Runtime | null {
  if (rt === undefined) {
    // Lazily, single-threaded: a plain memory unless threads are initialised (initCpuThreads).
    rt = makeRuntime(1, false);
  }
  return rt;
}

function stopWorkers(r: Runtime): void {
  Atomics.store(r.ctrl, STOP, 1);
  Atomics.add(r.ctrl, SEQ, 1);
  Atomics.notify(r.ctrl, SEQ);
  for (const w of r.workers) void w.terminate();
  r.workers = [];
}

/** A sensible default: the machine's cores (os.availableParallelism / navigator.hardwareConcurrency), capped
 *  at 8 (beyond that the small products of a training step stop scaling), at least 1. */
export async function defaultCpuThreads(): Promise<number> {
  let n = 1;
  if (isNode()) {
    try {
      const name = 'node:os';
      const os = (await import(/* @vite-ignore */ name)) as typeof import('node:os');
      n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    } catch {
      n = 1;
    }
  } else {
    n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  }
  return Math.max(1, Math.min(8, n));
}

/**
 * Starts (or restarts) the pool with `threads` threads in all (the caller included; default
 * defaultCpuThreads()). Resolves once every worker has instantiated the module, or falls back to one thread
 * with `reason` set when the platform cannot share memory / block / spawn workers. Also switches on Relaxed
 * SIMD in Node 20 (a V8 flag) so the FMA kernel can run.
 */
export async function initCpuThreads(opts: { threads?: number } = {}): Promise<CpuThreadsInfo> {
  const want = Math.max(1, Math.min(MAX_THREADS, Math.floor(opts.threads ?? (await defaultCpuThreads()))));
  if (!Number.isFinite(want)) throw new Error(`threads: expected a positive integer, got ${opts.threads}`);
  // Already running at this count: keep the pool (the CLI starts it once per invocation, tests per file).
  if (rt && initialised && requested === want && (rt.workers.length + 1 === want || reason !== null)) {
    if (reason === null) active = want;
    return cpuThreadsInfo();
  }
  initialised = true;
  await enableRelaxedSimdInNode();
  if (isNode() && !spinGate.fs) {
    try {
      const name = 'node:fs';
      spinGate.fs = (await import(/* @vite-ignore */ name)) as typeof import('node:fs');
    } catch {
      spinGate.fs = null;
    }
  }
  if (rt) stopWorkers(rt);
  requested = want;
  reason = null;
  const blocker = want > 1 ? threadBlocker() : null;
  const r = makeRuntime(want, want > 1 && blocker === null);
  rt = r;
  active = 1;
  if (!r) {
    reason = 'WebAssembly SIMD is unavailable: the JS kernel runs on one thread';
    return cpuThreadsInfo();
  }
  if (want === 1) return cpuThreadsInfo();
  if (blocker || !r.shared) {
    reason = blocker ?? 'shared WebAssembly memory is unavailable';
    return cpuThreadsInfo();
  }
  const mods = r.modules;
  try {
    for (let id = 1; id < want; id++) {
      const data = { memory: r.memory, simd: mods.simd, relaxed: mods.relaxed, id, scratch: SCRATCH_BASE + id * SCRATCH_BYTES };
      if (isNode()) {
        const name = 'node:worker_threads';
        const wt = (await import(/* @vite-ignore */ name)) as typeof import('node:worker_threads');
        const w = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: data });
        w.unref(); // an idle pool must not keep the process alive
        r.workers.push(w);
      } else {
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        const w = new Worker(url);
        w.postMessage(data);
        r.workers.push(w);
      }
    }
  } catch (e) {
    stopWorkers(r);
    reason = `workers could not start (${(e as Error).message})`;
    return cpuThreadsInfo();
  }
  // Wait (without blocking: a browser worker starts only when its creator yields) until all are ready.
  const t0 = Date.now();
  while (readyWorkers(r) < want - 1) {
    if (Date.now() - t0 > 20_000) {
      stopWorkers(r);
      reason = 'workers did not start within 20 s';
      return cpuThreadsInfo();
    }
    await new Promise((res) => setTimeout(res, 2));
  }
  active = want;
  return cpuThreadsInfo();
}

function readyWorkers(r: Runtime): number {
  let n = 0;
  while (n < r.workers.length && Atomics.load(r.ctrl, READY0 + n + 1) === 1) n++;
  return n;
}

/** Uses `n` of the started threads (1..started) for the following products, without respawning workers
 *  (benchmarks compare thread counts in one run). */
export function setCpuThreads(n: number): void {
  const r = runtime();
  const max = r ? 1 + r.workers.length : 1;
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`threads: expected a positive integer, got ${n}`);
  if (n > max) throw new Error(`threads: ${n} requested but only ${max} started (initCpuThreads({ threads: ${n} }) first)`);
  active = n;
}

export interface CpuSpin {
  /** 'auto': poll only while other processes leave the cores idle (Node); 'on' / 'off': always / never. */
  mode: 'auto' | 'on' | 'off';
  /** How long an idle worker polls for the next job, and the caller for the workers' completion (ms). */
  workerMs: number;
  callerMs: number;
}

/** Sets how the pool's threads poll before sleeping (see workerSpinMs); benchmarks compare settings in one
 *  run. Returns the previous settings. */
export function setCpuSpin(o: Partial<CpuSpin>): CpuSpin {
  const prev = { mode: spinMode, workerMs: workerSpinMs, callerMs: callerSpinMs };
  if (o.mode !== undefined) spinMode = o.mode;
  if (o.workerMs !== undefined) workerSpinMs = Math.max(0, o.workerMs);
  if (o.callerMs !== undefined) callerSpinMs = Math.max(0, o.callerMs);
  spinGate.at = -Infinity; // re-decide at the next dispatch
  return prev;
}

/** The polling settings. */
export function cpuSpin(): CpuSpin {
  return { mode: spinMode, workerMs: workerSpinMs, callerMs: callerSpinMs };
}

/** Whether the pool's threads poll now (the last decision of 'auto'). */
export function cpuSpinActive(): boolean {
  return spinning;
}

/** The /proc readings of the last decision (Node only: fs is loaded by initCpuThreads). */
const spinGate: { fs: typeof import('node:fs') | null; at: number; busy: number; own: number } = {
  fs: null,
  at: -Infinity,
  busy: 0,
  own: 0,
};

/** CPU ticks: every core's busy time (/proc/stat) and this process's (/proc/self/stat). */
export function procTicks(fs: Pick<typeof import('node:fs'), 'readFileSync'>): { busy: number; own: number } | null {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'latin1');
    const f = cpu.slice(0, cpu.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is everything but idle and iowait.
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
    const st = fs.readFileSync('/proc/self/stat', 'latin1');
    const g = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const own = Number(g[11]) + Number(g[12]);
    return Number.isFinite(busy) && Number.isFinite(own) ? { busy, own } : null;
  } catch {
    return null;
  }
}

/** Cores other processes kept busy between two procTicks readings `ms` apart (ticks are 1/100 s). */
export function otherProcessesCores(a: { busy: number; own: number }, b: { busy: number; own: number }, ms: number): number {
  return (b.busy - a.busy - (b.own - a.own)) / (ms / 10);
}

/** Decides whether the threads poll (at most every SPIN_CHECK_MS) and tells the workers. */
function updateSpin(r: Runtime): void {
  const now = performance.now();
  if (now - spinGate.at < SPIN_CHECK_MS) return;
  let on = spinMode === 'on';
  if (spinMode === 'auto' && spinGate.fs) {
    const t = procTicks(spinGate.fs);
    // Ticks are 1/100 s (USER_HZ); the first reading only sets the baseline.
    if (t && Number.isFinite(spinGate.at)) on = otherProcessesCores(spinGate, t, now - spinGate.at) < IDLE_BELOW_CORES;
    if (t) Object.assign(spinGate, t);
  }
  spinGate.at = now;
  spinning = on;
  Atomics.store(r.ctrl, WORKER_SPIN, on ? Math.round(workerSpinMs * 1000) : 0);
}

/** 'auto' = relaxed SIMD where available, else SIMD; 'simd' forces the plain SIMD kernel; 'js' the JS kernel
 *  (benchmarks and tests of each version). */
export function setCpuKernel(k: 'auto' | 'simd' | 'js'): void {
  kernelChoice = k;
}

export function cpuKernel(): CpuKernel {
  const r = runtime();
  if (!r || kernelChoice === 'js') return 'js';
  return kernelChoice === 'auto' && r.gemm.relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
}

export function cpuThreadsInfo(): CpuThreadsInfo {
  const r = runtime();
  return { threads: active, requested, reason, kernel: cpuKernel(), relaxedAvailable: !!r?.gemm.relaxed };
}

/** One line for logs and the CLI: "2 threads, wasm-relaxed-simd" or "1 thread (why), wasm-simd". */
export function describeCpuThreads(i: CpuThreadsInfo = cpuThreadsInfo()): string {
  const t = `${i.threads} thread${i.threads === 1 ? '' : 's'}`;
  return `${t}${i.reason ? ` (${i.reason})` : ''}, ${i.kernel}`;
}

/** Staging area for one dispatch: operands are copied into the memory at byte offsets from alloc(). */
export interface Heap {
  f32: Float32Array;
  i32: Int32Array;
  f64: Float64Array;
  /** Byte offset of `bytes` fresh bytes (16-aligned) in this dispatch's region. */
  alloc(bytes: number): number;
}

/** Runs `fill` to stage operands, then the `units` descriptors it wrote (via writeDesc) on the pool.
 *  Returns false when no wasm runtime exists (the caller runs the JS kernel). With `threads` > 1 (the
 *  dispatch that follows) and polling on, sleeping workers are woken first, so that they are polling, not
 *  asleep, when the job arrives after the staging copies. (Waking them for a short poll with polling off
 *  too was slower on the loaded machine: 1.51 against 1.07 s per 2-thread step at load 12.) */
export function withHeap(bytesNeeded: number, fill: (h: Heap) => void, threads = 1): boolean {
  const r = runtime();
  if (!r) return false;
  if (threads > 1 && r.workers.length > 0) {
    updateSpin(r);
    if (spinning) Atomics.notify(r.ctrl, SEQ);
  }
  const need = r.heapBase + bytesNeeded + 64 * 16;
  if (need > r.memory.buffer.byteLength) {
    const pages = Math.ceil((need - r.memory.buffer.byteLength) / PAGE);
    if (r.memory.buffer.byteLength / PAGE + pages > MAX_PAGES) {
      throw new Error(`matmul: operands need ${(need / 2 ** 30).toFixed(2)} GiB of WebAssembly memory (limit 2 GiB); split the product`);
    }
    r.memory.grow(pages);
  }
  if (r.f32.buffer !== r.memory.buffer || r.f32.length * 4 !== r.memory.buffer.byteLength) {
    r.f32 = new Float32Array(r.memory.buffer);
    r.i32 = new Int32Array(r.memory.buffer);
    r.f64 = new Float64Array(r.memory.buffer);
  }
  let top = r.heapBase;
  fill({
    f32: r.f32,
    i32: r.i32,
    f64: r.f64,
    alloc: (bytes) => {
      const at = top;
      top += Math.ceil(bytes / 16) * 16;
      return at;
    },
  });
  return true;
}

/** Thread count a product of `flops` should use: tiny products stay on the caller (a dispatch costs a few
 *  microseconds of wake-up, more than a 32^3 product). */
export function threadsFor(flops: number): number {
  return flops < 2 * 48 * 48 * 48 ? 1 : active;
}

/** Writes descriptor `u` (see simd.ts: 11 words) into the control page. */
export function writeDesc(u: number, d: ArrayLike<number>): void {
  const r = runtime()!;
  if (u >= MAX_UNITS) throw new Error(`gemm: descriptor ${u} beyond ${MAX_UNITS}`);
  const base = (DESC_BASE >> 2) + u * UNIT_WORDS;
  for (let t = 0; t < DESC_WORDS; t++) r.i32[base + t] = d[t]!;
}

/** Writes row-kernel descriptor `u`: [op, lo, hi, ...ints] (kernels.ts). */
export function writeRowDesc(u: number, op: number, lo: number, hi: number, ints: ArrayLike<number>): void {
  const r = runtime()!;
  if (u >= MAX_UNITS) throw new Error(`row kernel: descriptor ${u} beyond ${MAX_UNITS}`);
  if (ints.length > UNIT_WORDS - 3) throw new Error(`row kernel: ${ints.length} integer arguments (at most ${UNIT_WORDS - 3})`);
  const base = (DESC_BASE >> 2) + u * UNIT_WORDS;
  r.i32[base] = op;
  r.i32[base + 1] = lo;
  r.i32[base + 2] = hi;
  for (let t = 0; t < ints.length; t++) r.i32[base + 3 + t] = ints[t]!;
}

/** Sets the doubles row kernels of the next dispatch read (their 'd' arguments, in order). */
export function writeRowParams(values: ArrayLike<number>): void {
  const r = runtime()!;
  if (values.length > PARAM_COUNT) throw new Error(`row kernel: ${values.length} double arguments (at most ${PARAM_COUNT})`);
  for (let t = 0; t < values.length; t++) r.f64[PARAM_BASE / 8 + t] = values[t]!;
}

/** Threads a row-kernel job over `elements` values should use: below ~32k values a wake-up costs more than
 *  the share it saves. */
export function rowThreadsFor(elements: number): number {
  return elements < 1 << 15 ? 1 : active;
}

/** Threads the next dispatch may use (the setting; 1 when no pool runs). */
export function activeThreads(): number {
  return active;
}

/** How many units the calling thread runs itself (units [0, n)) when `units` are dispatched on `threads`. */
export function mainUnits(units: number, threads: number): number {
  const r = runtime();
  const T = Math.max(1, Math.min(threads, units, 1 + (r ? r.workers.length : 0)));
  return T === 1 ? units : Math.floor(units / T);
}

/** Runs descriptors 0..units-1 on `threads` threads (contiguous ranges; the caller takes the first,
 *  mainUnits() of them): GEMM descriptors, or with `rows` row-kernel descriptors. With `mainShare`, the
 *  caller runs its units through it instead of through their descriptors (row kernels on its own arrays). */
export function dispatch(units: number, threads: number, rows = false, mainShare?: (lo: number, hi: number) => void): void {
  const r = runtime()!;
  const useRelaxed = cpuKernel() === 'wasm-relaxed-simd';
  const gem = useRelaxed ? r.gemm.relaxed! : r.gemm.simd;
  const g = rows ? (desc: number) => runUnit(KERNEL_FNS, KERNEL_SIGS, r.f32, r.f64, r.i32, desc >> 2, PARAM_BASE / 8) : gem;
  const T = Math.max(1, Math.min(threads, units, 1 + r.workers.length));
  if (T === 1) {
    if (mainShare) mainShare(0, units);
    else for (let u = 0; u < units; u++) g(DESC_BASE + u * DESC_BYTES, SCRATCH_BASE);
    return;
  }
  const c = r.ctrl;
  updateSpin(r);
  Atomics.store(c, NUNITS, units);
  Atomics.store(c, NTHREADS, T);
  Atomics.store(c, KERNEL, useRelaxed ? 1 : 0);
  Atomics.store(c, MODE, rows ? 1 : 0);
  Atomics.store(c, DONE, 0);
  Atomics.store(c, ERROR, 0);
  Atomics.add(c, SEQ, 1);
  Atomics.notify(c, SEQ);
  const hi = Math.floor(units / T);
  if (mainShare) mainShare(0, hi);
  else for (let u = 0; u < hi; u++) g(DESC_BASE + u * DESC_BYTES, SCRATCH_BASE);
  let d = Atomics.load(c, DONE);
  if (d < T - 1) {
    const t0 = performance.now();
    let last = t0;
    for (let i = 1; d < T - 1; i++) {
      d = Atomics.load(c, DONE);
      if ((i & 63) === 0) {
        const now = performance.now();
        if (now - last > PREEMPTED_MS || now - t0 > (spinning ? Math.max(MIN_POLL_MS, callerSpinMs) : MIN_POLL_MS)) break;
        last = now;
      }
    }
  }
  while (d < T - 1) {
    Atomics.wait(c, DONE, d, 1000);
    d = Atomics.load(c, DONE);
  }
  if (Atomics.load(c, ERROR)) {
    throw new Error(
      rows ? 'row kernel: a worker thread failed on its share of the job' : 'gemm: a worker thread failed on its share of the product',
    );
  }
}
