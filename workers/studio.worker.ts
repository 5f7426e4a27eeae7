/// <reference lib="webworker" />
/**
 * The studio's one worker: the comlink facade the UI talks to (API in src/store/jobs-api.ts).
 *
 * Heavy state (opened models, packages, datasets, built emulators, tuned adapters) lives here, keyed by ids
 * the UI holds; the UI thread never runs numerics. Each operation is a thin composition of the numeric
 * modules: src/model (headers, loading, tokenizer, decoder), src/data (reading, validation, encoding),
 * src/ot (support pass, compression, packages, tuning with OPFS checkpoints, evaluation, export, plug-in,
 * the protocol) on the engine's WebGPU backend when the badge shows one, else the CPU backend.
 */
import * as Comlink from 'comlink';
import { createWebGpuBackend } from '../src/engine/webgpu/backend';
import { encodeDataset, makeBatch, readDataset, validateDataset, withoutSpecialTokens, type Dataset } from '../src/data';
import { CpuBackend } from '../src/engine/cpu/backend';
import type { Backend } from '../src/engine/backend';
import { exactSvd } from '../src/engine/linalg/svd';
import { decoderFromWeights, type Decoder } from '../src/model/decoder';
import { linearDims, loadHFModel, planHFLoad, type HFConfig } from '../src/model/hf';
import { loadTokenizer, type Tokenizer } from '../src/model/tokenizer';
import { blockParamCount, middleIndices } from '../src/ot/budget';
import { compressModel, type CompressResult as OtCompressResult } from '../src/ot/compress';
import { EMULATOR_JSON, EMULATOR_WEIGHTS, emulatorMeta, readEmulatorPackage, weightsSha256, writeEmulatorPackage, zipEmulatorPackage, type EmulatorPackage } from '../src/ot/package';
import { opfsCheckpointStore } from '../src/ot/checkpoint-store';
import { ADAPTER_JSON, ADAPTER_WEIGHTS, PEFT_CONFIG, PEFT_WEIGHTS, exportAdapter, loadAdapter } from '../src/ot/export';
import { evaluate, headline, type EncodedTask, type EvalMetrics } from '../src/ot/evaluate';
import { applyAdapter, plugIn } from '../src/ot/plugin';
import { defaultCompress, runProtocol, type TuneSummary } from '../src/ot/protocol';
import { prepareEval, prepareTraining, type PreparedTraining } from '../src/ot/task-data';
import { PauseController, tune, type TuneResult as OtTuneResult } from '../src/ot/tune';
import type { LoraTarget } from '../src/ot/lora';
import { supportPass, type SupportBatch, type SupportPassResult } from '../src/ot/support';
import { SafetensorsReader } from '../src/model/safetensors';
import { exportTransformersJsFolder } from '../src/onnx/export';
import { FileListSource } from '../src/model/source';
import type { ModelSpec } from '../src/model/spec';
import { numel, type WeightMap } from '../src/model/weights';
import { unzipSync, zipSync } from 'fflate';
import {
  RUNS_DIR,
  encodeStudioError,
  type AdapterSummary,
  type BackendInfo,
  type PlugInOptions,
  type PlugInResult,
  type Capabilities,
  type CheckpointInfo,
  type RunRecord,
  type CompressOptions,
  type CompressResult,
  type CompressLayerResult,
  type PerMatrixResult,
  type DatasetPreview,
  type DownloadFile,
  type EvalOptions,
  type EvalReport,
  type EvalResult,
  type GenerateOptions,
  type GenerateResult,
  type InputFile,
  type LayerSummary,
  type ModelSummary,
  type OTRun,
  type ProtocolRequest,
  type PackageSummary,
  type ProgressEvent,
  type ProgressFn,
  type Spectrum,
  type StudioApi,
  type TensorInfo,
  type TuneOptions,
  type TuneResult,
} from '../src/store/jobs-api';

// ---------------------------------------------------------------- capabilities

/** Everything is backed by real code now; the struct stays so a build without a part can switch it off. */
async function capabilities(): Promise<Capabilities> {
  return {
    inspectModel: { available: true, note: 'src/model planHFLoad: config.json + safetensors headers' },
    compress: { available: true, note: 'src/ot compressModel (+ supportPass for gradot), in the studio worker' },
    exportPackage: { available: true, note: 'src/ot writeEmulatorPackage + zip' },
    openPackage: { available: true, note: 'zip/folder read in the worker (manifest + tensor headers)' },
    validateDataset: { available: true, note: 'src/data readDataset + validateDataset' },
    tune: { available: true, note: 'src/ot tune (adapter blocks or LoRA), OPFS checkpoints' },
    evaluate: { available: true, note: 'src/ot evaluate (acc/acc_norm or loss/perplexity)' },
    exportAdapters: { available: true, note: 'src/ot exportAdapter' },
    plugIn: { available: true, note: 'src/ot loadAdapter + plugIn + evaluate' },
    otProtocol: { available: true, note: 'src/ot runProtocol (compress, tune, evaluate, plug-in)' },
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
type CreateWebGpuBackend = () => Promise<Backend & { info: EngineInfo }>;
/** The engine's WebGPU backend, created once here and reused by every job in this worker. */
let gpuBackend: (Backend & { info: EngineInfo }) | null = null;

async function probeBackend(): Promise<BackendInfo> {
  try {
    gpuBackend ??= await (createWebGpuBackend as unknown as CreateWebGpuBackend)();
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
  // The modules' messages start with the file name; the toast shows it separately.
  if (file && message.startsWith(file)) message = message.slice(file.length).replace(/^:?\s+/, '');
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
  const plan: PlanHFLoad | null = planHFLoad;
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
  if (name === 'local files') {
    // Picked as loose files: name it from the config so packages and reports say what it was.
    summary.name = `${summary.modelType}-${summary.numLayers}L-${summary.hiddenSize}d`;
  }
  openModels.set('current', { summary, files });
  dropTryExports();
  return summary;
}

// ---------------------------------------------------------------- emulator package

const openPackages = new Map<string, { summary: PackageSummary; files: InputFile[]; pkg: EmulatorPackage }>();
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
  if (files.length === 1 && files[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(files[0]!);
  const label = input.length === 1 ? input[0]!.path : name;
  const manifestFile = findFile(files, EMULATOR_JSON);
  if (!manifestFile) {
    fail(label, `not an emulator package: no ${EMULATOR_JSON} (found ${files.map((f) => f.path).join(', ') || 'nothing'})`);
  }
  const weightsFile = findFile(files, EMULATOR_WEIGHTS);
  if (!weightsFile) fail(label, `${EMULATOR_WEIGHTS} is missing next to ${EMULATOR_JSON}`);
  const map = new Map<string, Uint8Array>();
  for (const f of [manifestFile, weightsFile]) map.set(baseName(f.path), new Uint8Array(await f.data.arrayBuffer()));
  let pkg: EmulatorPackage;
  try {
    // src/ot checks format, version, and every tensor against the emulator's spec.
    pkg = readEmulatorPackage(map);
  } catch (e) {
    rethrow(e, label);
  }
  const m = pkg.meta;
  const warnings: string[] = [];
  const current = openModels.get('current');
  if (current && current.summary.name !== m.source.modelId) {
    warnings.push(`built from "${m.source.modelId}", while the model open in the Model owner view is "${current.summary.name}"`);
  }
  const summary: PackageSummary = {
    packageId: newId('pkg'),
    name,
    manifest: { split: m.split, keep: m.keep, lambdaAttn: m.lambdaAttn, lambdaMlp: m.lambdaMlp, readings: m.readings, budget: m.budget, support: m.support, source: m.source },
    sourceModel: `${m.source.modelId} (sha256 ${m.source.sha256.slice(0, 12)}…, ${m.source.numLayers} blocks)`,
    method: `${m.method}, keep ${m.keep}, adapters ${m.split.bottom}:${m.split.top}`,
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    tensorCount: pkg.weights.size,
    params: [...pkg.weights.values()].reduce((a, t) => a + t.data.length, 0),
    warnings,
  };
  openPackages.set(summary.packageId, { summary, files, pkg });
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
/** Tuning jobs pause and cancel through src/ot's own controls. */
const jobControls = new Map<string, { abort: AbortController; pauser: PauseController }>();

// ---------------------------------------------------------------- OPFS checkpoints


async function runsDir(): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(RUNS_DIR, { create: false });
  } catch {
    return null;
  }
}

async function readRunRecord(dir: FileSystemDirectoryHandle): Promise<RunRecord | null> {
  try {
    return JSON.parse(await (await (await dir.getFileHandle('run.json')).getFile()).text()) as RunRecord;
  } catch {
    return null;
  }
}

async function checkpoint(): Promise<CheckpointInfo | null> {
  const dir = await runsDir();
  if (!dir) return null;
  let best: CheckpointInfo | null = null;
  for await (const [name, handle] of (dir as unknown as AsyncIterable<[string, FileSystemHandle]>)) {
    if (handle.kind !== 'directory' || activeRuns.has(name)) continue;
    try {
      const entry = await opfsCheckpointStore(`${RUNS_DIR}/${name}`).latest();
      // 'done' is a finished run; only a run with a 'last' (or 'best') checkpoint and no 'done' resumes.
      if (!entry || entry.id === 'done') continue;
      const meta = (entry.meta ?? {}) as { step?: number; totalSteps?: number };
      const rec = await readRunRecord(handle as FileSystemDirectoryHandle);
      const info: CheckpointInfo = {
        runId: name,
        checkpointId: entry.id,
        step: meta.step ?? 0,
        totalSteps: meta.totalSteps ?? 0,
        savedAt: entry.committedAt,
        packageName: rec?.packageName ?? '?',
        datasetName: rec?.datasetName ?? '?',
      };
      if (!best || info.savedAt > best.savedAt) best = info;
    } catch {
      // a run whose manifest is unreadable cannot be resumed: not offered
    }
  }
  return best;
}

async function discardCheckpoint(runId: string): Promise<void> {
  const dir = await runsDir();
  if (dir) await dir.removeEntry(runId, { recursive: true }).catch(() => undefined);
}

// ---------------------------------------------------------------- compression (src/ot compressModel)

class Cancelled extends Error {
  constructor() {
    super(encodeStudioError({ message: 'cancelled' }));
  }
}

function startJob(onProgress: ProgressFn): { jobId: string; ctl: JobControl; report: (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'> & { etaS?: number | null }) => void; check: () => Promise<void> } {
  const jobId = newId('job');
  const ctl: JobControl = { paused: false, cancelled: false };
  jobs.set(jobId, ctl);
  const t0 = performance.now();
  const report = (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'> & { etaS?: number | null }) => {
    const elapsedS = (performance.now() - t0) / 1000;
    const etaS = p.etaS !== undefined ? p.etaS : p.fraction && p.fraction > 0.02 ? (elapsedS * (1 - p.fraction)) / p.fraction : null;
    onProgress({ ...p, jobId, elapsedS, etaS });
  };
  // Lets pause/cancel messages in: comlink calls are delivered between macrotasks.
  const check = async () => {
    await new Promise((r) => setTimeout(r, 0));
    while (ctl.paused && !ctl.cancelled) await new Promise((r) => setTimeout(r, 100));
    if (ctl.cancelled) throw new Cancelled();
  };
  return { jobId, ctl, report, check };
}

/**
 * A job the UI can pause, resume and cancel mid-loop (tuning, evaluation, plug-in, protocol): startJob plus
 * the abort signal and pauser the loops read, registered under the job id; `end()` (in a finally)
 * unregisters both.
 */
function startControlledJob(onProgress: ProgressFn) {
  const job = startJob(onProgress);
  const abort = new AbortController();
  const pauser = new PauseController();
  jobControls.set(job.jobId, { abort, pauser });
  const end = (): void => {
    jobControls.delete(job.jobId);
    jobs.delete(job.jobId);
  };
  return { ...job, abort, pauser, end };
}

/** The model open in the Model owner view, loaded with its tokenizer; errors name the model. */
async function loadOpenModel(cur: { files: InputFile[]; summary: { name: string } }) {
  const source = sourceOf(cur.files, cur.summary.name);
  const model = await loadHFModel(source).catch((e: unknown) => rethrow(e, cur.summary.name));
  const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(e, cur.summary.name));
  return { model, tok };
}

interface BuiltPackage {
  zip: Uint8Array;
  name: string;
  result: OtCompressResult;
  /** Source weights, kept so spectra can be computed on demand. */
  sourceWeights: Map<string, { shape: number[]; data: Float32Array }>;
}
const builtPackages = new Map<string, BuiltPackage>();

async function pickBackend(pref: 'auto' | 'cpu'): Promise<Backend> {
  if (pref === 'auto') {
    const info = await probeBackend();
    // A software adapter (SwiftShader) is ~30x slower than the CPU backend for training (ARCHITECTURE.md).
    if (info.kind === 'webgpu' && gpuBackend && !info.isFallbackAdapter) return gpuBackend;
  }
  return new CpuBackend({ dtype: 'f32' });
}

async function compress(opts: CompressOptions, onProgress: ProgressFn): Promise<CompressResult> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model first');
  const { jobId, report, check } = startJob(onProgress);
  try {
    report({ phase: 'loading weights', fraction: 0.01 });
    const source = sourceOf(cur.files, cur.summary.name);
    const loaded = await loadHFModel(source).catch((e: unknown) => rethrow(e, cur.summary.name));
    const spec = loaded.spec;
    const split = { bottom: opts.adapters.bottom, top: opts.adapters.top };
    let middle: number[];
    try {
      middle = middleIndices(spec, split);
    } catch (e) {
      fail(undefined, (e as Error).message);
    }
    await check();
    let support: SupportPassResult | null = null;
    let backendName = 'cpu (host)';
    if (opts.method === 'gradot') {
      if (!opts.support) fail(undefined, 'GradOT needs support data for its gradient pass: drop a JSONL/CSV/TXT file under "Support data"');
      report({ phase: 'tokenizer', fraction: 0.03 });
      const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(e, cur.summary.name));
      const bytes = new Uint8Array(await opts.support.data.arrayBuffer());
      let ds: Dataset;
      try {
        ds = readDataset(bytes, opts.support.path);
      } catch (e) {
        rethrow(e, opts.support.path);
      }
      const C = Math.max(8, Math.min(opts.supportSeqLen, spec.maxPositions));
      let encoded;
      try {
        encoded = encodeDataset(ds, withoutSpecialTokens(tok), { contextLength: C, addBos: spec.family === 'llama' });
      } catch (e) {
        rethrow(e, opts.support.path);
      }
      const examples = encoded.examples.slice(0, Math.max(1, opts.supportExamples));
      const B = Math.max(1, opts.supportBatch);
      const batches: SupportBatch[] = [];
      for (let i = 0; i < examples.length; i += B) {
        const idx = Array.from({ length: Math.min(B, examples.length - i) }, (_, k) => i + k);
        const b = makeBatch(examples, idx, { padId: tok.padId ?? tok.eosId ?? 0 });
        batches.push({ ids: b.ids, targets: b.targets, B: b.batchSize, T: b.seqLen });
      }
      const be = await pickBackend(opts.backend);
      backendName = be.name;
      report({ phase: `support pass on ${be.name}`, fraction: 0.05, message: `${examples.length} examples, ${batches.length} batches, context ${C}` });
      const dec = decoderFromWeights(be, spec, loaded.weights);
      const t0 = performance.now();
      // supportPass consumes an iterable; an async generator lets pause/cancel and progress in between batches.
      async function* feed(): AsyncGenerator<SupportBatch> {
        for (let i = 0; i < batches.length; i++) {
          await check();
          yield batches[i]!;
        }
      }
      support = await supportPass(dec, feed(), middle, {
        onBatch: (i, loss) => {
          const done = (i + 1) / batches.length;
          const el = (performance.now() - t0) / 1000;
          report({ phase: `support pass on ${be.name}`, fraction: 0.05 + 0.75 * done, step: i + 1, totalSteps: batches.length, loss, etaS: (el / done) * (1 - done) });
        },
      });
      await check();
    }
    report({ phase: opts.method === 'gradot' ? 'SVD + GCS scoring, slicing' : `compressing (${opts.method})`, fraction: opts.method === 'gradot' ? 0.82 : 0.2 });
    await check();
    let r: OtCompressResult;
    try {
      r = compressModel(spec, loaded.weights, {
        method: opts.method, keep: opts.keep, split, lambdaAttn: opts.lambdaAttn, lambdaMlp: opts.lambdaMlp, seed: opts.seed,
      }, support?.stats);
    } catch (e) {
      fail(undefined, `compression failed: ${(e as Error).message}`);
    }
    await check();
    report({ phase: 'packing emulator', fraction: 0.95 });
    const params = [...loaded.weights.values()].reduce((a, t) => a + t.data.length, 0);
    const sha256 = await weightsSha256(loaded.weights);
    const meta = emulatorMeta(r, { modelId: cur.summary.name, sha256, params }, support, spec.layers.length);
    const pkgFiles = writeEmulatorPackage({ meta, weights: r.weights });
    // The data owner tokenizes their data with the model's tokenizer, so it travels with the package.
    for (const f of cur.files) {
      if (['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'].includes(f.path)) pkgFiles.set(f.path, new Uint8Array(await f.data.arrayBuffer()));
    }
    const zip = zipEmulatorPackage(pkgFiles);
    const packageId = newId('emu');
    const sourceWeights = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [n, t] of loaded.weights) if (/\.attn\.[qkvo]\.weight$/.test(n)) sourceWeights.set(n, { shape: t.shape, data: t.data });
    builtPackages.set(packageId, { zip, name: `${cur.summary.name.replace(/[^\w.-]+/g, '_')}-${opts.method}-keep${opts.keep}-emulator.zip`, result: r, sourceWeights });

    // What the UI shows: per block and per matrix, from the compressor's own record.
    const bySource = new Map(r.layers.map((l) => [l.source, l]));
    const layers: CompressLayerResult[] = spec.layers.map((l, i) => {
      const rec = bySource.get(i);
      const role = !rec ? 'dropped' : rec.role;
      const sc = rec?.scores ? Object.values(rec.scores) : [];
      return {
        layer: i,
        role,
        paramsBefore: blockParamCount(spec, l),
        paramsAfter: rec ? blockParamCount(r.spec, r.spec.layers[rec.index]!) : 0,
        removedGradShift: sc.length ? sc.reduce((a, x) => a + (x?.removedGradShift ?? 0), 0) : null,
        removedLossIncrease: sc.length ? sc.reduce((a, x) => a + (x?.removedLossIncrease ?? 0), 0) : null,
      };
    });
    const matrices: PerMatrixResult[] = [];
    for (const i of middle) {
      const rec = bySource.get(i);
      for (const p of ['q', 'k', 'v', 'o'] as const) {
        const d = linearDims(spec, i, p);
        const full = Math.min(d.out, d.in);
        const sc = rec?.scores?.[p];
        matrices.push({ layer: i, proj: p, shape: [d.out, d.in], kept: rec ? rec.ranks[p] ?? full : 0, full, removedGradShift: sc?.removedGradShift, removedLossIncrease: sc?.removedLossIncrease });
      }
      const sc = rec?.scores?.mlp;
      matrices.push({ layer: i, proj: 'mlp', shape: [spec.intermediateSize, spec.hiddenSize], kept: rec ? rec.mlpWidth : 0, full: spec.intermediateSize, removedGradShift: sc?.removedGradShift, removedLossIncrease: sc?.removedLossIncrease });
    }
    const paramsAfter = [...r.weights.values()].reduce((a, t) => a + t.data.length, 0);
    report({ phase: 'done', fraction: 1 });
    return {
      jobId,
      method: opts.method,
      keep: opts.keep,
      split,
      paramsBefore: params,
      paramsAfter,
      middleBefore: r.plan.paramsBefore,
      middleTarget: r.plan.paramsTarget,
      middleAfter: r.plan.paramsAfter,
      layers,
      matrices,
      readings: r.readings,
      notes: r.plan.notes,
      support: support ? { tokens: support.tokens, batches: support.batches, meanLoss: support.meanLoss, digest: support.digest } : null,
      timings: { ...r.timings, ...(support ? { supportSeconds: support.seconds } : {}) },
      backend: backendName,
      packageId,
      packageBytes: zip.byteLength,
    };
  } finally {
    jobs.delete(jobId);
  }
}

async function exportPackage(packageId: string): Promise<DownloadFile> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory (the page was reloaded?): build it again');
  return { name: p.name, bytes: p.zip.slice(), mime: 'application/zip' };
}

async function spectrum(packageId: string, layer: number, proj: string): Promise<Spectrum> {
  const p = builtPackages.get(packageId);
  if (!p) fail(undefined, 'this emulator is no longer in memory: build it again');
  const w = p.sourceWeights.get(`layers.${layer}.attn.${proj}.weight`);
  if (!w) fail(undefined, `no attention matrix ${proj} in block ${layer}`);
  const [o, i] = w.shape as [number, number];
  const f = exactSvd(w.data, o, i);
  const rec = p.result.layers.find((l) => l.source === layer);
  const kept = rec?.keptComponents?.[proj as 'q'] ?? (rec && rec.ranks[proj as 'q'] === undefined ? Array.from({ length: f.S.length }, (_, k) => k) : []);
  return { layer, proj, sigma: Array.from(f.S), kept };
}

// ---------------------------------------------------------------- adapter tuning (src/ot tune)

/** Runs whose tuning is in progress in this worker (not offered for resume). */
const activeRuns = new Set<string>();
interface TunedRun {
  result: OtTuneResult;
  pkg: EmulatorPackage;
  pkgFiles: InputFile[];
  packageName: string;
  datasetName: string;
}
const tunedRuns = new Map<string, TunedRun>();

async function writeOpfs(dir: FileSystemDirectoryHandle, name: string, data: Blob | string): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(data);
  await w.close();
}

function toZip(files: InputFile[]): Promise<Blob> {
  return Promise.all(files.map(async (f) => [f.path, new Uint8Array(await f.data.arrayBuffer())] as const)).then((list) => {
    const entries: Record<string, Uint8Array> = {};
    for (const [p, b] of list) entries[p] = b;
    return new Blob([zipSync(entries, { level: 0 }) as Uint8Array<ArrayBuffer>], { type: 'application/zip' });
  });
}

async function runTune(
  runId: string,
  pkgFiles: InputFile[],
  pkg: EmulatorPackage,
  packageName: string,
  datasetFile: InputFile,
  options: RunRecord['options'],
  onProgress: ProgressFn,
): Promise<TuneResult> {
  const { jobId, ctl, report, abort, pauser, end } = startControlledJob(onProgress);
  activeRuns.add(runId);
  try {
    report({ phase: 'tokenizer', fraction: null });
    const tok = await loadTokenizer(sourceOf(pkgFiles, packageName)).catch((e: unknown) =>
      rethrow(new Error(`the package has no usable tokenizer (${(e as Error).message}); packages built by the studio include tokenizer.json`), packageName),
    );
    const spec = pkg.meta.spec;
    const C = Math.max(8, Math.min(options.seqLen, spec.maxPositions));
    let prepared: PreparedTraining;
    try {
      // Multiple choice trains on the correct choice as an answer (src/ot task-data), like the CLI.
      prepared = prepareTraining(
        { name: datasetFile.path, bytes: new Uint8Array(await datasetFile.data.arrayBuffer()) }, null, withoutSpecialTokens(tok),
        { contextLength: C, addBos: spec.family === 'llama', validFraction: options.validFraction, seed: options.seed },
      );
    } catch (e) {
      rethrow(e, datasetFile.path);
    }
    const { train, valid } = prepared;
    if (train.length === 0) fail(datasetFile.path, 'no training examples after encoding');
    const be = await pickBackend('auto');
    report({ phase: `loading emulator on ${be.name}`, fraction: null, message: `${train.length} training and ${valid.length} validation examples, context ${C}` });
    const dec = decoderFromWeights(be, spec, pkg.weights);
    const store = opfsCheckpointStore(`${RUNS_DIR}/${runId}`);
    const t0 = performance.now();
    let lastGradNorm: number | null = null;
    let result: OtTuneResult;
    try {
      result = await tune(dec, { train, valid: valid.length ? valid : null }, {
        split: pkg.meta.split,
        method: options.mode === 'lora' ? 'lora' : 'adapter',
        lora: options.mode === 'lora' ? { r: options.lora.rank, alpha: options.lora.alpha, dropout: 0, targets: options.lora.targets as LoraTarget[] } : undefined,
        lr: options.lr,
        epochs: options.epochs,
        batchSize: options.batchSize,
        gradAccum: options.gradAccum,
        seed: options.seed,
        padId: tok.padId ?? tok.eosId ?? 0,
        evalEvery: valid.length ? options.checkpointEvery : undefined,
        checkpointEvery: options.checkpointEvery,
        store,
        signal: abort.signal,
        pause: pauser,
        onProgress: (p) => {
          const el = (performance.now() - t0) / 1000;
          // The engine's 'done' event carries gradNorm 0 as a placeholder (no step ran): show the last real one.
          if (p.phase !== 'done') lastGradNorm = p.gradNorm;
          report({
            phase: p.phase === 'eval' ? 'validating' : p.phase === 'done' ? 'done' : `training on ${be.name}`,
            fraction: p.totalSteps ? p.step / p.totalSteps : null,
            step: p.step,
            totalSteps: p.totalSteps,
            loss: p.loss,
            validLoss: p.valLoss,
            tokensPerS: p.tokensPerSec,
            etaS: Number.isFinite(p.etaSeconds) ? p.etaSeconds : null,
            message: `lr ${p.lr.toExponential(2)} · grad norm ${lastGradNorm === null ? '—' : lastGradNorm.toFixed(3)}${p.bestValLoss !== undefined ? ` · best valid ${p.bestValLoss.toFixed(4)}` : ''} · ${el.toFixed(0)}s`,
          });
        },
      });
    } catch (e) {
      if (abort.signal.aborted || ctl.cancelled) {
        return {
          jobId, runId, status: 'cancelled', steps: 0, totalSteps: 0, trainLoss: NaN, bestValLoss: null, bestStep: null, weightsFrom: null,
          trainableParams: 0, tokens: 0, seconds: (performance.now() - t0) / 1000, tokensPerSec: 0, resumedFrom: 0, backend: be.name,
          packageName, datasetName: datasetFile.path,
        };
      }
      rethrow(e, datasetFile.path);
    }
    tunedRuns.set(runId, { result, pkg, pkgFiles, packageName, datasetName: datasetFile.path });
    return {
      jobId, runId, status: 'done', steps: result.steps, totalSteps: result.totalSteps, trainLoss: result.trainLoss,
      bestValLoss: result.bestValLoss, bestStep: result.bestStep, weightsFrom: result.weightsFrom, trainableParams: result.trainableParams,
      tokens: result.tokens, seconds: result.seconds, tokensPerSec: result.tokensPerSec, resumedFrom: result.resumedFrom, backend: be.name,
      packageName, datasetName: datasetFile.path,
    };
  } finally {
    activeRuns.delete(runId);
    end();
  }
}

async function startTune(opts: TuneOptions, onProgress: ProgressFn): Promise<TuneResult> {
  const p = openPackages.get(opts.packageId);
  if (!p) fail(undefined, 'open an emulator package first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'open a dataset first');
  const runId = `run-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const { packageId: _p, datasetId: _d, ...options } = opts;
  // Save what a resume needs next to the checkpoints: only in this browser's private storage.
  const root = await navigator.storage.getDirectory();
  const dir = await (await root.getDirectoryHandle(RUNS_DIR, { create: true })).getDirectoryHandle(runId, { create: true });
  const datasetFile = `dataset${d.file.path.slice(d.file.path.lastIndexOf('.'))}`;
  await writeOpfs(dir, 'package.zip', await toZip(p.files));
  await writeOpfs(dir, datasetFile, d.file.data);
  const rec: RunRecord = { runId, createdAt: new Date().toISOString(), packageName: p.summary.name, datasetName: d.file.path, datasetFile, options };
  await writeOpfs(dir, 'run.json', JSON.stringify(rec, null, 1));
  return runTune(runId, p.files, p.pkg, p.summary.name, d.file, options, onProgress);
}

async function resumeRun(runId: string, onProgress: ProgressFn): Promise<TuneResult> {
  const root = await navigator.storage.getDirectory();
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await (await root.getDirectoryHandle(RUNS_DIR)).getDirectoryHandle(runId);
  } catch {
    fail(undefined, `run ${runId} is no longer in this browser's storage`);
  }
  const rec = await readRunRecord(dir);
  if (!rec) fail(undefined, `run ${runId}: run.json is missing, cannot resume`);
  const zip = await (await dir.getFileHandle('package.zip')).getFile();
  const files = await expandZip({ path: 'package.zip', data: zip });
  const map = new Map<string, Uint8Array>();
  for (const f of files) if (f.path === EMULATOR_JSON || f.path === EMULATOR_WEIGHTS) map.set(f.path, new Uint8Array(await f.data.arrayBuffer()));
  const pkg = readEmulatorPackage(map);
  const data = await (await dir.getFileHandle(rec.datasetFile)).getFile();
  return runTune(runId, files, pkg, rec.packageName, { path: rec.datasetName, data }, rec.options, onProgress);
}

// ---------------------------------------------------------------- evaluation, export, plug-in (src/ot)

function toEvalResult(m: EvalMetrics): EvalResult {
  const h = headline(m);
  return {
    metric: h.metric, value: h.value, higherIsBetter: h.higherIsBetter, n: m.n, loss: m.loss, perplexity: m.perplexity,
    acc: m.acc, accNorm: m.accNorm, exactMatch: m.exactMatch, seconds: m.seconds,
  };
}

async function evalOn(dec: Decoder, tok: Tokenizer, file: InputFile, spec: ModelSpec, label: string, report: (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'>) => void, signal: AbortSignal, limit?: number): Promise<EvalMetrics> {
  let task: EncodedTask;
  try {
    task = prepareEval({ name: file.path, bytes: new Uint8Array(await file.data.arrayBuffer()) }, withoutSpecialTokens(tok), {
      contextLength: spec.maxPositions, addBos: spec.family === 'llama',
    });
  } catch (e) {
    rethrow(e, file.path);
  }
  // The first N examples in file order, so ZS/FT (and Full ZS/Plug-in) see the same ones.
  if (limit && limit > 0 && task.examples.length > limit) task = { ...task, examples: task.examples.slice(0, limit) as EncodedTask['examples'] };
  return evaluate(dec, task, {
    padId: tok.padId ?? tok.eosId ?? 0, signal,
    onProgress: (done, total) => report({ phase: `evaluating ${label}`, fraction: total ? done / total : null, message: `${done}/${total}` }),
  });
}

async function evaluateJob(opts: EvalOptions, onProgress: ProgressFn): Promise<EvalReport> {
  const run = opts.runId ? tunedRuns.get(opts.runId) : undefined;
  const opened = opts.packageId ? openPackages.get(opts.packageId) : undefined;
  const pkg = run?.pkg ?? opened?.pkg;
  const pkgFiles = run?.pkgFiles ?? opened?.files;
  if (!pkg || !pkgFiles) fail(undefined, 'open an emulator package (or finish a tuning run) first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'open an evaluation file first');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    const tok = await loadTokenizer(sourceOf(pkgFiles, 'package')).catch((e: unknown) => rethrow(e, 'package'));
    const be = await pickBackend('auto');
    const spec = pkg.meta.spec;
    const zsDec = decoderFromWeights(be, spec, pkg.weights);
    const zs = await evalOn(zsDec, tok, d.file, spec, 'Emulator ZS', report, abort.signal, opts.limit);
    let ft: EvalMetrics | null = null;
    if (run) {
      await applyAdapter(zsDec, run.result.adapter);
      ft = await evalOn(zsDec, tok, d.file, spec, 'Emulator FT', report, abort.signal, opts.limit);
    }
    return { file: d.file.path, emulatorZS: toEvalResult(zs), emulatorFT: ft ? toEvalResult(ft) : null, backend: be.name };
  } finally {
    end();
  }
}

async function exportAdaptersJob(runId: string, format: 'safetensors' | 'peft'): Promise<DownloadFile[]> {
  const run = tunedRuns.get(runId);
  if (!run) fail(undefined, 'this run is not in memory (page reloaded?): resume or re-run it, then export');
  const m = run.pkg.meta;
  const files = await exportAdapter(run.result.adapter, {
    spec: m.spec, weights: run.pkg.weights, modelId: m.source.modelId, sha256: m.source.sha256, numLayers: m.source.numLayers,
  }, { info: { emulator: { method: m.method, keep: m.keep }, run: runId, steps: run.result.steps, trainLoss: run.result.trainLoss, bestValLoss: run.result.bestValLoss } });
  const keep = format === 'peft' ? [PEFT_CONFIG, PEFT_WEIGHTS] : [ADAPTER_JSON, ADAPTER_WEIGHTS];
  const entries: Record<string, Uint8Array> = {};
  for (const k of keep) {
    const b = files.get(k);
    if (!b) fail(undefined, format === 'peft' ? 'PEFT layout exists for LoRA runs only; this run trained full adapter blocks' : `export is missing ${k}`);
    entries[k] = b;
  }
  const base = `${run.packageName.replace(/\.zip$/, '').replace(/[^\w.-]+/g, '_')}-${runId}`;
  return [{ name: `${base}-${format === 'peft' ? 'peft' : 'adapter'}.zip`, bytes: zipSync(entries, { level: 0 }), mime: 'application/zip' }];
}

async function plugInJob(opts: PlugInOptions, onProgress: ProgressFn): Promise<PlugInResult> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open the full model first');
  const a = openAdaptersMap.get(opts.adapterId);
  if (!a) fail(undefined, 'drop the returned adapters first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'drop an evaluation task first');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading the full model', fraction: null });
    const { model: full, tok } = await loadOpenModel(cur);
    let adapter;
    try {
      const aSource = sourceOf(a.files, a.summary.name);
      adapter = a.summary.layout === 'adapter'
        ? (await loadAdapter(aSource, full.spec)).adapter
        : fail(a.summary.name, 'PEFT-only folders need the adapter.json that records the split; drop the full export');
    } catch (e) {
      rethrow(e, a.summary.name);
    }
    const be = await pickBackend('auto');
    const fullDec = decoderFromWeights(be, full.spec, full.weights);
    const zs = await evalOn(fullDec, tok, d.file, full.spec, 'Full ZS', report, abort.signal, opts.limit);
    report({ phase: 'plugging the adapter in', fraction: null });
    const plugged = await plugIn({ spec: full.spec, weights: full.weights }, adapter, be);
    const plugDec = decoderFromWeights(be, plugged.spec, plugged.weights);
    const pl = await evalOn(plugDec, tok, d.file, full.spec, 'Plug-in', report, abort.signal, opts.limit);
    return { file: d.file.path, fullZS: toEvalResult(zs), plugIn: toEvalResult(pl), replaced: plugged.replaced.length, backend: be.name };
  } finally {
    end();
  }
}

// ---------------------------------------------------------------- "try it" (src/onnx export + transformers.js)

interface TryExport {
  files: Map<string, Uint8Array>;
  tok: Tokenizer;
  addBos: boolean;
  what: string;
  /** transformers.js has a session for `files` (generate ran at least once). */
  loaded: boolean;
}
/** One export per model state: transformers.js keeps its session per files Map, so a second Generate on
 *  the same state reuses both the export and the ORT session. */
const tryExports = new Map<string, TryExport>();

/** Forgets the exports and releases their ORT sessions (wasm memory is not garbage-collected). */
function dropTryExports(): void {
  for (const ex of tryExports.values()) {
    if (!ex.loaded) continue;
    void import('../src/onnx/transformers')
      .then(({ loadTransformersJsModel }) => loadTransformersJsModel(ex.files))
      .then((m) => m.model.dispose())
      .catch(() => undefined);
  }
  tryExports.clear();
}

async function buildTryExport(target: GenerateOptions['target']): Promise<TryExport> {
  let spec: ModelSpec;
  let weights: WeightMap;
  let files: InputFile[];
  let label: string;
  let what: string;
  const be = new CpuBackend({ dtype: 'f32' });
  if (target.kind === 'run') {
    const run = tunedRuns.get(target.runId);
    if (!run) fail(undefined, 'this run is not in memory (page reloaded?): resume or re-run it first');
    const m = run.pkg.meta;
    const tuned = await plugIn({ spec: m.spec, weights: run.pkg.weights }, run.result.adapter, be);
    spec = m.spec;
    weights = tuned.weights;
    files = run.pkgFiles;
    label = run.packageName;
    what = `emulator + adapters (${run.packageName}, ${run.result.steps} steps)`;
  } else {
    const cur = openModels.get('current');
    if (!cur) fail(undefined, 'open a model first');
    const source = sourceOf(cur.files, cur.summary.name);
    const full = await loadHFModel(source).catch((e: unknown) => rethrow(e, cur.summary.name));
    spec = full.spec;
    weights = full.weights;
    files = cur.files;
    label = cur.summary.name;
    what = `full model (${cur.summary.name})`;
    if (target.adapterId) {
      const a = openAdaptersMap.get(target.adapterId);
      if (!a) fail(undefined, 'drop the returned adapters first');
      if (a.summary.layout !== 'adapter') fail(a.summary.name, 'PEFT-only folders need the adapter.json that records the split; drop the full export');
      const adapter = (await loadAdapter(sourceOf(a.files, a.summary.name), full.spec).catch((e: unknown) => rethrow(e, a.summary.name))).adapter;
      weights = (await plugIn({ spec: full.spec, weights: full.weights }, adapter, be)).weights;
      what = `plug-in model (${cur.summary.name} + ${a.summary.name})`;
    }
  }
  const source = sourceOf(files, label);
  const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(new Error(`no usable tokenizer (${(e as Error).message})`), label));
  const extra = new Map<string, Uint8Array>();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) if (await source.has(f)) extra.set(f, await source.readBytes(f));
  let baseConfig: HFConfig = {};
  if (await source.has('config.json')) baseConfig = JSON.parse(await source.readText('config.json')) as HFConfig;
  // Emulator packages carry no config.json: the tokenizer's ids let generation stop at end-of-text.
  if (baseConfig.eos_token_id === undefined && tok.eosId !== null) baseConfig.eos_token_id = tok.eosId;
  if (baseConfig.bos_token_id === undefined && tok.bosId !== null) baseConfig.bos_token_id = tok.bosId;
  const folder = exportTransformersJsFolder(spec, weights, { baseConfig, extraFiles: extra });
  return { files: folder, tok, addBos: spec.family === 'llama', what, loaded: false };
}

async function generateJob(opts: GenerateOptions, onText: (text: string) => void): Promise<GenerateResult> {
  // Cancel lands between tokens: the next token throws out of transformers.js's generate loop.
  const ctl: JobControl = { paused: false, cancelled: false };
  if (opts.jobId) jobs.set(opts.jobId, ctl);
  try {
    return await generateWith(opts, onText, ctl);
  } finally {
    if (opts.jobId) jobs.delete(opts.jobId);
  }
}

async function generateWith(opts: GenerateOptions, onText: (text: string) => void, ctl: JobControl): Promise<GenerateResult> {
  const key = JSON.stringify(opts.target);
  let exportSeconds = 0;
  let ex = tryExports.get(key);
  if (!ex) {
    const t0 = performance.now();
    ex = await buildTryExport(opts.target);
    if (ctl.cancelled) throw new Cancelled();
    exportSeconds = (performance.now() - t0) / 1000;
    // Keep one export: each holds a copy of the weights and an ORT session.
    dropTryExports();
    tryExports.set(key, ex);
  }
  const { tok } = ex;
  const ids = tok.encode(opts.prompt, { addSpecialTokens: false });
  // Like training and evaluation: LLaMA-family prompts start with the beginning-of-text token.
  const bos = tok.bosId ?? tok.eosId;
  if (ex.addBos && bos !== null && ids[0] !== bos) ids.unshift(bos);
  if (ids.length === 0) fail(undefined, 'type a prompt first');
  const info = await probeBackend();
  // Same rule as the engine's backend choice: a software adapter (SwiftShader) is slower than ORT's wasm.
  const device = info.kind === 'webgpu' && !info.isFallbackAdapter ? 'webgpu' : 'wasm';
  const out: number[] = [];
  const t1 = performance.now();
  // Loaded on first use: onnxruntime-web and transformers.js stay out of the worker's startup.
  const { generateInBrowser } = await import('../src/onnx/browser');
  const r = await generateInBrowser(ex.files, ids, {
    maxNewTokens: Math.max(1, Math.min(512, Math.floor(opts.maxNewTokens))),
    doSample: opts.sample,
    ...(opts.sample ? { temperature: opts.temperature, topK: opts.topK } : {}),
    device,
    onToken: (id) => {
      if (ctl.cancelled) throw new Cancelled();
      out.push(id);
      void onText(tok.decode(out, { skipSpecialTokens: true }));
    },
  }).catch((e: unknown) => (ctl.cancelled ? Promise.reject(new Cancelled()) : rethrow(e, 'transformers.js')));
  ex.loaded = true;
  const text = tok.decode(r.tokens, { skipSpecialTokens: true });
  return {
    text, promptTokens: r.promptTokens.length, newTokens: r.tokens.length, exportSeconds,
    generateSeconds: (performance.now() - t1) / 1000, device, model: ex.what,
  };
}

// ---------------------------------------------------------------- the OT protocol (src/ot runProtocol)

/** Full ZS / Full FT per (model, task, recipe): several methods side by side compute them once. */
const protocolReuse = new Map<string, { fullZS?: EvalMetrics; fullFT?: { metrics: EvalMetrics; tune: TuneSummary } }>();

function pickTaskFile(files: InputFile[], word: string): InputFile | undefined {
  return files.find((f) => baseName(f.path).toLowerCase().includes(word));
}

async function runProtocolJob(req: ProtocolRequest, taskFiles: InputFile[], onProgress: ProgressFn): Promise<OTRun> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model in the Model owner view first');
  const trainF = pickTaskFile(taskFiles, 'train');
  const testF = pickTaskFile(taskFiles, 'test');
  if (!trainF || !testF) {
    fail(taskFiles[0]?.path, `the protocol needs a *train* and a *test* file (got ${taskFiles.map((f) => f.path).join(', ') || 'none'})`);
  }
  const validF = pickTaskFile(taskFiles, 'valid');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading model and task', fraction: null });
    const { model, tok } = await loadOpenModel(cur);
    const spec = model.spec;
    const C = Math.max(8, Math.min(req.tune.seqLen, spec.maxPositions));
    const tt = withoutSpecialTokens(tok);
    const bytes = async (f: InputFile) => ({ name: f.path, bytes: new Uint8Array(await f.data.arrayBuffer()) });
    let prepared: PreparedTraining;
    let test;
    try {
      prepared = prepareTraining(await bytes(trainF), validF ? await bytes(validF) : null, tt, { contextLength: C, addBos: spec.family === 'llama', seed: req.tune.seed });
      test = prepareEval(await bytes(testF), tt, { contextLength: spec.maxPositions, addBos: spec.family === 'llama' });
    } catch (e) {
      rethrow(e, trainF.path);
    }
    // Example limits keep a grid small; a limited setting says so in its task name (rows stay comparable).
    if (req.trainLimit && req.trainLimit > 0) prepared = { ...prepared, train: prepared.train.slice(0, req.trainLimit) };
    if (req.testLimit && req.testLimit > 0 && test.examples.length > req.testLimit) test = { ...test, examples: test.examples.slice(0, req.testLimit) as typeof test.examples };
    const padId = tok.padId ?? tok.eosId ?? 0;
    const sup = prepared.train.slice(0, Math.max(1, req.supportExamples));
    const support: SupportBatch[] = [];
    for (let i = 0; i < sup.length; i += 4) {
      const b = makeBatch(sup, Array.from({ length: Math.min(4, sup.length - i) }, (_, k) => i + k), { padId });
      support.push({ ids: b.ids, targets: b.targets, B: b.batchSize, T: b.seqLen });
    }
    const be = await pickBackend('auto');
    const t = req.tune;
    const recipe = { lr: t.lr, epochs: t.epochs, batchSize: t.batchSize, gradAccum: t.gradAccum, seed: t.seed, padId,
      method: t.mode === 'lora' ? ('lora' as const) : ('adapter' as const),
      lora: t.mode === 'lora' ? { r: t.lora.rank, alpha: t.lora.alpha, dropout: 0, targets: t.lora.targets as LoraTarget[] } : undefined };
    const key = JSON.stringify([cur.summary.name, taskFiles.map((f) => [f.path, f.data.size]), recipe, C, req.setting.adapters, req.trainLimit ?? 0, req.testLimit ?? 0]);
    const reuse = protocolReuse.get(key) ?? {};
    const phases: Record<string, number> = { 'full-zs': 0.05, compress: 0.15, 'emulator-zs': 0.25, tune: 0.3, 'emulator-ft': 0.8, 'plug-in': 0.88, 'full-ft-tune': 0.9, 'full-ft': 0.98 };
    const r = await runProtocol({ spec, weights: model.weights, modelId: cur.summary.name }, {
      method: req.setting.method, keep: req.setting.keep, split: req.setting.adapters,
      compress: defaultCompress(support, { lambdaAttn: req.setting.lambdaAttn, lambdaMlp: req.setting.lambdaMlp }),
      task: { name: baseName(testF.path), train: prepared.train, valid: prepared.valid, test },
      tune: recipe, fullFT: req.fullFT, backend: be, padId, reuse, signal: abort.signal,
      onProgress: (p) => {
        const base = phases[p.phase] ?? null;
        const frac = p.phase === 'tune' && p.tune && p.tune.totalSteps ? 0.3 + 0.5 * (p.tune.step / p.tune.totalSteps) : base;
        report({
          phase: `${req.setting.method} keep ${req.setting.keep}: ${p.phase}${p.result ? ' ✓' : ''}`, fraction: frac,
          step: p.tune?.step, totalSteps: p.tune?.totalSteps, loss: p.tune?.loss, tokensPerS: p.tune?.tokensPerSec,
        });
      },
    }).catch((e: unknown) => rethrow(e, cur.summary.name));
    protocolReuse.set(key, {
      fullZS: r.details.fullZS,
      ...(r.details.fullFT && r.fullTune ? { fullFT: { metrics: r.details.fullFT, tune: r.fullTune } } : reuse.fullFT ? { fullFT: reuse.fullFT } : {}),
    });
    return {
      id: newId('ot'), createdAt: new Date().toISOString(), model: r.model, task: r.task, setting: req.setting,
      fullZS: r.fullZS, emulatorZS: r.emulatorZS, emulatorFT: r.emulatorFT, plugIn: r.plugIn, fullFT: r.fullFT,
      delta: r.delta, deltaStderr: r.deltaStderr ?? null, compressionRatio: r.compressionRatio, metric: r.metric, origin: 'browser', report: JSON.parse(JSON.stringify(r)),
    };
  } finally {
    end();
  }
}

const api: StudioApi = {
  capabilities,
  probeBackend,
  openModel,
  compress,
  exportPackage,
  spectrum,
  openPackage,
  openAdapters,
  plugIn: plugInJob,
  generate: generateJob,
  openDataset,
  tune: startTune,
  resumeRun,
  async pause(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = true;
    jobControls.get(jobId)?.pauser.pause();
  },
  async resume(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = false;
    jobControls.get(jobId)?.pauser.resume();
  },
  async cancel(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.cancelled = true;
    const c = jobControls.get(jobId);
    if (c) {
      c.pauser.resume();
      c.abort.abort();
    }
  },
  checkpoint,
  discardCheckpoint,
  evaluate: evaluateJob,
  exportAdapters: exportAdaptersJob,
  runProtocol: runProtocolJob,
};

Comlink.expose(api);
