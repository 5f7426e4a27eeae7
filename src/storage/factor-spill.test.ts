import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend';
import { decoderFromWeights } from '../model/decoder';
import { randomTestModel, smallSpec } from '../model/random-model';
import { compressModel, GradotScorer } from '../ot/emulator/compress';
import { supportPass, type SupportBatch } from '../ot/emulator/support';
import { FolderFactorSpill, SPILL_DISK_RESERVE } from './factor-spill';

const parents: string[] = [];
function parent(): string {
  const p = mkdtempSync(join(tmpdir(), 'spill-test-'));
  parents.push(p);
  return p;
}
afterEach(() => {
  for (const p of parents.splice(0)) rmSync(p, { recursive: true, force: true });
});

function randomF32(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

function batches(vocab: number, n: number, B: number, T: number): SupportBatch[] {
  let s = 7;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648);
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: B * T }, () => next() % vocab);
    const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]!));
    return { ids, targets, B, T };
  });
}

describe('FolderFactorSpill', () => {
  it('gives back the same bits, once, and leaves no folder behind', () => {
    const spill = new FolderFactorSpill(parent());
    const a = { rank: 3, US: randomF32(5 * 3, 1), Vt: randomF32(3 * 7, 2) };
    const b = { rank: 2, US: randomF32(4 * 2, 3), Vt: randomF32(2 * 9, 4) };
    expect(spill.put('a', a)).toBe(true);
    expect(spill.put('b', b)).toBe(true);
    expect(readdirSync(spill.dir)).toHaveLength(2);
    const back = spill.take('b')!;
    expect(back.rank).toBe(2);
    expect(Array.from(back.US)).toEqual(Array.from(b.US));
    expect(Array.from(back.Vt)).toEqual(Array.from(b.Vt));
    expect(spill.take('b')).toBeNull();
    expect(readdirSync(spill.dir)).toHaveLength(1);
    expect(spill.written).toBe(4 * (15 + 21 + 8 + 18));
    spill.close();
    expect(existsSync(spill.dir)).toBe(false);
  });

  it('declines when the disk would keep less than its reserve, and when a file cannot be read back', () => {
    let free = SPILL_DISK_RESERVE + 100;
    const spill = new FolderFactorSpill(parent(), () => free);
    const f = { rank: 4, US: randomF32(16, 5), Vt: randomF32(16, 6) }; // 128 bytes
    expect(spill.put('x', f)).toBe(false);
    free += 1000;
    expect(spill.put('x', f)).toBe(true);
    rmSync(join(spill.dir, readdirSync(spill.dir)[0]!));
    expect(spill.take('x')).toBeNull();
    spill.close();
  });

  for (const family of ['gpt2', 'qwen2'] as const) {
    it(`${family}: a build whose factors all went to disk equals one that kept them, and one that recomputed them`, async () => {
      const be = new CpuBackend({ dtype: 'f32' });
      const spec = smallSpec(family, { numLayers: 6, hiddenSize: 32, numHeads: 4 });
      const weights = randomTestModel(spec, 13);
      const dec = decoderFromWeights(be, spec, weights);
      const bs = batches(spec.vocabSize, 2, 2, 8);
      const middle = [1, 2, 3, 4];
      const opts = { method: 'gradot' as const, keep: 0.5, split: { bottom: 1, top: 1 } };
      const build = async (budget: number, spill?: FolderFactorSpill) => {
        const scorer = new GradotScorer(spec, weights, opts, budget, spill);
        await supportPass(dec, bs, middle, { linears: scorer.needed, onStats: (n, s) => scorer.consume(n, s) });
        const progress: [number, number][] = [];
        const r = compressModel(spec, weights, { ...opts, onLinearBuilt: (d, t) => progress.push([d, t]) }, undefined, scorer);
        return { r, progress };
      };
      const kept = await build(Infinity);
      const recomputed = await build(0);
      const spill = new FolderFactorSpill(parent());
      const spilled = await build(0, spill);
      expect(spill.written).toBeGreaterThan(0);
      expect(spill.read).toBe(spill.written);
      expect(readdirSync(spill.dir)).toHaveLength(0);
      spill.close();
      for (const other of [recomputed, spilled]) {
        expect(other.r.layers.map((l) => l.keptComponents)).toEqual(kept.r.layers.map((l) => l.keptComponents));
        for (const [n, t] of kept.r.weights) expect(Array.from(other.r.weights.get(n)!.data)).toEqual(Array.from(t.data));
      }
      // Progress counts every factored matrix once, up to the total.
      const total = kept.progress.at(-1)![1];
      expect(total).toBeGreaterThan(0);
      expect(kept.progress.map((p) => p[0])).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(spilled.progress).toEqual(kept.progress);
    });
  }
});

describe('FolderFactorSpill and signals', () => {
  // The child spills one matrix, then computes on its main thread without returning to the event loop, as
  // a compress does for minutes: a signal must end it at once, and the launcher must remove the folder.
  const busyScript = (importPath: string) => `
      import { FolderFactorSpill } from ${JSON.stringify(importPath)};
      const s = new FolderFactorSpill();
      s.put('a', { rank: 1, US: new Float32Array([1.5]), Vt: new Float32Array([2.5]) });
      console.log('ready');
      let x = 0;
      for (;;) x = Math.sin(x + 1);
    `;

  it('a process busy on its main thread ends at once on SIGTERM, and the launcher removes its spill folder', async () => {
    const { runTuned } = await import('../../bin/launcher.mjs');
    const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('gradot-run-')));
    const script = busyScript(join(process.cwd(), 'src/storage/factor-spill.ts'));
    const { child, scratch, done } = runTuned(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      ...process.env,
    });
    expect(before.has(basename(scratch))).toBe(false);
    // stdio is inherited: poll for the spill folder instead of reading 'ready'.
    const t0 = Date.now();
    while (!existsSync(scratch) || readdirSync(scratch).length === 0) {
      if (Date.now() - t0 > 30_000) throw new Error('the child never created its spill folder');
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      const spilled = join(scratch, readdirSync(scratch)[0]!);
      expect(readdirSync(spilled).length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 300)); // well inside the busy loop
      const t1 = Date.now();
      child.kill('SIGTERM');
      expect(await done).toBe(143);
      expect(Date.now() - t1).toBeLessThan(5000);
      expect(existsSync(scratch)).toBe(false);
    } finally {
      child.kill('SIGKILL'); // never leave a spinning child behind a failed expectation
    }
  });

  it('without the launcher the spill folder goes under the system temporary folder and leaves with a normal exit', async () => {
    const dir = parent();
    const { spawnSync } = await import('node:child_process');
    const script = `
      import { FolderFactorSpill } from ${JSON.stringify(join(process.cwd(), 'src/storage/factor-spill.ts'))};
      const s = new FolderFactorSpill();
      s.put('a', { rank: 1, US: new Float32Array([1.5]), Vt: new Float32Array([2.5]) });
      console.log(s.dir);
    `;
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
    delete env.GRADOT_SCRATCH_DIR;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().startsWith(join(dir, 'gradot-factors-'))).toBe(true);
    expect(readdirSync(dir).filter((n) => n.startsWith('gradot-factors-'))).toHaveLength(0); // (tsx keeps a cache there too)
  });
});
