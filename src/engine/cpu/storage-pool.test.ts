/**
 * The CPU backend's storage pool: its bounds, that freed arrays are reused, that a use after free is loud in
 * debug mode, and that recycling changes no number (model forward/backward, the support pass and a GradOT
 * build on the demo model, bit for bit and byte for byte against a backend without the pool).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decoderFromWeights } from '../../model/decoder';
import { loadHFModel } from '../../model/hf';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { nodeDirSource } from '../../model/source';
import { buildEmulator } from '../../ot/emulator/package';
import { supportPass } from '../../ot/emulator/support';
import { Rng } from '../random';
import { backward, noGrad, tidy } from '../tensor';
import { CpuBackend, readSync } from './backend';
import { DEFAULT_POOL_BYTES, poolSettingsFromEnv, StoragePool } from './storage-pool';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const freshSeed = () => (Math.random() * 2 ** 31) | 0;

function randomArray(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

describe('StoragePool', () => {
  it('holds at most maxBytes, dropping the oldest; never keeps an array over the cap; trim empties it', () => {
    const pool = new StoragePool({ maxBytes: 1000 });
    const made = [10, 20, 10, 50, 100].map((n) => new Float32Array(n)); // 40 + 80 + 40 + 200 + 400 bytes
    for (const a of made) expect(pool.give(a)).toBe(true);
    expect(pool.bytes).toBe(760);
    // 400 more bytes: the oldest arrays go (made[0], made[1], made[2]) until the pool fits.
    const last = new Float32Array(100);
    expect(pool.give(last)).toBe(true);
    expect(pool.bytes).toBe(1000);
    // Only exact sizes match; the newest of a size comes back first.
    expect(pool.take(100)).toBe(last);
    expect(pool.take(50)).toBe(made[3]);
    expect(pool.bytes).toBe(400);
    expect(pool.give(new Float32Array(251))).toBe(false); // 1004 bytes > cap
    expect(pool.bytes).toBe(400);
    pool.trim();
    expect(pool.bytes).toBe(0);
    expect(pool.size).toBe(0);
    expect(pool.stats.hits).toBe(2);
  });

  it('lets as many bytes go as misses allocate fresh, oldest first and in whole arrays', () => {
    const pool = new StoragePool({ maxBytes: 10_000 });
    const made = [10, 20, 30, 40].map((n) => new Float32Array(n)); // 40, 80, 120, 160 bytes
    for (const a of made) pool.give(a);
    expect(pool.take(25)).toBeNull(); // 100 bytes fresh: made[0] (40) goes; 60 owed, less than made[1]
    expect(pool.bytes).toBe(360);
    expect(pool.take(15)).toBeNull(); // 60 more owed: made[1] (80) goes, 40 owed
    expect(pool.bytes).toBe(280);
    expect(pool.take(40)).toBe(made[3]);
    expect(pool.take(1000)).toBeNull(); // made[2] goes; nothing left
    expect(pool.bytes).toBe(0);
    expect(pool.stats).toMatchObject({ hits: 1, misses: 3, kept: 4, dropped: 3 });
    const keeping = new StoragePool({ maxBytes: 10_000, drainOnMiss: false });
    keeping.give(new Float32Array(10));
    expect(keeping.take(1000)).toBeNull();
    expect(keeping.bytes).toBe(40);
  });

  it('poisons what it is given with NaN in debug mode', () => {
    const rng = new Rng(freshSeed());
    const pool = new StoragePool({ poison: true });
    const a = randomArray(rng, 64);
    pool.give(a);
    expect(a.every((v) => Number.isNaN(v))).toBe(true);
    expect(pool.maxBytes).toBe(DEFAULT_POOL_BYTES);
  });

  it('is in debug mode under Vitest', () => {
    expect(poolSettingsFromEnv().poison).toBe(true);
  });
});

describe('CpuBackend storage recycling', () => {
  it('hands a freed array to the next op of that size; zeros() really zeros a recycled one', () => {
    const rng = new Rng(freshSeed());
    const be = new CpuBackend({ pool: { maxBytes: 1 << 20 } });
    const x = be.fromArray(randomArray(rng, 256));
    const y = be.scale(x, 3);
    const yArr = readSync(y);
    be.free(y);
    const z = be.scale(x, 2);
    expect(readSync(z)).toBe(yArr);
    const xs = readSync(x);
    for (let i = 0; i < 256; i++) expect(readSync(z)[i]).toBe(Math.fround(xs[i]! * 2));
    be.free(z);
    const zero = be.zeros(256);
    expect(readSync(zero)).toBe(yArr);
    expect(readSync(zero).every((v) => v === 0)).toBe(true);
    expect(be.poolStats()!.hits).toBe(2);
  });

  it('keeps views and arrays it did not allocate out of the pool; a double free is harmless', () => {
    const rng = new Rng(freshSeed());
    const be = new CpuBackend({ pool: { maxBytes: 1 << 20 } });
    const x = be.fromArray(randomArray(rng, 128));
    const v = be.view(x, 0, 128); // same length as x, but a view
    be.free(v);
    expect(be.poolStats()!.bytes).toBe(0);
    expect(readSync(x).length).toBe(128); // the viewed storage is untouched
    be.free(x);
    be.free(x);
    expect(be.poolStats()!.kept).toBe(1);
    const a = be.fromArray(randomArray(rng, 128));
    const b = be.fromArray(randomArray(rng, 128));
    expect(readSync(a)).not.toBe(readSync(b)); // the one pooled array went to a alone
  });

  it('makes a read through an array kept past free() loud (NaN) in debug mode', () => {
    const rng = new Rng(freshSeed());
    const be = new CpuBackend({ pool: { maxBytes: 1 << 20, poison: true } });
    const x = be.fromArray(randomArray(rng, 32));
    const y = be.scale(x, 0.5);
    const kept = readSync(y); // a caller holding the array...
    expect(kept.every(Number.isFinite)).toBe(true);
    be.free(y); // ...past the storage's free
    expect(kept.some(Number.isFinite)).toBe(false);
    expect(() => be.add(y, x)).toThrow(/lengths differ/); // and the storage itself is emptied
  });

  it('gives the same bits with and without the pool: forward and backward of a model, step after step', () => {
    for (const family of ['llama', 'gpt2'] as const) {
      const seed = freshSeed();
      const spec = smallSpec(family, { numLayers: 3, hiddenSize: 32, numHeads: 4 });
      const weights = randomTestModel(spec, seed);
      const rng = new Rng(seed + 1);
      const B = 2;
      const T = 12;
      const batches = Array.from({ length: 3 }, () => {
        const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
        const targets = Int32Array.from(ids, (_, i) => (i % T === T - 1 ? -100 : ids[i + 1]!));
        return { ids, targets };
      });
      const run = (be: CpuBackend) => {
        const dec = decoderFromWeights(be, spec, weights, { requiresGrad: true });
        const out: Float32Array[] = [];
        for (const b of batches) {
          tidy(() => {
            const loss = dec.loss(b.ids, b.targets, B, T);
            backward(loss, { release: true });
            out.push(Float32Array.from(readSync(loss.storage)));
          });
          for (const p of dec.namedParams()) out.push(Float32Array.from(readSync(p.tensor.grad!.storage)));
          dec.zeroGrad();
          out.push(Float32Array.from(readSync(noGrad(() => tidy(() => dec.forward(b.ids, B, T))).storage)));
        }
        return out;
      };
      const pooled = new CpuBackend();
      const want = run(new CpuBackend({ pool: false }));
      const got = run(pooled);
      expect(pooled.poolStats()!.hits).toBeGreaterThan(0);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) {
        expect(got[i]!.every(Number.isFinite), `${family} seed ${seed}: output ${i} finite`).toBe(true);
        expect(Buffer.from(got[i]!.buffer).equals(Buffer.from(want[i]!.buffer)), `${family} seed ${seed}: output ${i}`).toBe(true);
      }
    }
  });

  it('gives the same bits with and without the pool: support pass and a GradOT build of the demo model', async () => {
    const { spec, weights } = await loadHFModel(nodeDirSource(join(root, 'public/models/demo')));
    const seed = freshSeed();
    const rng = new Rng(seed);
    const B = 2;
    const T = 16;
    const support = Array.from({ length: 2 }, () => {
      const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
      const targets = Int32Array.from(ids, (_, i) => (i % T === T - 1 ? -100 : ids[i + 1]!));
      return { ids, targets, B, T };
    });
    const build = async (be: CpuBackend) => {
      // A tiny budget: one block per group, so group inputs and seeds go through the host between groups.
      const sp = await supportPass(decoderFromWeights(be, spec, weights), support, [2, 3, 4, 5], { memoryBudget: 1 });
      expect(sp.groups.length).toBe(4);
      const out = await buildEmulator(spec, weights, {
        modelId: 'test/demo',
        backend: be,
        support,
        method: 'gradot',
        keep: 0.5,
        split: { bottom: 2, top: 2 },
      });
      return { sp, files: out.files };
    };
    const pooled = new CpuBackend();
    const want = await build(new CpuBackend({ pool: false }));
    const got = await build(pooled);
    expect(pooled.poolStats()!.hits).toBeGreaterThan(0);
    expect(got.sp.digest).toBe(want.sp.digest);
    expect(got.sp.meanLoss).toBe(want.sp.meanLoss);
    for (const [name, s] of want.sp.stats) {
      for (const [k, v] of Object.entries(s)) {
        const w = v as unknown;
        const g = (got.sp.stats.get(name) as unknown as Record<string, unknown>)[k];
        if (ArrayBuffer.isView(w))
          expect(
            Buffer.from((g as Float64Array).buffer).equals(Buffer.from((w as Float64Array).buffer)),
            `seed ${seed}: ${name}.${k}`,
          ).toBe(true);
        else expect(g, `seed ${seed}: ${name}.${k}`).toEqual(w);
      }
    }
    expect([...got.files.keys()]).toEqual([...want.files.keys()]);
    for (const [name, bytes] of want.files)
      expect(Buffer.from(got.files.get(name)!).equals(Buffer.from(bytes)), `seed ${seed}: ${name}`).toBe(true);
  });
});
