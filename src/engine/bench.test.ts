import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchMatmul, benchMatmulTorch, compareMatmulWithTorch, formatMatmulComparison } from './bench';

describe('matmul bench', () => {
  it('reports finite positive GFLOP/s for each size', () => {
    const r = benchMatmul([16, 33], 3, 0.005);
    expect(r.map((x) => x.n)).toEqual([16, 33]);
    for (const x of r) {
      expect(Number.isFinite(x.gflops) && x.gflops > 0).toBe(true);
      expect(x.gflops).toBeCloseTo((2 * x.n ** 3) / x.seconds / 1e9, 6);
    }
  });
  it('skips the torch reference with a clear note when python is missing', async () => {
    const r = await benchMatmulTorch([16], '/nonexistent/python3');
    expect(r.ok).toBe(false);
    expect(r.note).toMatch(/not found.*skipped/);
  });
  it.skipIf(!existsSync('/usr/bin/python3'))('runs the torch reference and prints ours vs torch', async () => {
    const c = await compareMatmulWithTorch([32], 1);
    const text = formatMatmulComparison(c);
    if (c.torch.ok) {
      expect(c.rows[0]!.torch).toBeGreaterThan(0);
      expect(c.rows[0]!.ratio).toBeCloseTo(c.rows[0]!.ours / c.rows[0]!.torch!, 9);
      expect(text).toMatch(/torch .* thread/);
    } else {
      expect(text).toMatch(/note:/);
    }
  });
});
