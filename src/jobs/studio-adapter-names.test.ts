/**
 * The data owner's adapters opened next to the model they were tuned for (workers/studio in Node): names
 * are compared as canonical tensors, so GPT-2 adapters written with the `transformer.` prefix match a hub
 * gpt2 checkpoint whose own names have none (the hub's gpt2 files leave it out), and adapters of another
 * model are still refused by name.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api } from '../../workers/studio';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { hfConfigFromSpec, toHFWeights } from '../model/hf';
import { randomTestModel, smallSpec } from '../model/random-model';
import { serializeSafetensors } from '../model/safetensors';
import type { WeightMap } from '../model/weights';
import type { InputFile } from './studio-api';

const blob = (b: Uint8Array | string): Blob => new Blob([typeof b === 'string' ? b : new Uint8Array(b)]);

describe('studio: adapters against the open model', () => {
  it('GPT-2 adapters with the transformer. prefix open against a hub gpt2 folder without it; foreign ones do not', async () => {
    const spec = smallSpec('gpt2', { numLayers: 3, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 32 });
    const hf = toHFWeights(spec, randomTestModel(spec, 3));
    expect([...hf.keys()].every((n) => n.startsWith('transformer.'))).toBe(true);
    // The hub's layout: the same tensors without the prefix.
    const hub: WeightMap = new Map([...hf].map(([n, t]) => [n.slice('transformer.'.length), t]));
    const files: InputFile[] = [
      { path: 'gpt2/config.json', data: blob(JSON.stringify(hfConfigFromSpec(spec))) },
      { path: 'gpt2/model.safetensors', data: blob(serializeSafetensors(hub)) },
    ];
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      files.push({ path: `gpt2/${f}`, data: blob(await readFile(join(REPO_ROOT, 'public/models/demo', f))) });
    }
    await api.openModel('gpt2', files);

    const adapter = (names: string[]): InputFile[] => {
      const w: WeightMap = new Map(names.map((n) => [n, hf.get(n) ?? hf.get('transformer.h.0.attn.c_attn.weight')!]));
      return [
        { path: 'adapters/adapter.safetensors', data: blob(serializeSafetensors(w)) },
        { path: 'adapters/adapter.json', data: blob('{}') },
      ];
    };
    const ok = await api.openAdapters(
      'adapters',
      adapter(['transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_attn.bias', 'transformer.h.2.mlp.c_proj.weight']),
    );
    expect(ok.unknownTensors).toEqual([]);
    expect(ok.tensorCount).toBe(3);
    await expect(api.openAdapters('other', adapter(['transformer.h.7.attn.c_attn.weight']))).rejects.toThrow(
      /1 of 1 adapter tensors are not in the open model/,
    );
  });
});
