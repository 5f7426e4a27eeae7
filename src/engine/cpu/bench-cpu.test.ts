import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './backend';
import { benchCpu, formatCpuBench, mainThreadCpuSeconds, otherThreadsCpuSeconds } from './bench-cpu';
import { cpuThreadsInfo } from './pool';

describe('bench --only cpu', () => {
  it('measures every kernel at 1 and N threads and prints each ratio beside its reference', async () => {
    const r = await benchCpu({ sizes: [48], threads: [1, cpuThreadsInfo().threads], noTrain: true, noTfjs: true, torchLauncher: [] });
    const threads = r.matmul.map((m) => m.threads);
    expect(threads).toEqual([1, cpuThreadsInfo().threads]);
    for (const m of r.matmul) {
      expect(m.simd.gflops).toBeGreaterThan(0);
      expect(m.simd.kernel).toBe('wasm-simd');
      if (m.relaxed) expect(m.relaxed.kernel).toBe('wasm-relaxed-simd');
      if (m.torch) expect(m.ratio).toBeCloseTo((m.relaxed ?? m.simd).gflops / m.torch.gflops, 9);
      else expect(existsSync('/usr/bin/python3') ? r.torchNote : 'no python').toBeTruthy();
    }
    const text = formatCpuBench(r);
    expect(text).toMatch(/load average/);
    expect(text).toMatch(/ours\/torch/);
    if (cpuThreadsInfo().threads > 1) {
      expect(r.scaling).toHaveLength(1);
      expect(text).toMatch(/scaling matmul 48\^3: \d+ threads \/ 1 thread = [\d.]+x/);
    }
  });

  it.skipIf(!existsSync('/proc/self/task'))('reads the calling thread CPU time, which grows with work done on it', () => {
    const a = mainThreadCpuSeconds(fs);
    expect(a).not.toBeNull();
    // A fixed amount of work (~50 ms of one core), not a wall-clock wait: CPU time does not depend on load.
    let x = 0;
    for (let i = 0; i < 3e7; i++) x += Math.sqrt(x + i);
    const b = mainThreadCpuSeconds(fs);
    expect(x).toBeGreaterThan(0);
    expect(b! - a!).toBeGreaterThan(0.02);
  });
  it.skipIf(!existsSync('/proc/self/task') || cpuThreadsInfo().threads < 2)(
    "reads the other threads' CPU time, which grows when the pool's workers share a product",
    () => {
      const be = new CpuBackend({ dtype: 'f32' });
      const n = 384;
      const a = be.fromArray(Float32Array.from({ length: n * n }, (_, i) => Math.sin(i)));
      const before = otherThreadsCpuSeconds(fs);
      expect(before).not.toBeNull();
      // ~4.5 GFLOP shared between the threads: the workers' half is ~0.05-0.1 s of CPU, whatever the load.
      for (let r = 0; r < 40; r++) be.free(be.matmul(a, a, { batch: 1, m: n, n, k: n }));
      expect(otherThreadsCpuSeconds(fs)! - before!).toBeGreaterThan(0.02);
    },
  );
  it('has none without a file system', () => {
    expect(mainThreadCpuSeconds(undefined)).toBeNull();
    expect(otherThreadsCpuSeconds(undefined)).toBeNull();
  });
});
