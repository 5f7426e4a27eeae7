import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModule64, dense, gemm64, type Strided } from './gemm64';
import { GEMM64_PAR_MIN_FLOPS, gemm64ThreadsInfo, setGemm64StageBytes, setGemm64Threads, startGemm64Threads } from './gemm64-pool';
import { gaussianArray } from './rng';

// Bitwise: every element of C must come out with the same bits on 1, 2 and 3 threads (the emulator
// packages built from these products are compared byte for byte).

let ready = 1;
let workerUnitsSeen = 0;
beforeAll(async () => {
  ready = await startGemm64Threads(3);
});
afterAll(() => setGemm64Threads(null));

function rand(len: number, seed: number): Float64Array {
  const g = gaussianArray(len, seed);
  const a = new Float64Array(len);
  for (let i = 0; i < len; i++) a[i] = g[i]! + 0.25; // never zero, mixed signs
  return a;
}

function bitsEqual(a: Float64Array, b: Float64Array): boolean {
  const x = new BigUint64Array(a.buffer, a.byteOffset, a.length);
  const y = new BigUint64Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

interface Case {
  name: string;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  upper?: boolean;
  /** Extra columns of C beyond n (ldc > n) and an offset into C. */
  pad?: number;
}

const CASES: Case[] = [
  { name: 'plain, tile multiples', m: 128, n: 512, k: 256 },
  { name: 'non-multiples of every tile', m: 203, n: 613, k: 301 },
  { name: 'few panels: split by rows', m: 517, n: 130, k: 150 },
  { name: 'transposed A', m: 190, n: 300, k: 270, transA: true },
  { name: 'transposed B', m: 150, n: 530, k: 263, transB: true },
  { name: 'both transposed, accumulate, ldc > n', m: 141, n: 389, k: 157, transA: true, transB: true, accumulate: true, pad: 7 },
  { name: 'upper', m: 600, n: 600, k: 97, upper: true },
  { name: 'upper, accumulate, k past one KC block', m: 333, n: 333, k: 611, upper: true, accumulate: true, transB: true },
];

function runCase(c: Case, threads: number, seed: number): Float64Array {
  const { m, n, k } = c;
  const a = rand(m * k, seed);
  const b = rand(k * n, seed + 1);
  const ldc = n + (c.pad ?? 0);
  const cOff = c.pad ?? 0;
  const C = rand(cOff + m * ldc, seed + 2); // accumulate adds to these; otherwise the window is overwritten
  setGemm64Threads(threads);
  gemm64(dense(a, c.transA ? m : k, !!c.transA), dense(b, c.transB ? k : n, !!c.transB), C, cOff, ldc, m, n, k, {
    accumulate: c.accumulate,
    upper: c.upper,
  });
  return C;
}

describe('gemm64 on threads', () => {
  it('has workers to test with', () => {
    expect(ready).toBe(3);
    expect(gemm64ThreadsInfo().reason).toBeNull();
  });

  for (const [ci, c] of CASES.entries()) {
    it(`${c.name}: ${c.m}x${c.n}x${c.k} is bitwise the same on 1, 2 and 3 threads`, () => {
      expect(2 * c.m * c.n * c.k).toBeGreaterThanOrEqual(GEMM64_PAR_MIN_FLOPS); // really on the pool
      const one = runCase(c, 1, 1000 + 10 * ci);
      // A plain f64 reference, so a wrong single-threaded path cannot pass either.
      const { m, n, k } = c;
      const a = rand(m * k, 1000 + 10 * ci);
      const b = rand(k * n, 1001 + 10 * ci);
      const ldc = n + (c.pad ?? 0);
      const cOff = c.pad ?? 0;
      const C0 = rand(cOff + m * ldc, 1002 + 10 * ci);
      let worst = 0;
      for (let i = 0; i < m; i++) {
        for (let j = c.upper ? i : 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) {
            const av = c.transA ? a[p * m + i]! : a[i * k + p]!;
            const bv = c.transB ? b[j * k + p]! : b[p * n + j]!;
            s += av * bv;
          }
          const want = (c.accumulate ? C0[cOff + i * ldc + j]! : 0) + s;
          worst = Math.max(worst, Math.abs(one[cOff + i * ldc + j]! - want) / (1 + Math.abs(want)));
        }
      }
      expect(worst).toBeLessThan(1e-12);
      for (const t of [2, 3]) expect(bitsEqual(runCase(c, t, 1000 + 10 * ci), one), `${t} threads`).toBe(true);
      // A small staging budget: row groups of 64 rows, A copied per group (gathered when transposed).
      const prev = setGemm64StageBytes(1 << 16, 64);
      try {
        expect(bitsEqual(runCase(c, 2, 1000 + 10 * ci), one), '2 threads, row groups').toBe(true);
      } finally {
        setGemm64StageBytes(prev);
      }
      workerUnitsSeen = gemm64ThreadsInfo().workerUnits;
    });
  }

  it('the workers did part of the work (the caller does not wait for a worker that has not woken up)', () => {
    expect(workerUnitsSeen).toBeGreaterThan(0);
  });

  it('Gram through one array read twice (A and B share data), as the SVD does', () => {
    const rows = 300;
    const cols = 700;
    const W = rand(rows * cols, 77);
    const Ws: Strided = dense(W, cols);
    const WsT: Strided = { data: W, off: 0, rs: Ws.cs, cs: Ws.rs };
    const out = (t: number) => {
      setGemm64Threads(t);
      const G = new Float64Array(rows * rows);
      gemm64(Ws, WsT, G, 0, rows, rows, rows, cols, { upper: true });
      return G;
    };
    const one = out(1);
    expect(bitsEqual(out(2), one)).toBe(true);
    expect(bitsEqual(out(3), one)).toBe(true);
  });

  it('operands with an offset into a larger array', () => {
    const m = 97;
    const n = 411;
    const k = 233;
    expect(2 * m * n * k).toBeGreaterThanOrEqual(GEMM64_PAR_MIN_FLOPS);
    const big = rand(5000 + m * k, 5);
    const bBig = rand(300 + k * n, 6);
    const out = (t: number) => {
      setGemm64Threads(t);
      const C = new Float64Array(m * n);
      gemm64(dense(big, k, false, 5000), dense(bBig, n, false, 300), C, 0, n, m, n, k);
      return C;
    };
    expect(bitsEqual(out(2), out(1))).toBe(true);
  });

  it('the shared-memory module imports env.mem and exports mk and pack', () => {
    const mod = new WebAssembly.Module(buildModule64({ shared: { initial: 1, maximum: 16 } }));
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'mem', kind: 'memory' }]);
    expect(WebAssembly.Module.exports(mod).map((e) => e.name)).toEqual(['mk', 'pack']);
  });
});
