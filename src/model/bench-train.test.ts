import { describe, expect, it } from 'vitest';
import { compareTrainStep, formatTrainBench } from './bench-train';

describe('benchTrainStep (tiny config)', () => {
  it('runs ours and, when Debian torch is present, torch on the same architecture', async () => {
    const c = await compareTrainStep({
      layers: 1,
      hidden: 32,
      heads: 4,
      kvHeads: 2,
      intermediate: 48,
      vocab: 64,
      batch: 2,
      seq: 16,
      steps: 2,
      warmup: 1,
    });
    console.log(formatTrainBench(c));
    expect(c.ours.tokensPerStep).toBe(32);
    expect(c.ours.tokensPerSecond).toBeGreaterThan(0);
    expect(Number.isFinite(c.ours.loss)).toBe(true);
    expect(Math.abs(c.ours.loss - Math.log(64))).toBeLessThan(1);
    if (c.torch.ok) {
      // same parameter count = same architecture on both sides (GQA, untied head, SwiGLU widths)
      expect(c.torch.result.params).toBe(c.ours.params);
      expect(c.ratio).toBeGreaterThan(0);
    } else {
      expect(c.torch.skipped).toMatch(/torch|python/);
    }
  });
});
