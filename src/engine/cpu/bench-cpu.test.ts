import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchCpu, formatCpuBench } from './bench-cpu';
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
});
