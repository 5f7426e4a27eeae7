/**
 * f64 GEMM on 1 thread vs the pool (gemm64-pool.ts), at GradOT's shapes and at small ones, and exactSvd
 * on 1 vs N threads. Each pair runs back to back in one process (the machine is shared: compare within a
 * run), with the load average printed beside it. Results are checked bitwise equal.
 *
 *   npx tsx src/engine/linalg/gemm64.bench.ts [threads=2] [svd | only-svd]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { gemm64, dense } from './gemm64';
import { setGemm64Threads, startGemm64Threads } from './gemm64-pool';
import { gaussianArray } from './rng';
import { exactSvd } from './svd';
import { gramSvdTimes } from './svd-gram';
import { eigTimes } from './syevd';

function rand(len: number, seed: number): Float64Array {
  const g = gaussianArray(len, seed);
  return Float64Array.from(g);
}

function sameBits(a: Float64Array, b: Float64Array): boolean {
  const x = new BigUint64Array(a.buffer);
  const y = new BigUint64Array(b.buffer);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const load = () => os.loadavg()[0]!.toFixed(2);

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** CPU seconds of the calling (main) thread alone, from /proc (Linux; 10 ms ticks): with process CPU it
 *  shows how much of a product ran off the caller, which a loaded machine's wall time cannot. */
const mainCpu = () => {
  try {
    const f = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(v[11]) + Number(v[12])) / 100;
  } catch {
    return NaN;
  }
};

/** Best wall time of `reps`, and the process CPU seconds (all threads) of that rep. */
function timeGemm(
  m: number,
  n: number,
  k: number,
  threads: number,
  reps: number,
): { s: number; cpu: number; main: number; C: Float64Array } {
  const a = rand(m * k, 1);
  const b = rand(k * n, 2);
  const C = new Float64Array(m * n);
  setGemm64Threads(threads);
  let best = Infinity;
  let cpu = 0;
  let main = 0;
  for (let r = 0; r < reps; r++) {
    const c0 = cpuNow();
    const m0 = mainCpu();
    const t0 = performance.now();
    gemm64(dense(a, k), dense(b, n), C, 0, n, m, n, k);
    const s = (performance.now() - t0) / 1000;
    if (s < best) {
      best = s;
      cpu = cpuNow() - c0;
      main = mainCpu() - m0;
    }
  }
  return { s: best, cpu, main, C };
}

async function main(): Promise<void> {
  const T = Number(process.argv[2] ?? 2);
  const withSvd = process.argv.includes('svd');
  const onlySvd = process.argv.includes('only-svd');
  const got = await startGemm64Threads(T);
  console.log(`gemm64 pool: ${got} threads ready (asked ${T}); load ${load()}`);
  const shapes: [number, number, number][] = [
    [48, 48, 48],
    [64, 64, 64],
    [96, 96, 96],
    [128, 128, 128],
    [192, 192, 192],
    [256, 256, 256],
    [512, 512, 512],
    [768, 768, 3072],
    [3072, 768, 3072],
    [3072, 3072, 768],
    [2048, 2048, 5632],
  ];
  console.log('m x n x k            1 thread           N threads          speedup  CPU-s 1t / Nt (caller)  bitwise  load');
  for (const [m, n, k] of onlySvd ? [] : shapes) {
    const flop = 2 * m * n * k;
    const reps = flop < 1e9 ? 5 : flop < 2e10 ? 2 : 1;
    // Warm-up (JIT, memory growth) on both paths.
    if (flop < 2e10) {
      timeGemm(m, n, k, 1, 1);
      timeGemm(m, n, k, T, 1);
    }
    const one = timeGemm(m, n, k, 1, reps);
    const many = timeGemm(m, n, k, T, reps);
    const g1 = flop / one.s / 1e9;
    const gN = flop / many.s / 1e9;
    console.log(
      `${`${m}x${n}x${k}`.padEnd(20)} ${`${(one.s * 1000).toFixed(1)} ms ${g1.toFixed(2)} GF/s`.padEnd(18)} ` +
        `${`${(many.s * 1000).toFixed(1)} ms ${gN.toFixed(2)} GF/s`.padEnd(18)} ${`${(one.s / many.s).toFixed(2)}x`.padEnd(8)} ` +
        `${`${one.cpu.toFixed(2)} / ${many.cpu.toFixed(2)} (${many.main.toFixed(2)})`.padEnd(23)} ` +
        `${sameBits(one.C, many.C) ? 'yes' : 'NO'}      ${load()}`,
    );
  }
  if (!withSvd && !onlySvd) return;
  for (const [m, n] of [
    [768, 3072],
    [2048, 5632],
  ] as const) {
    const g = gaussianArray(m * n, 9);
    const W = new Float32Array(m * n);
    for (let i = 0; i < W.length; i++) W[i] = g[i]! / Math.sqrt(n);
    const res: { s: number; S: Float64Array }[] = [];
    for (const t of [1, T]) {
      setGemm64Threads(t);
      const c0 = cpuNow();
      const t0 = performance.now();
      const r = exactSvd(W, m, n);
      res.push({ s: (performance.now() - t0) / 1000, S: r.S });
      const ph = { ...gramSvdTimes, ...eigTimes } as Record<string, number>;
      const phases = ['gram', 'tridiag', 'dc', 'backTransform', 'project', 'polish']
        .map((q) => `${q} ${(ph[q] ?? 0).toFixed(0)}`)
        .join(' | ');
      console.log(
        `exactSvd ${m}x${n} on ${t} thread(s): ${res[res.length - 1]!.s.toFixed(2)} s wall, ${(cpuNow() - c0).toFixed(2)} CPU-s, load ${load()}; phases (ms): ${phases}`,
      );
    }
    console.log(`  speedup ${(res[0]!.s / res[1]!.s).toFixed(2)}x, singular values bitwise equal: ${sameBits(res[0]!.S, res[1]!.S)}`);
  }
}

void main().then(() => process.exit(0));
