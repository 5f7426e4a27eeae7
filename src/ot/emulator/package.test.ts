import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { paramCounts } from '../../model/params';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { compressModel } from './compress';
import {
  buildEmulator,
  emulatorMeta,
  readEmulatorPackage,
  stableStringify,
  unzipEmulatorPackage,
  weightsSha256,
  nobleSha256,
  writeEmulatorPackage,
  zipEmulatorPackage,
} from './package';
import { supportPass } from './support';

describe('emulator package', () => {
  it('round-trips byte-identically (folder and zip) and reloads into a working decoder', async () => {
    const spec = smallSpec('opt', { numLayers: 5, hiddenSize: 32, numHeads: 4 });
    const weights = randomTestModel(spec, 3);
    const be = new CpuBackend({ dtype: 'f32' });
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % spec.vocabSize);
    const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? -100 : ids[i + 1]!));
    const sp = await supportPass(decoderFromWeights(be, spec, weights), [{ ids, targets, B: 2, T: 8 }], [1, 2, 3]);
    const r = compressModel(
      spec,
      weights,
      { method: 'gradot', keep: 0.5, split: { bottom: 1, top: 1 }, lambdaAttn: 0.5, lambdaMlp: 2 },
      sp.stats,
    );
    const meta = emulatorMeta(
      r,
      { modelId: 'test/opt-tiny', sha256: await weightsSha256(weights), params: paramCounts(spec).total },
      sp,
      5,
    );
    expect(meta.split).toEqual({ bottom: 1, top: 1 });
    expect(meta.support?.digest).toBe(sp.digest);
    const files = writeEmulatorPackage({ meta, weights: r.weights });
    const back = readEmulatorPackage(files);
    const again = writeEmulatorPackage(back);
    for (const name of files.keys()) expect(Buffer.compare(Buffer.from(again.get(name)!), Buffer.from(files.get(name)!))).toBe(0);
    const zip = zipEmulatorPackage(files);
    expect(Buffer.compare(Buffer.from(zipEmulatorPackage(unzipEmulatorPackage(zip))), Buffer.from(zip))).toBe(0);
    // Contents survive: spec, records, λs, weights.
    expect(back.meta.spec).toEqual(r.spec);
    expect(back.meta.layers[1]!.keptChannels).toEqual(r.layers[1]!.keptChannels);
    expect(back.meta.lambdaMlp).toBe(2);
    for (const [n, t] of r.weights) expect(back.weights.get(n)!.data).toEqual(t.data);
    const dec = decoderFromWeights(be, back.meta.spec, back.weights);
    const a = await dec.forward(ids, 2, 8).read();
    const b = await decoderFromWeights(be, r.spec, r.weights).forward(ids, 2, 8).read();
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('rejects foreign or inconsistent packages', () => {
    const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
    expect(() => readEmulatorPackage(new Map([['emulator.json', enc({ format: 'x' })]]))).toThrow(/needs/);
    expect(() =>
      readEmulatorPackage(
        new Map([
          ['emulator.json', enc({ format: 'x' })],
          ['emulator.safetensors', new Uint8Array(8)],
        ]),
      ),
    ).toThrow(/not a GradOT emulator/);
  });

  it('stableStringify sorts keys at every level and drops undefined', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }, 0)).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
    expect(() => stableStringify({ a: Infinity })).toThrow(/non-finite/);
  });

  it('buildEmulator runs support pass, compression, evaluation and packaging, and reports each', async () => {
    const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 32, numHeads: 4 });
    const weights = randomTestModel(spec, 9);
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 3) % spec.vocabSize);
    const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? -100 : ids[i + 1]!));
    const support = [{ ids, targets, B: 2, T: 8 }];
    const phases: string[] = [];
    const out = await buildEmulator(spec, weights, {
      modelId: 'test/llama-tiny',
      backend: new CpuBackend({ dtype: 'f32' }),
      support,
      method: 'gradot',
      keep: 0.6,
      split: { bottom: 1, top: 1 },
      onProgress: (p) => phases.push(p),
    });
    expect(phases).toEqual(['support', 'compress', 'evaluate', 'package']);
    const r = out.report;
    expect(r.params.after).toBeLessThan(r.params.before);
    expect(r.params.middleAfter).toBeLessThanOrEqual(r.params.middleTarget);
    expect(r.layers.map((l) => l.role)).toEqual(['bottom', 'middle', 'middle', 'top']);
    expect(Number.isFinite(r.supportLoss.full) && Number.isFinite(r.supportLoss.emulator)).toBe(true);
    expect(r.supportLoss.emulator).not.toBe(r.supportLoss.full);
    for (const v of Object.values(r.seconds)) expect(v).toBeGreaterThanOrEqual(0);
    const back = readEmulatorPackage(out.files);
    expect(back.meta.source.modelId).toBe('test/llama-tiny');
    expect(back.meta.support?.tokens).toBe(14);
  });
});

describe('emulator package dtype', () => {
  it('is written in the source model dtype (F16/BF16), smaller than the model, and round-trips; F32 on request', async () => {
    const { sourceDtype } = await import('./package');
    const { f32BitsToBF16, f32BitsToHalf, halfToFloat, parseSafetensorsHeader, serializeSafetensors } = await import(
      '../../model/safetensors'
    );
    for (const dtype of ['F16', 'BF16'] as const) {
      const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 32, numHeads: 4 });
      const weights = randomTestModel(spec, 21);
      // As loaded from an F16/BF16 checkpoint: values representable in the dtype, dtype recorded.
      for (const t of weights.values()) {
        const u = new Uint32Array(t.data.buffer);
        for (let i = 0; i < u.length; i++) {
          if (dtype === 'BF16') u[i] = f32BitsToBF16(u[i]!) << 16;
          else t.data[i] = halfToFloat(f32BitsToHalf(u[i]!));
        }
        t.dtype = dtype;
      }
      expect(sourceDtype(weights)).toBe(dtype);
      const modelBytes = serializeSafetensors(weights, { dtype }).length;
      const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % spec.vocabSize);
      const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? -100 : ids[i + 1]!));
      const base = {
        modelId: 'test/half',
        backend: new CpuBackend({ dtype: 'f32' }),
        support: [{ ids, targets, B: 2, T: 8 }],
        split: { bottom: 1, top: 1 },
      };
      for (const keep of [0.3, 0.9]) {
        const out = await buildEmulator(spec, weights, { ...base, method: 'gradot', keep });
        const st = out.files.get('emulator.safetensors')!;
        const header = parseSafetensorsHeader(st);
        expect(new Set([...header.entries.values()].map((e) => e.dtype))).toEqual(new Set([dtype]));
        expect(out.meta.dtype).toBe(dtype);
        expect(st.length).toBeLessThan(modelBytes);
        const back = readEmulatorPackage(out.files);
        // The evaluated emulator is exactly what the package holds.
        for (const [n, t] of out.result.weights) expect(Array.from(back.weights.get(n)!.data)).toEqual(Array.from(t.data));
        const again = writeEmulatorPackage(back);
        for (const name of out.files.keys())
          expect(Buffer.compare(Buffer.from(again.get(name)!), Buffer.from(out.files.get(name)!))).toBe(0);
      }
      const f32 = await buildEmulator(spec, weights, { ...base, method: 'svd', keep: 0.5, dtype: 'F32' });
      expect([...parseSafetensorsHeader(f32.files.get('emulator.safetensors')!).entries.values()][0]!.dtype).toBe('F32');
    }
  });
});

describe('weightsSha256', () => {
  it('hashes tensor by tensor in Node to the same digest as hashing the serialized file', async () => {
    const { serializeSafetensors } = await import('../../model/safetensors');
    const spec = smallSpec('gpt2', { numLayers: 2, hiddenSize: 16, numHeads: 2 });
    const w = randomTestModel(spec, 4);
    const bytes = serializeSafetensors(w, { dtype: 'F32' });
    const ref = Array.from(new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)), (b) =>
      b.toString(16).padStart(2, '0'),
    ).join('');
    expect(await weightsSha256(w)).toBe(ref);
    // The browser's path (pure-JS SHA-256, streamed the same way) gives the same digest.
    expect(await weightsSha256(w, nobleSha256())).toBe(ref);
    // and a change of one weight changes it
    w.get('layers.0.attn.q.weight')!.data[3]! += 1e-3;
    expect(await weightsSha256(w, nobleSha256())).not.toBe(ref);
  });
});
