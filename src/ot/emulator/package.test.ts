import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { paramCounts } from '../../model/params';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { compressModel } from './compress';
import {
  buildEmulator, emulatorMeta, readEmulatorPackage, stableStringify, unzipEmulatorPackage, weightsSha256, writeEmulatorPackage,
  zipEmulatorPackage,
} from './package';
import { supportPass } from './support';

describe('emulator package', () => {
  it('round-trips byte-identically (folder and zip) and reloads into a working decoder', async () => {
    const spec = smallSpec('opt', { numLayers: 5, hiddenSize: 32, numHeads: 4 });
    const weights = randomTestModel(spec, 3);
    const be = new CpuBackend({ dtype: 'f32' });
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % spec.vocabSize);
    const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? -100 : ids[i + 1]));
    const sp = await supportPass(decoderFromWeights(be, spec, weights), [{ ids, targets, B: 2, T: 8 }], [1, 2, 3]);
    const r = compressModel(spec, weights, { method: 'gradot', keep: 0.5, split: { bottom: 1, top: 1 }, lambdaAttn: 0.5, lambdaMlp: 2 }, sp.stats);
    const meta = emulatorMeta(r, { modelId: 'test/opt-tiny', sha256: await weightsSha256(weights), params: paramCounts(spec).total }, sp, 5);
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
    expect(back.meta.layers[1].keptChannels).toEqual(r.layers[1].keptChannels);
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
    expect(() => readEmulatorPackage(new Map([['emulator.json', enc({ format: 'x' })], ['emulator.safetensors', new Uint8Array(8)]]))).toThrow(/not a GradOT emulator/);
  });

  it('stableStringify sorts keys at every level and drops undefined', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }, 0)).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
    expect(() => stableStringify({ a: Infinity })).toThrow(/non-finite/);
  });

  it('buildEmulator runs support pass, compression, evaluation and packaging, and reports each', async () => {
    const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 32, numHeads: 4 });
    const weights = randomTestModel(spec, 9);
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 3) % spec.vocabSize);
    const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? -100 : ids[i + 1]));
    const support = [{ ids, targets, B: 2, T: 8 }];
    const phases: string[] = [];
    const out = await buildEmulator(spec, weights, {
      modelId: 'test/llama-tiny', backend: new CpuBackend({ dtype: 'f32' }), support,
      method: 'gradot', keep: 0.6, split: { bottom: 1, top: 1 }, onProgress: (p) => phases.push(p),
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
