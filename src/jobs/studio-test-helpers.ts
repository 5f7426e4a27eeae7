/**
 * What the studio worker's Node tests open and build with: a small random model as the files a user drops
 * (config.json, model.safetensors, the demo's tokenizer) and the compress options of a small build. One
 * definition, so the tests differ in what they check, not in how they set up.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { hfConfigFromSpec, toHFWeights } from '../model/hf';
import { randomTestModel, smallSpec } from '../model/random-model';
import { serializeSafetensors } from '../model/safetensors';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { CompressMethod, CompressOptions, InputFile } from './studio-api';

export const blobOf = (b: Uint8Array | string): Blob => new Blob([typeof b === 'string' ? b : new Uint8Array(b)]);

/** A 4-block model small enough for a test, with the demo's 4096-token vocabulary. */
export function smallStudioSpec(family: 'gpt2' | 'llama'): ModelSpec {
  return smallSpec(family, { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 32 });
}

/**
 * A random model as dropped files under `folder/` (F32 safetensors in the hub's names, the demo tokenizer),
 * with the spec and canonical weights it was written from.
 */
export async function studioModelFiles(
  family: 'gpt2' | 'llama',
  seed: number,
  folder: string = family,
): Promise<{ spec: ModelSpec; weights: WeightMap; files: InputFile[] }> {
  const spec = smallStudioSpec(family);
  const weights = randomTestModel(spec, seed);
  const files: InputFile[] = [
    { path: `${folder}/config.json`, data: blobOf(JSON.stringify(hfConfigFromSpec(spec))) },
    { path: `${folder}/model.safetensors`, data: blobOf(serializeSafetensors(toHFWeights(spec, weights))) },
  ];
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    files.push({ path: `${folder}/${f}`, data: blobOf(await readFile(join(REPO_ROOT, 'public/models/demo', f))) });
  return { spec, weights, files };
}

/** A small build's options (1 + 1 adapter blocks, keep 0.5, 4 support examples of 16 tokens, CPU). */
export function studioCompressOptions(method: CompressMethod, support: InputFile | null = null): CompressOptions {
  return {
    method,
    keep: 0.5,
    adapters: { bottom: 1, top: 1 },
    lambdaAttn: 1,
    lambdaMlp: 1,
    seed: 0,
    backend: 'cpu',
    support: method === 'gradot' ? support : null,
    supportExamples: 4,
    supportSeqLen: 16,
    supportBatch: 2,
  };
}
