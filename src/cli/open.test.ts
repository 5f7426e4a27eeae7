import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from './open';
import { randomModel, smallSpec, writeHFFolder } from '../model/random-model';
import { serializeSafetensors } from '../model/safetensors';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-open-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function same(a: WeightMap, b: WeightMap): void {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [k, v] of a) expect(Array.from(b.get(k)!.data), k).toEqual(Array.from(v.data));
}

describe('openModel', () => {
  it('opens an HF folder', async () => {
    const spec = smallSpec('qwen2');
    const w = randomModel(spec, 1);
    await writeHFFolder(join(dir, 'hf'), spec, w);
    const m = await openModel(join(dir, 'hf'));
    expect(m.kind).toBe('hf');
    expect(m.tokenizer).toBeNull();
    expect(m.spec).toEqual(spec);
    same(w, m.weights);
  });

  it('opens an emulator package folder and .zip; extra tensors are warnings, not weights', async () => {
    const base = smallSpec('opt', { numLayers: 3 });
    const spec: ModelSpec = { ...base, layers: [base.layers[0]!, { source: 1, ranks: { k: 2 }, mlpWidth: 50 }, base.layers[2]!] };
    const w = randomModel(spec, 2);
    const withExtra: WeightMap = new Map([...w, ['extra.thing', { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]]);
    const files = {
      'emulator.json': new TextEncoder().encode(JSON.stringify({ format: 'gradot-emulator', version: 1, spec })),
      'emulator.safetensors': serializeSafetensors(withExtra),
    };
    await mkdir(join(dir, 'emu'));
    for (const [k, v] of Object.entries(files)) await writeFile(join(dir, 'emu', k), v);
    await writeFile(join(dir, 'emu.zip'), zipSync(files));
    for (const p of [join(dir, 'emu'), join(dir, 'emu.zip')]) {
      const m = await openModel(p);
      expect(m.kind).toBe('emulator');
      expect(m.spec).toEqual(spec);
      same(w, m.weights);
      expect(m.warnings).toEqual(["emulator.safetensors: unexpected tensor 'extra.thing' ignored"]);
    }
  });

  it('bad zip and not-an-emulator are clear errors', async () => {
    await writeFile(join(dir, 'bad.zip'), 'not a zip');
    await expect(openModel(join(dir, 'bad.zip'))).rejects.toThrow(/bad\.zip.*not a valid \.zip/);
    await mkdir(join(dir, 'notemu'));
    await writeFile(join(dir, 'notemu', 'emulator.json'), '{"format": "other"}');
    await expect(openModel(join(dir, 'notemu'))).rejects.toThrow(/emulator\.json.*not a GradOT emulator/);
  });
});
