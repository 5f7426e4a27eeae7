/**
 * What the studio worker lets go of between jobs, and that what it re-opens gives the same numbers:
 * - a built emulator keeps its zip (a Blob) and the compressor's record, not the emulator's or the model's
 *   weights; a spectrum re-reads its one source matrix from the model's files (GPT-2's fused, transposed
 *   c_attn included) and gets the σ the in-memory matrix gives;
 * - an opened package keeps its files and manifest; evaluation decodes it for the job;
 * - plug-in uses one decoder of the full model (over the host arrays on the CPU backend): Full ZS on it,
 *   then the adapter's tensors replaced in place; its logits are bit-identical to a second decoder built
 *   from plugIn's weights, and the host arrays are never written.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api } from '../../workers/studio';
import { builtPackages, openPackages } from '../../workers/studio/state';
import { decoderOverHost } from '../../workers/studio/host-decoder';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { CpuBackend } from '../engine/cpu/backend';
import { exactSvd } from '../engine/linalg/svd';
import { decoderFromWeights, type Decoder } from '../model/decoder';
import { loadHFModel } from '../model/hf';
import { FileListSource } from '../model/source';
import type { WeightMap } from '../model/weights';
import { compressModel } from '../ot/emulator/compress';
import { readEmulatorPackage, unzipEmulatorPackage } from '../ot/emulator/package';
import { plugIn } from '../ot/offsite/plugin';
import { synthExamples, tinyModel } from '../ot/offsite/test-helpers';
import { tune } from '../ot/offsite/tune';
import { plugIntoDecoder } from './plug-in';
import type { InputFile } from './studio-api';
import { blobOf, studioCompressOptions, studioModelFiles } from './studio-test-helpers';

const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 32);
const bits = (a: ArrayLike<number>): Buffer => Buffer.from(Float32Array.from(a).buffer);
const modelFiles = async (family: 'gpt2' | 'llama'): Promise<InputFile[]> => (await studioModelFiles(family, 7)).files;

async function logits(dec: Decoder): Promise<Float32Array> {
  const y = dec.forward(ids, 2, 8);
  const out = (await y.read()) as Float32Array;
  y.free();
  return out;
}

describe('studio: what a finished job keeps', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    it(`${family}: a built emulator keeps a zip and its record; spectra re-read the source matrix (same σ)`, async () => {
      const files = await modelFiles(family);
      await api.openModel(family, files);
      const r = await api.compress(studioCompressOptions('svd'), () => undefined);
      const kept = builtPackages.get(r.packageId)!;
      expect(kept.zip).toBeInstanceOf(Blob);
      expect(kept.zip.size).toBe(r.packageBytes);
      expect('weights' in kept.result).toBe(false);
      expect(Object.values(kept).some((v) => v instanceof Map)).toBe(false);
      // The download is the package, readable as before.
      const dl = await api.exportPackage(r.packageId);
      const pkg = readEmulatorPackage(unzipEmulatorPackage(new Uint8Array(await new Blob([dl.bytes as Blob]).arrayBuffer())));
      expect(pkg.meta.method).toBe('svd');

      // σ from the re-read matrix equals σ of the model's own in-memory matrix, bit for bit.
      const full = await loadHFModel(new FileListSource(new Map(files.map((f) => [f.path.split('/')[1]!, f.data])), family));
      for (const [layer, proj] of [
        [1, 'q'],
        [2, 'v'],
        [1, 'down'],
      ] as const) {
        const w = full.weights.get(`layers.${layer}.${proj === 'down' ? 'mlp' : 'attn'}.${proj}.weight`)!;
        const want = exactSvd(w.data, w.shape[0]!, w.shape[1]!).S;
        const s = await api.spectrum(r.packageId, layer, proj);
        expect(bits(s.sigma).equals(bits(want)), `${family} ${layer} ${proj}`).toBe(true);
        expect(s.kept.length).toBe(r.matrices.find((m) => m.layer === layer && m.proj === proj)!.kept);
      }
      // Only the middle blocks have a spectrum, as before.
      await expect(api.spectrum(r.packageId, 0, 'q')).rejects.toThrow(/no matrix q in middle block 0/);
    });
  }

  it('an opened package keeps its files and manifest; evaluation decodes it and gives the same numbers', async () => {
    const files = await modelFiles('llama');
    await api.openModel('llama', files);
    const r = await api.compress(studioCompressOptions('drop'), () => undefined);
    const dl = await api.exportPackage(r.packageId);
    const p = await api.openPackage('emu.zip', [{ path: 'emu.zip', data: dl.bytes as Blob }]);
    const entry = openPackages.get(p.packageId)!;
    expect('pkg' in entry).toBe(false);
    expect(entry.meta.method).toBe('drop');
    const test = join(REPO_ROOT, 'public/data/genre-short-mc/test.jsonl');
    const ds = await api.openDataset({ path: 'test.jsonl', data: blobOf(await readFile(test)) });
    const a = await api.evaluate({ packageId: p.packageId, datasetId: ds.datasetId, limit: 4 }, () => undefined);
    const b = await api.evaluate({ packageId: p.packageId, datasetId: ds.datasetId, limit: 4 }, () => undefined);
    expect(a.emulatorZS.n).toBe(4);
    expect(Number.isFinite(a.emulatorZS.value)).toBe(true);
    expect(b.emulatorZS).toEqual({ ...a.emulatorZS, seconds: b.emulatorZS.seconds });
  });
});

describe('plug-in into one decoder of the full model', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    for (const method of ['adapter', 'lora'] as const) {
      it(`${family} ${method}: same logits as a decoder of plugIn's weights; the host arrays are not written`, async () => {
        const split = { bottom: 1, top: 1 };
        const full = tinyModel(family, 5);
        const emu = compressModel(full.spec, full.weights, { method: 'drop', keep: 0.34, split });
        const r = await tune(
          decoderFromWeights(new CpuBackend(), emu.spec, emu.weights),
          { train: synthExamples(8, 1) },
          { split, lr: 1e-2, batchSize: 4, maxSteps: 2, method, lora: { r: 2, alpha: 4, targets: ['q', 'k', 'v', 'up'] } },
        );
        const before: WeightMap = new Map([...full.weights].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
        const be = new CpuBackend();
        const plugged = await plugIn(full, r.adapter, be);
        const ref = decoderFromWeights(be, plugged.spec, plugged.weights);
        const want = await logits(ref);
        ref.free();
        const zsRef = decoderFromWeights(be, full.spec, full.weights);
        const zsWant = await logits(zsRef);
        zsRef.free();

        const dec = decoderOverHost(be, full.spec, full.weights);
        // It is the host model, not a copy.
        expect(dec.params.get('layers.2.mlp.up.weight')!.storage).toHaveProperty('data', full.weights.get('layers.2.mlp.up.weight')!.data);
        expect(bits(await logits(dec)).equals(bits(zsWant))).toBe(true);
        const replaced = await plugIntoDecoder(dec, full, r.adapter);
        expect(replaced.sort()).toEqual([...plugged.replaced].sort());
        expect(replaced.length).toBeGreaterThan(0);
        const got = await logits(dec);
        expect(bits(got).equals(bits(want))).toBe(true);
        expect(bits(got).equals(bits(zsWant))).toBe(false);
        dec.free();
        for (const [k, t] of before) expect(bits(full.weights.get(k)!.data).equals(bits(t.data)), k).toBe(true);
      });
    }
  }
});
