/**
 * The threaded f32 GEMM runtime: each kernel version (plain SIMD, relaxed-SIMD FMA) against the JS reference
 * kernel on fresh random inputs (odd sizes, block edges, every transpose), and bitwise-identical results for
 * every thread count, through gemm, batched matmul and attention forward/backward.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../random';
import { compareArrays } from '../testing';
import { CpuBackend, readSync } from './backend';
import { gemm, gemmJs, gemmMany } from './matmul';
import {
  cpuKernel,
  cpuSpinActive,
  cpuThreadsInfo,
  describeCpuThreads,
  initCpuThreads,
  otherProcessesCores,
  procTicks,
  setCpuKernel,
  setCpuSpin,
  setCpuThreads,
  setMaxStagedBytes,
} from './pool';

const THREADS = 3;

function rand(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(-1, 1);
  return a;
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

let before: number;
beforeAll(async () => {
  before = cpuThreadsInfo().requested;
  await initCpuThreads({ threads: THREADS });
});
afterAll(async () => {
  setCpuKernel('auto');
  await initCpuThreads({ threads: before });
});

describe('thread pool', () => {
  it(`starts ${THREADS} threads under Node and says which kernel runs`, () => {
    const info = cpuThreadsInfo();
    expect(info.threads).toBe(THREADS);
    expect(info.reason).toBeNull();
    expect(describeCpuThreads(info)).toMatch(/^3 threads, wasm-/);
    // Node 20 has Relaxed SIMD behind a V8 flag that initCpuThreads switches on.
    expect(info.relaxedAvailable).toBe(true);
    expect(cpuKernel()).toBe('wasm-relaxed-simd');
  });
  it('refuses more threads than were started', () => {
    expect(() => setCpuThreads(THREADS + 1)).toThrow(/only 3 started/);
    expect(() => setCpuThreads(0)).toThrow(/positive integer/);
  });
});

// Edges of every block: KC=256 (k 257, 300, 520), NC=1024 (n 1030), MC=64 (m 67, 130), tile rows 4 / columns 8.
const shapes: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [67, 130, 129],
  [9, 257, 300],
  [130, 70, 520],
  [200, 200, 64],
  [21, 530, 40],
  [13, 1030, 37],
];

describe.each([
  ['relaxed-SIMD FMA', 'auto' as const],
  ['plain SIMD', 'simd' as const],
])('%s kernel vs the JS reference kernel', (_label, kernel) => {
  beforeAll(() => setCpuKernel(kernel));
  afterAll(() => setCpuKernel('auto'));
  for (const [m, n, k] of shapes) {
    for (const [tA, tB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`${m}x${n}x${k} transA=${tA} transB=${tB}`, () => {
        const rng = new Rng(m * 7 + n * 3 + k + (tA ? 1000 : 0) + (tB ? 2000 : 0));
        const A = rand(m * k, rng);
        const B = rand(k * n, rng);
        const aRs = tA ? 1 : k,
          aCs = tA ? m : 1,
          bRs = tB ? 1 : n,
          bCs = tB ? k : 1;
        const ref = new Float64Array(m * n);
        gemmJs(A, 0, aRs, aCs, B, 0, bRs, bCs, ref, 0, m, n, k);
        for (const t of [1, THREADS]) {
          setCpuThreads(t);
          const C = new Float32Array(m * n).fill(Number.NaN); // every element must be written
          gemm(A, 0, aRs, aCs, B, 0, bRs, bCs, C, 0, m, n, k);
          expect(compareArrays(C, ref).relErr).toBeLessThan(2e-6);
        }
      });
    }
  }
  it('a strided, offset C keeps the elements between blocks (heads of attention)', () => {
    const rng = new Rng(5);
    const m = 33,
      n = 20,
      k = 70,
      ldc = 70,
      batch = 3;
    const A = rand(batch * m * k + 4, rng);
    const B = rand(k * n, rng);
    const C = rand(43 + (m - 1) * ldc + n + 10, rng);
    const keep = C.slice();
    const cOffs = [3, 23, 43]; // columns 3..22, 23..42, 43..62 of rows of 70: interleaved, not overlapping
    setCpuThreads(THREADS);
    gemmMany(A, [4, 4 + m * k, 4 + 2 * m * k], k, 1, B, [0, 0, 0], n, 1, C, cOffs, ldc, m, n, k);
    const written = new Set<number>();
    for (let b = 0; b < batch; b++) {
      const ref = new Float64Array(m * n);
      gemmJs(A, 4 + b * m * k, k, 1, B, 0, n, 1, ref, 0, m, n, k);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          const o = cOffs[b]! + i * ldc + j;
          written.add(o);
          expect(Math.abs(C[o]! - ref[i * n + j]!)).toBeLessThan(1e-4);
        }
      }
    }
    for (let o = 0; o < C.length; o++) if (!written.has(o)) expect(C[o]).toBe(keep[o]);
  });
});

describe('results are bitwise identical for every thread count', () => {
  const be = new CpuBackend({ dtype: 'f32' });
  const runAll = <T>(f: () => T): T[] =>
    [1, 2, THREADS].map((t) => {
      setCpuThreads(t);
      return f();
    });
  it('gemm: row splits (tall), column splits (wide), several KC blocks', () => {
    const rng = new Rng(77);
    for (const [m, n, k] of [
      [301, 45, 600],
      [40, 333, 270],
      [128, 128, 128],
    ]) {
      const A = rand(m! * k!, rng);
      const B = rand(k! * n!, rng);
      const outs = runAll(() => {
        const C = new Float32Array(m! * n!);
        gemm(A, 0, 1, m!, B, 0, n!, 1, C, 0, m!, n!, k!);
        return C;
      });
      expect(bits(outs[1]!)).toEqual(bits(outs[0]!));
      expect(bits(outs[2]!)).toEqual(bits(outs[0]!));
    }
  });
  it('batched matmul (entries shared out, and entries split when batch < threads)', () => {
    const rng = new Rng(78);
    for (const [batch, m, n, k] of [
      [6, 50, 60, 70],
      [2, 90, 40, 300],
      [5, 17, 130, 33],
    ]) {
      const A = be.fromArray(rand(batch! * m! * k!, rng));
      const B = be.fromArray(rand(batch! * k! * n!, rng));
      const outs = runAll(() => readSync(be.matmul(A, B, { batch: batch!, m: m!, n: n!, k: k!, transB: true })) as Float32Array);
      expect(bits(outs[1]!)).toEqual(bits(outs[0]!));
      expect(bits(outs[2]!)).toEqual(bits(outs[0]!));
    }
  });
  it('attention forward and backward (grouped-query heads, causal)', () => {
    const rng = new Rng(79);
    const p = { B: 2, T: 37, H: 6, Hkv: 2, D: 16, scale: 0.25, causal: true };
    const q = be.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    const k = be.fromArray(rand(p.B * p.T * p.Hkv * p.D, rng));
    const v = be.fromArray(rand(p.B * p.T * p.Hkv * p.D, rng));
    const dout = be.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    const outs = runAll(() => {
      const f = be.attention(q, k, v, p);
      const g = be.attentionBackward(dout, q, k, v, f.out, f.lse, p);
      return [f.out, f.lse, g.dq, g.dk, g.dv].map((s) => readSync(s) as Float32Array);
    });
    for (let t = 1; t < outs.length; t++) {
      for (let i = 0; i < outs[0]!.length; i++) expect(bits(outs[t]![i]!)).toEqual(bits(outs[0]![i]!));
    }
  });
});

describe('polling before sleeping', () => {
  it("'on' and 'off' decide at the next dispatch and leave the bits alone", () => {
    const rng = new Rng(81);
    const [m, n, k] = [120, 90, 150];
    const A = rand(m * k, rng);
    const B = rand(k * n, rng);
    const run = (t: number) => {
      setCpuThreads(t);
      const C = new Float32Array(m * n);
      gemm(A, 0, k, 1, B, 0, n, 1, C, 0, m, n, k);
      return bits(C);
    };
    const prev = setCpuSpin({ mode: 'off' });
    try {
      const one = run(1);
      expect(run(THREADS)).toEqual(one);
      expect(cpuSpinActive()).toBe(false);
      setCpuSpin({ mode: 'on', workerMs: 1, callerMs: 1 });
      // Several dispatches in a row: the workers are polling, not asleep, when the next one comes.
      for (let r = 0; r < 5; r++) expect(run(THREADS)).toEqual(one);
      expect(cpuSpinActive()).toBe(true);
    } finally {
      setCpuSpin(prev);
    }
  });
});

describe("'auto' polling: other processes' CPU from /proc", () => {
  const fake = (stat: string, self: string) => ({
    readFileSync: ((f: string) => (f === '/proc/stat' ? stat : self)) as never,
  });
  // /proc/self/stat: the name may hold spaces and parentheses; utime and stime are fields 14 and 15.
  const self = (utime: number, stime: number) => `42 (node (x) y) S 1 2 3 4 5 6 7 8 9 10 ${utime} ${stime} 0 0 20 0 9`;
  it('reads busy ticks (all but idle and iowait) and this process ticks', () => {
    const t = procTicks(fake('cpu  100 5 20 900 50 3 2 7 0 0\ncpu0 1 2 3\n', self(60, 9)));
    expect(t).toEqual({ busy: 100 + 5 + 20 + 3 + 2 + 7, own: 69 });
    expect(procTicks(fake('garbage', 'x'))).toBeNull();
  });
  it('counts only what other processes used: this process alone on the cores leaves them idle for it', () => {
    // 1 s apart: 200 busy ticks (2 cores), 190 of them this process's -> 0.1 core for the others.
    expect(otherProcessesCores({ busy: 1000, own: 500 }, { busy: 1200, own: 690 }, 1000)).toBeCloseTo(0.1, 9);
    // Another process keeping a core busy while this one used one: 1 core.
    expect(otherProcessesCores({ busy: 0, own: 0 }, { busy: 50, own: 25 }, 250)).toBeCloseTo(1, 9);
  });
});

describe('products too big to stage at once', () => {
  it('are split by batch entries, then rows, with the same bits', () => {
    const be = new CpuBackend({ dtype: 'f32' });
    const rng = new Rng(80);
    const [batch, m, n, k] = [3, 41, 37, 300];
    const A = be.fromArray(rand(batch * m * k, rng));
    const B = be.fromArray(rand(batch * k * n, rng));
    setCpuThreads(THREADS);
    const whole = readSync(be.matmul(A, B, { batch, m, n, k })) as Float32Array;
    const prev = setMaxStagedBytes((4 * (m * k + k * n + m * n)) / 3); // smaller than one entry: rows split too
    try {
      const split = readSync(be.matmul(A, B, { batch, m, n, k })) as Float32Array;
      expect(bits(split)).toEqual(bits(whole));
    } finally {
      setMaxStagedBytes(prev);
    }
  });
});

describe('operand checks', () => {
  it('an operand range past the end of its array is a named error, not garbage', () => {
    const A = new Float32Array(10);
    const B = new Float32Array(10);
    const C = new Float32Array(9);
    expect(() => gemm(A, 0, 4, 1, B, 0, 3, 1, C, 0, 3, 3, 4)).toThrow(/gemm: operand range out of bounds/);
  });
});
