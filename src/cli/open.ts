/**
 * Opening what a command line argument names: a Hugging Face model folder, or a GradOT emulator package
 * (folder or .zip). Shared by inspect and the commands that run models (eval, tune, plug, ...), so every
 * command accepts the same inputs and reports the same errors.
 */
import { canonicalShapes, checkCanonicalHeader, checkTokenizerVocab, loadHFModel, type HFConfig } from '../model/hf';
import { SafetensorsReader } from '../model/safetensors';
import { MemorySource, nodeDirSource, type ModelSource } from '../model/source';
import type { ModelSpec } from '../model/spec';
import { loadTokenizer, tokenizerFiles, type Tokenizer } from '../model/tokenizer';
import type { WeightMap } from '../model/weights';
import type { EmulatorMeta } from '../ot/emulator/package';
import { ModelFormatError } from '../model/errors';
import { unzipBounded } from '../faults/zip';
import { checkSpecBounds } from '../faults/bounds';

/** A folder on disk, or the files of a .zip held in memory. */
export async function openSource(p: string): Promise<ModelSource> {
  if (p.toLowerCase().endsWith('.zip')) {
    const fs = await import('node:fs/promises');
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await fs.readFile(p));
    } catch (e) {
      throw new ModelFormatError(`cannot read (${(e as Error).message})`, p);
    }
    // Entry count and sizes are checked before inflating (LimitError / ZipError name the archive).
    return new MemorySource(unzipBounded(bytes, p), p);
  }
  return nodeDirSource(p);
}

export async function isEmulatorSource(src: ModelSource): Promise<boolean> {
  return src.has('emulator.json');
}

export async function readEmulatorMeta(src: ModelSource): Promise<EmulatorMeta> {
  let meta: EmulatorMeta;
  try {
    meta = JSON.parse(await src.readText('emulator.json')) as EmulatorMeta;
  } catch (e) {
    throw new ModelFormatError(`invalid JSON (${(e as Error).message})`, 'emulator.json');
  }
  if (meta?.format !== 'gradot-emulator' || !meta.spec) throw new ModelFormatError('not a GradOT emulator package', 'emulator.json');
  checkSpecBounds(meta.spec, 'emulator.json');
  return meta;
}

export interface OpenedModel {
  kind: 'hf' | 'emulator';
  path: string;
  spec: ModelSpec;
  /** Canonical names, F32 data. */
  weights: WeightMap;
  /** config.json (HF folders only). */
  config?: HFConfig;
  /** emulator.json (emulator packages only). */
  meta?: EmulatorMeta;
  /** When the folder has tokenizer files. */
  tokenizer: Tokenizer | null;
  warnings: string[];
}

/** Loads an HF folder or an emulator package with all weights decoded. */
export async function openModel(
  p: string,
  opts: { tokenizer?: boolean; onProgress?: (doneBytes: number, totalBytes: number) => void } = {},
): Promise<OpenedModel> {
  const src = await openSource(p);
  const wantTok = opts.tokenizer ?? true;
  const tokenizer = wantTok && (await tokenizerFiles(src)) ? await loadTokenizer(src) : null;
  if (await isEmulatorSource(src)) {
    const meta = await readEmulatorMeta(src);
    const r = await SafetensorsReader.open(src, 'emulator.safetensors');
    const { warnings } = checkCanonicalHeader(meta.spec, r.header.entries, 'emulator.safetensors');
    const weights: WeightMap = new Map();
    for (const name of canonicalShapes(meta.spec).keys()) weights.set(name, await r.read(name));
    return { kind: 'emulator', path: p, spec: meta.spec, weights, meta, tokenizer, warnings };
  }
  const m = await loadHFModel(src, opts.onProgress ? { onProgress: opts.onProgress } : {});
  // A tokenizer with more ids than embedding rows is refused here, before any job starts.
  const tw = tokenizer ? checkTokenizerVocab(tokenizer.vocabSize, m.spec, `${p}/tokenizer.json`) : null;
  return {
    kind: 'hf',
    path: p,
    spec: m.spec,
    weights: m.weights,
    config: m.config,
    tokenizer,
    warnings: tw ? [...m.warnings, tw] : m.warnings,
  };
}
