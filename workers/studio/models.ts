/**
 * What the user opens: a model (config + headers checked, nothing decoded), an emulator package, returned
 * adapters, a dataset (read, validated, previewed).
 */
import { readDatasetBlob, validateDataset, type Dataset } from '../../src/data';
import { checkTokenizerVocab, hfToCanonical, isKnownBuffer, planHFLoad, tokenizerJsonIdCount } from '../../src/model/hf';
import type { ModelSpec } from '../../src/model/spec';
import { numel } from '../../src/model/weights';
import {
  type AdapterSummary,
  type DatasetPreview,
  type InputFile,
  type LayerSummary,
  type ModelSummary,
  type PackageSummary,
  type TensorInfo,
} from '../../src/jobs/studio-api';
import {
  fail,
  stripCommonFolder,
  sourceOf,
  readSafetensorsHeader,
  rethrow,
  baseName,
  findFile,
  readJson,
  expandZip,
  readPackage,
} from './files';
import { openModels, openPackages, newId, openAdaptersMap, openDatasets } from './state';
import { dropTryExports } from './generate';

export function num(cfg: Record<string, unknown>, ...keys: string[]): number {
  for (const k of keys) {
    const v = cfg[k];
    if (typeof v === 'number') return v;
  }
  return 0;
}

export function familyOf(modelType: string): string {
  if (modelType === 'gpt2') return 'gpt2';
  if (modelType === 'opt') return 'opt';
  if (['llama', 'qwen2', 'qwen3', 'mistral', 'smollm'].includes(modelType)) return 'llama';
  return 'unknown';
}

export function summarize(
  name: string,
  files: InputFile[],
  tensors: TensorInfo[],
  cfg: Record<string, unknown>,
  spec: ModelSpec | null,
  parsedBy: string,
  warnings: string[],
): ModelSummary {
  const modelType = spec?.modelType ?? (typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown');
  const hiddenSize = spec?.hiddenSize ?? num(cfg, 'hidden_size', 'n_embd');
  const numHeads = spec?.numHeads ?? num(cfg, 'num_attention_heads', 'n_head');
  const layerMap = new Map<number, LayerSummary>();
  let otherParams = 0;
  const dtypes: Record<string, number> = {};
  const layerRe = /(?:^|\.)(?:h|layers)\.(\d+)\./;
  for (const t of tensors) {
    // Buffers (GPT-2's causal masks, rotary inv_freq) are in the file but are not parameters.
    if (spec && isKnownBuffer(spec.family, t.name)) continue;
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.params;
    const m = layerRe.exec(t.name);
    if (m) {
      const i = Number(m[1]);
      const l = layerMap.get(i) ?? { index: i, params: 0, tensors: 0 };
      l.params += t.params;
      l.tensors += 1;
      layerMap.set(i, l);
    } else {
      otherParams += t.params;
    }
  }
  const layers = [...layerMap.values()].sort((a, b) => a.index - b.index);
  const numLayers = spec?.layers.length ?? (num(cfg, 'num_hidden_layers', 'n_layer') || layers.length);
  if (layers.length !== numLayers) warnings.push(`config.json says ${numLayers} layers, the weights have ${layers.length}`);
  const hasTokenizer = files.some((f) => baseName(f.path) === 'tokenizer.json');
  if (!hasTokenizer) warnings.push('tokenizer.json is missing: tuning and evaluation will need it');
  return {
    name,
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    modelType,
    family: spec?.family ?? familyOf(modelType),
    numLayers,
    hiddenSize,
    numHeads,
    numKvHeads: spec?.numKvHeads ?? (num(cfg, 'num_key_value_heads') || numHeads),
    intermediateSize: spec?.intermediateSize ?? (num(cfg, 'intermediate_size', 'ffn_dim', 'n_inner') || 4 * hiddenSize),
    vocabSize: spec?.vocabSize ?? num(cfg, 'vocab_size'),
    maxPositions: spec?.maxPositions ?? num(cfg, 'max_position_embeddings', 'n_positions'),
    totalParams: tensors.reduce((a, t) => a + (spec && isKnownBuffer(spec.family, t.name) ? 0 : t.params), 0),
    otherParams,
    layers,
    tensors,
    dtypes,
    hasTokenizer,
    parsedBy,
    warnings,
  };
}

export async function openModel(name: string, input: InputFile[]): Promise<ModelSummary> {
  if (input.length === 0) fail(name, 'no files given');
  const files = stripCommonFolder(input);
  const hasConfig = files.some((f) => f.path === 'config.json');
  const weightFiles = files.filter((f) => f.path.endsWith('.safetensors'));
  if (!hasConfig && weightFiles.length === 0) {
    fail(input[0]?.path, `not a model: expected config.json and *.safetensors, got ${input.map((f) => f.path).join(', ')}`);
  }
  if (!hasConfig) fail(weightFiles[0]?.path, 'config.json is missing next to the weights');
  let summary: ModelSummary;
  try {
    // src/model validates every tensor against config.json without decoding data.
    const p = await planHFLoad(sourceOf(files, name));
    const tensors = [...p.tensors].map(([n, t]) => ({ name: n, dtype: t.dtype, shape: t.shape, params: numel(t.shape) }));
    summary = summarize(
      name,
      files,
      tensors,
      p.config as Record<string, unknown>,
      p.spec,
      'src/model planHFLoad (config + headers, shapes checked)',
      [...p.warnings],
    );
    // The tokenizer against the embedding rows, before any job: more ids than rows is refused here.
    const tf = files.find((f) => f.path === 'tokenizer.json');
    const ids = tf ? tokenizerJsonIdCount(await readJson(tf)) : null;
    const tw = ids !== null ? checkTokenizerVocab(ids, p.spec) : null;
    if (tw) summary.warnings.push(tw);
  } catch (e) {
    rethrow(e, name);
  }
  if (name === 'local files') {
    // Picked as loose files: name it from the config so packages and reports say what it was.
    summary.name = `${summary.modelType}-${summary.numLayers}L-${summary.hiddenSize}d`;
  }
  openModels.set('current', { summary, files });
  dropTryExports();
  return summary;
}

export async function openPackage(name: string, input: InputFile[]): Promise<PackageSummary> {
  let files = stripCommonFolder(input);
  if (files.length === 1 && files[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(files[0]!);
  const label = input.length === 1 ? input[0]!.path : name;
  // Decoded once to check it; only the files and the manifest are kept.
  const pkg = await readPackage(files, label);
  const m = pkg.meta;
  const warnings: string[] = [];
  const current = openModels.get('current');
  if (current && current.summary.name !== m.source.modelId) {
    warnings.push(`built from "${m.source.modelId}", while the model open in the Model owner view is "${current.summary.name}"`);
  }
  const summary: PackageSummary = {
    packageId: newId('pkg'),
    name,
    manifest: {
      split: m.split,
      keep: m.keep,
      lambdaAttn: m.lambdaAttn,
      lambdaMlp: m.lambdaMlp,
      readings: m.readings,
      budget: m.budget,
      support: m.support,
      source: m.source,
    },
    sourceModel: `${m.source.modelId} (sha256 ${m.source.sha256.slice(0, 12)}…, ${m.source.numLayers} blocks)`,
    method: `${m.method}, keep ${m.keep}, adapters ${m.split.bottom}:${m.split.top}`,
    family: m.spec.family,
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    tensorCount: pkg.weights.size,
    params: [...pkg.weights.values()].reduce((a, t) => a + t.data.length, 0),
    warnings,
  };
  openPackages.set(summary.packageId, { summary, files, meta: pkg.meta });
  return summary;
}

export async function openAdapters(name: string, input: InputFile[]): Promise<AdapterSummary> {
  let files = stripCommonFolder(input);
  if (files.length === 1 && files[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(files[0]!);
  const ours = findFile(files, 'adapter.safetensors');
  const peft = findFile(files, 'adapter_model.safetensors');
  const weights = ours ?? peft;
  if (!weights) {
    fail(
      input[0]?.path ?? name,
      `no adapter.safetensors or adapter_model.safetensors (found ${files.map((f) => f.path).join(', ') || 'nothing'})`,
    );
  }
  const manifestFile = findFile(files, ours ? 'adapter.json' : 'adapter_config.json');
  const manifest = manifestFile ? await readJson(manifestFile) : {};
  const tensors = await readSafetensorsHeader(weights).catch((e: unknown) => rethrow(e, weights.path));
  const warnings: string[] = [];
  if (!manifestFile) warnings.push(`${ours ? 'adapter.json' : 'adapter_config.json'} is missing`);
  const model = openModels.get('current');
  let unknownTensors: string[] = [];
  if (!model) {
    warnings.push('no model is open: names cannot be checked against it');
  } else if (ours) {
    // Our adapters use the base model's own tensor names: every one must exist in the open model. Compared
    // as canonical names, so a prefix the family allows either way (GPT-2's `transformer.`, which the hub's
    // own gpt2 files leave out and our export writes) is not a mismatch.
    const fam = model.summary.family;
    const key = (n: string): string =>
      fam === 'gpt2' || fam === 'opt' || fam === 'llama' ? (hfToCanonical(fam, n)?.canonical.join('|') ?? n) : n;
    const names = new Set(model.summary.tensors.map((t) => key(t.name)));
    unknownTensors = tensors.map((t) => t.name).filter((n) => !names.has(key(n)));
    if (unknownTensors.length) {
      fail(
        weights.path,
        `${unknownTensors.length} of ${tensors.length} adapter tensors are not in the open model "${model.summary.name}" (e.g. ${unknownTensors[0]}): adapters of another model?`,
      );
    }
  }
  const summary: AdapterSummary = {
    adapterId: newId('ad'),
    name,
    layout: ours ? 'adapter' : 'peft',
    manifest,
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    tensorCount: tensors.length,
    params: tensors.reduce((a, t) => a + t.params, 0),
    unknownTensors,
    warnings,
  };
  openAdaptersMap.set(summary.adapterId, { summary, files });
  return summary;
}

export const PREVIEW_ROWS = 50;

export function clip(t: string, n = 400): string {
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

export function previewRows(ds: Dataset): { columns: string[]; rows: Record<string, string>[] } {
  const head = ds.records.slice(0, PREVIEW_ROWS);
  if (ds.kind === 'lm') {
    return {
      columns: ['line', 'text'],
      rows: (head as { text: string; line: number | null }[]).map((r) => ({ line: String(r.line ?? ''), text: clip(r.text) })),
    };
  }
  if (ds.kind === 'mc') {
    return {
      columns: ['line', 'context', 'choices', 'label'],
      rows: (head as { context: string; choices: string[]; label: number; line: number | null }[]).map((r) => ({
        line: String(r.line ?? ''),
        context: clip(r.context),
        choices: r.choices.map((c, i) => `${i === r.label ? '✓' : ''}${clip(c, 80)}`).join(' | '),
        label: String(r.label),
      })),
    };
  }
  return {
    columns: ['line', 'prompt', 'answer'],
    rows: (head as { prompt: string; answer: string; line: number | null }[]).map((r) => ({
      line: String(r.line ?? ''),
      prompt: clip(r.prompt),
      answer: clip(r.answer),
    })),
  };
}

/** What an evaluation reads per record, in characters (see DatasetPreview.meanScoredChars). */
export function meanScoredChars(ds: Dataset): number {
  if (!ds.records.length) return 0;
  let chars = 0;
  for (const r of ds.records as { text?: string; context?: string; choices?: string[]; prompt?: string; answer?: string }[]) {
    if (ds.kind === 'mc') for (const c of r.choices ?? []) chars += (r.context ?? '').length + c.length;
    else if (ds.kind === 'lm') chars += (r.text ?? '').length;
    else chars += (r.prompt ?? '').length + (r.answer ?? '').length;
  }
  return chars / ds.records.length;
}

export async function openDataset(file: InputFile): Promise<DatasetPreview> {
  const lower = file.path.toLowerCase();
  const guess: DatasetPreview['format'] =
    lower.endsWith('.csv') || lower.endsWith('.tsv') ? 'csv' : lower.endsWith('.txt') ? 'txt' : 'jsonl';
  let ds: Dataset;
  try {
    // Streamed from the File: no whole-file copy or string; too-large files are refused by size first.
    ds = await readDatasetBlob(file.data, file.path);
  } catch (e) {
    const err = e as Error & { file?: string; line?: number | null; detail?: string; code?: string };
    if (err.name !== 'DatasetError') rethrow(e, file.path);
    // A bad dataset is shown inline (file + line) and is not usable for training.
    return {
      datasetId: '',
      ok: false,
      file: file.path,
      format: guess,
      kind: 'unknown',
      columns: [],
      rows: [],
      totalRows: 0,
      issues: [{ file: err.file ?? file.path, line: err.line ?? null, message: err.detail ?? err.message }],
      warnings: [],
      validatedBy: 'src/data readDataset',
    };
  }
  const summary = validateDataset(ds);
  const { columns, rows } = previewRows(ds);
  const preview: DatasetPreview = {
    datasetId: newId('ds'),
    ok: true,
    file: file.path,
    format: ds.format,
    kind: ds.kind,
    columns,
    rows,
    totalRows: ds.records.length,
    issues: [],
    warnings: [
      ...summary.warnings,
      ...(summary.duplicates ? [`${summary.duplicates} exact duplicate record(s)`] : []),
      ...(summary.labels && summary.labels.majorityFraction > 0.7
        ? [`label imbalance: the most common label is ${(summary.labels.majorityFraction * 100).toFixed(0)}% of records`]
        : []),
    ],
    validatedBy: 'src/data readDataset + validateDataset',
    meanScoredChars: meanScoredChars(ds),
  };
  openDatasets.set(preview.datasetId, { preview, file, dataset: ds });
  return preview;
}
