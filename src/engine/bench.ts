/**
 * Matmul throughput of the CPU backend, and the same measurement from PyTorch for the ratio the `bench`
 * command prints. Node-only for the torch part (it spawns /usr/bin/python3); benchMatmul itself runs
 * anywhere.
 */

import { CpuBackend } from './cpu/backend';
import { setSimdEnabled } from './cpu/matmul';
import { cpuKernel, cpuThreadsInfo, setCpuKernel, setCpuThreads, type CpuKernel } from './cpu/pool';
import { Rng } from './random';

export interface MatmulBenchResult {
  n: number;
  /** Median GFLOP/s (2n^3 flops per product). */
  gflops: number;
  /** Median seconds per product. */
  seconds: number;
  runs: number;
  /** Which f32 kernel ran: relaxed-SIMD FMA, plain WebAssembly SIMD, or JS. */
  kernel: CpuKernel;
  /** Threads the product ran on. */
  threads: number;
  /** GFLOP/s by process CPU time (Node only, else null): on a shared machine wall time also counts time
   *  the scheduler gave to other processes, CPU time does not. */
  cpuGflops: number | null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : 0.5 * (s[h - 1]! + s[h]!);
}

function cpuNow(): number | null {
  const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process;
  if (!p?.cpuUsage) return null;
  const u = p.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/** GFLOP/s of CpuBackend f32 square matmuls: warm-up, then the median of `runs` timed runs (each run
 *  repeats the product until at least `minSeconds` have passed, so small sizes are not timer noise).
 *  `simd: false` measures the plain-JS kernel (the fallback where WebAssembly SIMD is unavailable). */
export function benchMatmul(
  sizes: number[] = [128, 256, 512],
  runs = 5,
  minSeconds = 0.05,
  simd = true,
  opts: { kernel?: 'auto' | 'simd' | 'js'; threads?: number } = {},
): MatmulBenchResult[] {
  const prev = setSimdEnabled(simd);
  const prevThreads = cpuThreadsInfo().threads;
  if (simd && opts.kernel) setCpuKernel(opts.kernel);
  if (opts.threads !== undefined) setCpuThreads(opts.threads);
  try {
    return benchMatmulInner(sizes, runs, minSeconds);
  } finally {
    setSimdEnabled(prev);
    setCpuThreads(prevThreads);
  }
}

function benchMatmulInner(sizes: number[], runs: number, minSeconds: number): MatmulBenchResult[] {
  const kernel = cpuKernel();
  const threads = kernel === 'js' ? 1 : cpuThreadsInfo().threads;
  const be = new CpuBackend({ dtype: 'f32' });
  const rng = new Rng(1234);
  const out: MatmulBenchResult[] = [];
  for (const n of sizes) {
    const a = new Float32Array(n * n);
    const b = new Float32Array(n * n);
    for (let i = 0; i < a.length; i++) {
      a[i] = rng.uniform(-1, 1);
      b[i] = rng.uniform(-1, 1);
    }
    const A = be.fromArray(a);
    const B = be.fromArray(b);
    const p = { batch: 1, m: n, n, k: n };
    for (let w = 0; w < 2; w++) be.matmul(A, B, p); // JIT warm-up
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let r = 0; r < runs; r++) {
      let reps = 0;
      const t0 = now();
      const c0 = cpuNow();
      let dt = 0;
      do {
        // Freed like torch's output tensor: the backend recycles it rather than faulting in fresh pages.
        be.free(be.matmul(A, B, p));
        reps++;
        dt = (now() - t0) / 1000;
      } while (dt < minSeconds);
      const c1 = cpuNow();
      times.push(dt / reps);
      if (c0 !== null && c1 !== null) cpuTimes.push((c1 - c0) / reps);
    }
    const sec = median(times);
    const cpuSec = cpuTimes.length ? median(cpuTimes) : 0;
    const flop = 2 * n * n * n;
    out.push({ n, gflops: flop / sec / 1e9, seconds: sec, runs, kernel, threads, cpuGflops: cpuSec > 0 ? flop / cpuSec / 1e9 : null });
  }
  return out;
}

export interface TorchBenchResult {
  ok: boolean;
  /** Why the reference could not run (missing python3 or torch, script error). */
  note?: string;
  torchVersion?: string;
  threads?: number;
  results?: { n: number; gflops: number; seconds: number; cpuGflops?: number }[];
}

/** Runs tools/bench_matmul_torch.py with /usr/bin/python3; never throws, reports why it skipped. */
export async function benchMatmulTorch(
  sizes: number[],
  python = '/usr/bin/python3',
  threads?: number,
  launcher: string[] = [],
): Promise<TorchBenchResult> {
  let cp: typeof import('node:child_process');
  let fs: typeof import('node:fs');
  let path: typeof import('node:path');
  let url: typeof import('node:url');
  try {
    cp = await import('node:child_process');
    fs = await import('node:fs');
    path = await import('node:path');
    url = await import('node:url');
  } catch {
    return { ok: false, note: 'not running under Node: the PyTorch reference is skipped' };
  }
  if (!fs.existsSync(python)) return { ok: false, note: `${python} not found: the PyTorch reference is skipped` };
  const here = path.dirname(url.fileURLToPath(import.meta.url));
  const script = path.resolve(here, '../../tools/bench_matmul_torch.py');
  if (!fs.existsSync(script)) return { ok: false, note: `${script} not found` };
  const args = [script, '--sizes', sizes.join(',')];
  if (threads !== undefined) args.push('--threads', String(threads));
  // A launcher (e.g. tools/pretrain/with_openblas.sh) runs torch on another BLAS.
  const [cmd, ...pre] = [...launcher, python];
  return new Promise((resolve) => {
    cp.execFile(cmd, [...pre, ...args], { timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) {
        const msg = `${stderr}`.trim().split('\n').slice(-1)[0] || err.message;
        resolve({ ok: false, note: `PyTorch reference failed: ${msg}` });
        return;
      }
      try {
        const j = JSON.parse(stdout.trim().split('\n').slice(-1)[0]!) as TorchBenchResult & { error?: string };
        if (j.error) resolve({ ok: false, note: j.error });
        else resolve({ ...j, ok: true });
      } catch {
        resolve({ ok: false, note: `PyTorch reference printed no JSON: ${stdout.slice(0, 200)}` });
      }
    });
  });
}

export interface MatmulComparison {
  n: number;
  /** Our f32 GFLOP/s with the default kernel (WebAssembly SIMD where available). */
  ours: number;
  oursKernel: CpuKernel;
  oursThreads: number;
  /** Our plain-JS kernel, for reference. */
  oursJs: number;
  /** By process CPU time (see MatmulBenchResult.cpuGflops). */
  oursCpu: number | null;
  torchCpu: number | null;
  ratioCpu: number | null;
  torch: number | null;
  /** ours / torch (null when torch did not run). */
  ratio: number | null;
}

/** Ours vs PyTorch at the same sizes (the CLI prints this table). */
export async function compareMatmulWithTorch(
  sizes: number[] = [128, 256, 512],
  threads?: number,
): Promise<{ rows: MatmulComparison[]; torch: TorchBenchResult }> {
  const ours = benchMatmul(sizes);
  const js = benchMatmul(sizes, 5, 0.05, false);
  const torch = await benchMatmulTorch(sizes, undefined, threads);
  const rows = ours.map((o, i) => {
    const tr = torch.ok ? torch.results?.find((r) => r.n === o.n) : undefined;
    const t = tr?.gflops ?? null;
    const tc = tr?.cpuGflops ?? null;
    return {
      n: o.n,
      ours: o.gflops,
      oursKernel: o.kernel,
      oursThreads: o.threads,
      oursJs: js[i]!.gflops,
      torch: t,
      ratio: t ? o.gflops / t : null,
      oursCpu: o.cpuGflops,
      torchCpu: tc,
      ratioCpu: tc && o.cpuGflops ? o.cpuGflops / tc : null,
    };
  });
  return { rows, torch };
}

export function formatMatmulComparison(c: { rows: MatmulComparison[]; torch: TorchBenchResult }): string {
  const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2)).padStart(10);
  const kernel = c.rows[0]?.oursKernel ?? 'js';
  const g = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2)).padStart(8);
  const lines = [`matmul f32 (square)  ours(${kernel})  ours(js)     torch   ours/torch | by CPU time: ours   torch   ratio`];
  for (const r of c.rows) {
    lines.push(
      `  ${String(r.n).padStart(5)}^3        ${f(r.ours)}${f(r.oursJs)}${f(r.torch)}${g(r.ratio)}    |           ${g(r.oursCpu)}${g(r.torchCpu)}${g(r.ratioCpu)}`,
    );
  }
  const t = c.rows[0]?.oursThreads ?? 1;
  lines.push(`  (GFLOP/s, median of 5; ours on ${t} thread${t === 1 ? '' : 's'}, ours(js) on 1)`);
  if (!c.torch.ok) lines.push(`  note: ${c.torch.note}`);
  else lines.push(`  torch ${c.torch.torchVersion} with ${c.torch.threads} thread(s)`);
  return lines.join('\n');
}

// `npx tsx src/engine/bench.ts [sizes] [threads]`, e.g. `npx tsx src/engine/bench.ts 128,256,512 1`.
if (typeof process !== 'undefined' && process.argv[1] && /engine[\\/]bench\.ts$/.test(process.argv[1])) {
  const sizes = (process.argv[2] ?? '128,256,512').split(',').map(Number);
  const threads = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
  void compareMatmulWithTorch(sizes, threads).then((c) => console.log(formatMatmulComparison(c)));
}
