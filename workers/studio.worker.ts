/// <reference lib="webworker" />
/**
 * The studio's one worker: the comlink facade the UI talks to (API in src/store/jobs-api.ts).
 *
 * Heavy state (opened models, packages, datasets, trained adapters) lives here, keyed by ids the UI holds.
 * The numeric modules (src/engine, src/model, src/data, src/ot) are being written in parallel, so this
 * file finds them with `import.meta.glob`: a module that is not in the tree yet simply yields no entry,
 * the build still passes, and `capabilities()` tells the UI what is waiting on what. When a module lands,
 * wiring it is a change to one `bind*` function below, not to the UI.
 *
 * What is real here already (no numerics, only metadata): the WebGPU adapter probe for the badge, reading
 * config.json and safetensors headers (shapes, dtypes, parameter counts) with truncation checks, unzipping
 * emulator packages, a syntax-level dataset check, and the OPFS checkpoint listing.
 */
import * as Comlink from 'comlink';
import { readDataset, validateDataset, type Dataset } from '../src/data';
import { SafetensorsReader } from '../src/model/safetensors';
import { FileListSource } from '../src/model/source';
import type { ModelSpec } from '../src/model/spec';
import { numel } from '../src/model/weights';
import { unzipSync } from 'fflate';
import {
  CHECKPOINT_DIR,
  encodeStudioError,
  type AdapterSummary,
  type BackendInfo,
  type PlugInOptions,
  type PlugInResult,
  type Capabilities,
  type CheckpointInfo,
  type CompressOptions,
  type CompressResult,
  type DatasetPreview,
  type DownloadFile,
  type EvalOptions,
  type EvalResult,
  type InputFile,
  type LayerSummary,
  type ModelSummary,
  type OTRun,
  type OTSetting,
  type PackageSummary,
  type ProgressFn,
  type StudioApi,
  type TensorInfo,
  type TuneOptions,
  type TuneResult,
} from '../src/store/jobs-api';

// ---------------------------------------------------------------- module discovery

type Loader = () => Promise<Record<string, unknown>>;
// Literal globs (Vite needs them static). Each resolves to {} until the file exists.
const modules: Record<string, Loader> = {
  ...(import.meta.glob('../src/engine/webgpu/index.ts') as Record<string, Loader>),
  ...(import.meta.glob('../src/model/hf.ts') as Record<string, Loader>),
  ...(import.meta.glob('../src/ot/index.ts') as Record<string, Loader>),
};

async function load(path: string): Promise<Record<string, unknown> | null> {
  const loader = modules[path];
  if (!loader) return null;
  try {
    return await loader();
  } catch {
    return null;
  }
}

async function fn<T>(path: string, name: string): Promise<T | null> {
  const m = await load(path);
  const f = m?.[name];
  return typeof f === 'function' ? (f as T) : null;
}

const OT = '../src/ot/index.ts';
const WEBGPU = '../src/engine/webgpu/index.ts';

async function capabilities(): Promise<Capabilities> {
  const has = async (path: string, name: string) => (await fn<unknown>(path, name)) !== null;
  const waiting = (what: string) => `not available yet: waiting on ${what}`;
  const ot = {
    compress: await has(OT, 'compress'),
    tune: await has(OT, 'tune'),
    evaluate: await has(OT, 'evaluate'),
    plug: await has(OT, 'plugIn'),
    protocol: await has(OT, 'runProtocol'),
    pkg: await has(OT, 'writeEmulatorPackage'),
  };
  return {
    inspectModel: { available: true, note: 'config.json + safetensors headers, read in the worker' },
    compress: ot.compress
      ? { available: true, note: 'src/ot compress' }
      : { available: false, note: waiting('GradOT compression (src/ot: compress)') },
    exportPackage: ot.pkg
      ? { available: true, note: 'src/ot emulator package' }
      : { available: false, note: waiting('emulator package writer (src/ot)') },
    openPackage: { available: true, note: 'zip/folder read in the worker (manifest + tensor headers)' },
    validateDataset: { available: true, note: 'src/data readDataset + validateDataset' },
    tune: ot.tune
      ? { available: true, note: 'src/ot tune' }
      : { available: false, note: waiting('adapter tuning (src/ot: tune, src/engine autograd)') },
    evaluate: ot.evaluate
      ? { available: true, note: 'src/ot evaluate' }
      : { available: false, note: waiting('evaluation (src/ot: evaluate)') },
    exportAdapters: ot.tune
      ? { available: true, note: 'src/ot adapters' }
      : { available: false, note: waiting('adapter export (src/ot, after tuning)') },
    plugIn: ot.plug
      ? { available: true, note: 'src/ot plugIn' }
      : { available: false, note: waiting('plug-in (src/ot: plugIn)') },
    otProtocol: ot.protocol
      ? { available: true, note: 'src/ot runProtocol' }
      : { available: false, note: waiting('the OT protocol runner (src/ot: runProtocol)') },
  };
}

// ---------------------------------------------------------------- backend badge

interface EngineInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}
type CreateWebGpuBackend = () => Promise<{ info: EngineInfo }>;
/** The engine's WebGPU backend, created once here and reused by every job in this worker. */
let gpuBackend: { info: EngineInfo } | null = null;

async function probeBackend(): Promise<BackendInfo> {
  const create = await fn<CreateWebGpuBackend>(WEBGPU, 'createWebGpuBackend');
  if (create) {
    try {
      gpuBackend ??= await create();
      const i = gpuBackend.info;
      const name = [i.description, i.vendor, i.architecture, i.device].filter((x) => x && x.length > 0).join(' · ');
      return {
        kind: 'webgpu',
        source: 'engine',
        adapterName: name || 'unnamed adapter',
        vendor: i.vendor,
        architecture: i.architecture,
        isFallbackAdapter: i.isFallbackAdapter,
        features: i.features,
        limits: { ...i.limits },
      };
    } catch (e) {
      return {
        kind: 'cpu',
        source: 'engine',
        reason: `${(e as Error).message || String(e)}. Everything runs on the CPU backend instead, only slower.`,
      };
    }
  }
  return probeAdapter();
}

/** Used only while the engine's WebGPU module is not in the build: asks the browser directly. */
async function probeAdapter(): Promise<BackendInfo> {
  const gpu = (self.navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    return {
      kind: 'cpu',
      source: 'probe',
      reason:
        'navigator.gpu is missing: this browser (or this worker context) has no WebGPU. ' +
        'Everything still runs on the CPU backend, only slower.',
    };
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { kind: 'cpu', source: 'probe', reason: `requestAdapter failed: ${String(e)}` };
  }
  if (!adapter) {
    return {
      kind: 'cpu',
      source: 'probe',
      reason:
        'WebGPU is present but no adapter was returned (GPU blocklisted, disabled, or headless without ' +
        '--enable-unsafe-webgpu). Using the CPU backend.',
    };
  }
  const info = adapter.info;
  const limitKeys = [
    'maxBufferSize',
    'maxStorageBufferBindingSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupStorageSize',
    'maxComputeWorkgroupSizeX',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupsPerDimension',
  ] as const;
  const limits: Record<string, number> = {};
  for (const k of limitKeys) limits[k] = Number(adapter.limits[k]);
  const fallback =
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    false;
  const name = [info.description, info.vendor, info.architecture].filter((s) => s && s.length > 0).join(' · ');
  return {
    kind: 'webgpu',
    source: 'probe',
    adapterName: name || 'unnamed adapter',
    vendor: info.vendor,
    architecture: info.architecture,
    isFallbackAdapter: fallback,
    features: [...adapter.features].map(String).sort(),
    limits,
  };
}

// ---------------------------------------------------------------- errors

function fail(file: string | undefined, message: string, line?: number): never {
  throw new Error(encodeStudioError({ file, message, line }));
}

// ---------------------------------------------------------------- safetensors header (metadata only)

/** Strips the folder the user picked so names match the HF layout ("config.json", not "gpt2/config.json"). */
function stripCommonFolder(files: InputFile[]): InputFile[] {
  const firsts = new Set(files.map((f) => (f.path.includes('/') ? f.path.split('/')[0] : '')));
  if (firsts.size !== 1 || firsts.has('')) return files;
  return files.map((f) => ({ path: f.path.split('/').slice(1).join('/'), data: f.data }));
}

function sourceOf(files: InputFile[], label: string): FileListSource {
  return new FileListSource(new Map(files.map((f) => [f.path, f.data])), label);
}

/** Header-only read through src/model's SafetensorsReader (validates offsets against the file size). */
async function readSafetensorsHeader(file: InputFile): Promise<TensorInfo[]> {
  const reader = await SafetensorsReader.open(sourceOf([file], file.path), file.path);
  return [...reader.header.entries].map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, params: numel(e.shape) }));
}

/** Turns the model/data modules' named errors into ones the UI can show with their file (and line). */
function rethrow(e: unknown, fallbackFile?: string): never {
  if (e instanceof Error && e.message.startsWith('{"studioError"')) throw e;
  const err = e as Error & { file?: string; line?: number | null; detail?: string };
  const file = typeof err.file === 'string' ? err.file : fallbackFile;
  let message = err.detail ?? err.message ?? String(e);
  if (file && message.startsWith(`${file}: `)) message = message.slice(file.length + 2);
  fail(file, message, err.line ?? undefined);
}

// ---------------------------------------------------------------- model summary

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

function findFile(files: InputFile[], name: string): InputFile | undefined {
  return files.find((f) => baseName(f.path) === name);
}

async function readJson(file: InputFile): Promise<Record<string, unknown>> {
  const text = await file.data.text();
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) fail(file.path, 'expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('{"studioError"')) throw e;
    fail(file.path, `not valid JSON: ${(e as Error).message}`);
  }
}

function num(cfg: Record<string, unknown>, ...keys: string[]): number {
  for (const k of keys) {
    const v = cfg[k];
    if (typeof v === 'number') return v;
  }
  return 0;
}

function familyOf(modelType: string): string {
  if (modelType === 'gpt2') return 'gpt2';
  if (modelType === 'opt') return 'opt';
  if (['llama', 'qwen2', 'qwen3', 'mistral', 'smollm'].includes(modelType)) return 'llama';
  return 'unknown';
}

const openModels = new Map<string, { summary: ModelSummary; files: InputFile[] }>();
const HF = '../src/model/hf.ts';

interface PlanLike {
  spec: ModelSpec;
  config: Record<string, unknown>;
  tensors: Map<string, { file: string; dtype: string; shape: number[]; bytes: number }>;
  warnings: string[];
}
type PlanHFLoad = (source: FileListSource) => Promise<PlanLike>;

function summarize(name: string, files: InputFile[], tensors: TensorInfo[], cfg: Record<string, unknown>, spec: ModelSpec | null, parsedBy: string, warnings: string[]): ModelSummary {
  const modelType = spec?.modelType ?? (typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown');
  const hiddenSize = spec?.hiddenSize ?? num(cfg, 'hidden_size', 'n_embd');
  const numHeads = spec?.numHeads ?? num(cfg, 'num_attention_heads', 'n_head');
  const layerMap = new Map<number, LayerSummary>();
  let otherParams = 0;
  const dtypes: Record<string, number> = {};
  const layerRe = /(?:^|\.)(?:h|layers)\.(\d+)\./;
  for (const t of tensors) {
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
    totalParams: tensors.reduce((a, t) => a + t.params, 0),
    otherParams,
    layers,
    tensors,
    dtypes,
    hasTokenizer,
    parsedBy,
    warnings,
  };
}

async function openModel(name: string, input: InputFile[]): Promise<ModelSummary> {
  if (input.length === 0) fail(name, 'no files given');
  const files = stripCommonFolder(input);
  const hasConfig = files.some((f) => f.path === 'config.json');
  const weightFiles = files.filter((f) => f.path.endsWith('.safetensors'));
  if (!hasConfig && weightFiles.length === 0) {
    fail(input[0]?.path, `not a model: expected config.json and *.safetensors, got ${input.map((f) => f.path).join(', ')}`);
  }
  if (!hasConfig) fail(weightFiles[0]?.path, 'config.json is missing next to the weights');
  let summary: ModelSummary;
  const plan = await fn<PlanHFLoad>(HF, 'planHFLoad');
  try {
    if (plan) {
      // src/model validates every tensor against config.json without decoding data.
      const p = await plan(sourceOf(files, name));
      const tensors = [...p.tensors].map(([n, t]) => ({ name: n, dtype: t.dtype, shape: t.shape, params: numel(t.shape) }));
      summary = summarize(name, files, tensors, p.config, p.spec, 'src/model planHFLoad (config + headers, shapes checked)', [...p.warnings]);
    } else {
      if (weightFiles.length === 0) fail('config.json', 'no *.safetensors weights next to config.json (pytorch .bin is not read)');
      const cfg = await readJson(files.find((f) => f.path === 'config.json')!);
      const tensors: TensorInfo[] = [];
      for (const w of weightFiles) tensors.push(...(await readSafetensorsHeader(w)));
      summary = summarize(name, files, tensors, cfg, null, 'safetensors headers (src/model/hf.ts not loaded)', []);
    }
  } catch (e) {
    rethrow(e, name);
  }
  openModels.set('current', { summary, files });
  return summary;
}

// ---------------------------------------------------------------- emulator package

const openPackages = new Map<string, { summary: PackageSummary; files: InputFile[] }>();
let nextId = 1;
const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${nextId++}`;

async function expandZip(file: InputFile): Promise<InputFile[]> {
  const bytes = new Uint8Array(await file.data.arrayBuffer());
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (e) {
    fail(file.path, `not a readable .zip (${(e as Error).message})`);
  }
  return Object.entries(entries)
    .filter(([p]) => !p.endsWith('/'))
    .map(([p, b]) => ({ path: p, data: new Blob([b as Uint8Array<ArrayBuffer>]) }));
}

async function openPackage(name: string, input: InputFile[]): Promise<PackageSummary> {
  let files = stripCommonFolder(input);
  if (input.length === 1 && input[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(input[0]!);
  const manifestFile = findFile(files, 'emulator.json');
  if (!manifestFile) {
    fail(input[0]?.path ?? name, `not an emulator package: no emulator.json (found ${files.map((f) => f.path).join(', ') || 'nothing'})`);
  }
  const manifest = await readJson(manifestFile);
  const weights = findFile(files, 'emulator.safetensors');
  if (!weights) fail(manifestFile.path, 'emulator.safetensors is missing next to emulator.json');
  const tensors = await readSafetensorsHeader(weights).catch((e: unknown) => rethrow(e, weights.path));
  const warnings: string[] = [];
  const source = manifest.source as Record<string, unknown> | undefined;
  const sourceModel = String(source?.id ?? manifest.sourceModel ?? manifest.model ?? 'unknown');
  const summary: PackageSummary = {
    packageId: newId('pkg'),
    name,
    manifest,
    sourceModel,
    method: String(manifest.method ?? 'unknown'),
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    tensorCount: tensors.length,
    params: tensors.reduce((a, t) => a + t.params, 0),
    warnings,
  };
  const current = openModels.get('current');
  if (current && sourceModel !== 'unknown' && !sourceModel.includes(current.summary.name) && current.summary.name !== 'demo') {
    warnings.push(`package was built from "${sourceModel}", the open model is "${current.summary.name}"`);
  }
  openPackages.set(summary.packageId, { summary, files });
  return summary;
}

// ---------------------------------------------------------------- returned adapters

const openAdaptersMap = new Map<string, { summary: AdapterSummary; files: InputFile[] }>();

async function openAdapters(name: string, input: InputFile[]): Promise<AdapterSummary> {
  let files = stripCommonFolder(input);
  if (files.length === 1 && files[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(files[0]!);
  const ours = findFile(files, 'adapter.safetensors');
  const peft = findFile(files, 'adapter_model.safetensors');
  const weights = ours ?? peft;
  if (!weights) {
    fail(input[0]?.path ?? name, `no adapter.safetensors or adapter_model.safetensors (found ${files.map((f) => f.path).join(', ') || 'nothing'})`);
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
    // Our adapters use the base model's own tensor names: every one must exist in the open model.
    const names = new Set(model.summary.tensors.map((t) => t.name));
    unknownTensors = tensors.map((t) => t.name).filter((n) => !names.has(n));
    if (unknownTensors.length) {
      fail(weights.path, `${unknownTensors.length} of ${tensors.length} adapter tensors are not in the open model "${model.summary.name}" (e.g. ${unknownTensors[0]}): adapters of another model?`);
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

// ---------------------------------------------------------------- datasets

const openDatasets = new Map<string, { preview: DatasetPreview; file: InputFile; dataset: Dataset }>();
const PREVIEW_ROWS = 50;

function clip(t: string, n = 400): string {
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

function previewRows(ds: Dataset): { columns: string[]; rows: Record<string, string>[] } {
  const head = ds.records.slice(0, PREVIEW_ROWS);
  if (ds.kind === 'lm') {
    return { columns: ['line', 'text'], rows: (head as { text: string; line: number | null }[]).map((r) => ({ line: String(r.line ?? ''), text: clip(r.text) })) };
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
    rows: (head as { prompt: string; answer: string; line: number | null }[]).map((r) => ({ line: String(r.line ?? ''), prompt: clip(r.prompt), answer: clip(r.answer) })),
  };
}

async function openDataset(file: InputFile): Promise<DatasetPreview> {
  const bytes = new Uint8Array(await file.data.arrayBuffer());
  const lower = file.path.toLowerCase();
  const guess: DatasetPreview['format'] = lower.endsWith('.csv') || lower.endsWith('.tsv') ? 'csv' : lower.endsWith('.txt') ? 'txt' : 'jsonl';
  let ds: Dataset;
  try {
    ds = readDataset(bytes, file.path);
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
      ...(summary.labels && summary.labels.majorityFraction > 0.7 ? [`label imbalance: the most common label is ${(summary.labels.majorityFraction * 100).toFixed(0)}% of records`] : []),
    ],
    validatedBy: 'src/data readDataset + validateDataset',
  };
  openDatasets.set(preview.datasetId, { preview, file, dataset: ds });
  return preview;
}

// ---------------------------------------------------------------- jobs (pause / resume / cancel)

interface JobControl {
  paused: boolean;
  cancelled: boolean;
}
const jobs = new Map<string, JobControl>();

// ---------------------------------------------------------------- OPFS checkpoints


async function checkpointDir(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(CHECKPOINT_DIR, { create });
  } catch {
    return null;
  }
}

async function checkpoint(): Promise<CheckpointInfo | null> {
  const dir = await checkpointDir(false);
  if (!dir) return null;
  let best: CheckpointInfo | null = null;
  for await (const [name, handle] of (dir as unknown as AsyncIterable<[string, FileSystemHandle]>)) {
    if (handle.kind !== 'directory') continue;
    try {
      const metaHandle = await (handle as FileSystemDirectoryHandle).getFileHandle('meta.json');
      const meta = JSON.parse(await (await metaHandle.getFile()).text()) as Partial<CheckpointInfo>;
      const info: CheckpointInfo = {
        runId: meta.runId ?? name,
        step: meta.step ?? 0,
        totalSteps: meta.totalSteps ?? 0,
        savedAt: meta.savedAt ?? '',
        packageName: meta.packageName ?? '?',
        datasetName: meta.datasetName ?? '?',
      };
      if (!best || info.savedAt > best.savedAt) best = info;
    } catch {
      // a directory without meta.json is an interrupted write: ignore it
    }
  }
  return best;
}

async function discardCheckpoint(runId: string): Promise<void> {
  const dir = await checkpointDir(false);
  if (dir) await dir.removeEntry(runId, { recursive: true }).catch(() => undefined);
}

// ---------------------------------------------------------------- operations waiting on src/ot

function notYet(what: string): never {
  fail(undefined, `${what} is not available yet in this build (waiting on src/ot).`);
}

const api: StudioApi = {
  capabilities,
  probeBackend,
  openModel,
  async compress(_opts: CompressOptions, _onProgress: ProgressFn): Promise<CompressResult> {
    if (!openModels.get('current')) fail(undefined, 'open a model first');
    return notYet('Compression');
  },
  async exportPackage(_packageId: string): Promise<DownloadFile> {
    return notYet('Emulator package export');
  },
  openPackage,
  openAdapters,
  async plugIn(_opts: PlugInOptions, _onProgress: ProgressFn): Promise<PlugInResult> {
    return notYet('Plug-in evaluation');
  },
  openDataset,
  async tune(_opts: TuneOptions, _onProgress: ProgressFn): Promise<TuneResult> {
    return notYet('Adapter tuning');
  },
  async pause(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = true;
  },
  async resume(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = false;
  },
  async cancel(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.cancelled = true;
  },
  checkpoint,
  discardCheckpoint,
  async evaluate(_opts: EvalOptions, _onProgress: ProgressFn): Promise<EvalResult> {
    return notYet('Evaluation');
  },
  async exportAdapters(_runId: string, _format: 'safetensors' | 'peft'): Promise<DownloadFile[]> {
    return notYet('Adapter export');
  },
  async runProtocol(_setting: OTSetting, _task: InputFile | null, _onProgress: ProgressFn): Promise<OTRun> {
    return notYet('The OT protocol');
  },
};

Comlink.expose(api);
