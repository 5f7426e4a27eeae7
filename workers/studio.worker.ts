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
import { unzipSync } from 'fflate';
import Papa from 'papaparse';
import {
  encodeStudioError,
  type BackendInfo,
  type Capabilities,
  type CheckpointInfo,
  type CompressOptions,
  type CompressResult,
  type DatasetIssue,
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
  ...(import.meta.glob('../src/model/safetensors.ts') as Record<string, Loader>),
  ...(import.meta.glob('../src/data/index.ts') as Record<string, Loader>),
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
const DATA = '../src/data/index.ts';
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
  const validate = await has(DATA, 'validateDataset');
  return {
    inspectModel: { available: true, note: 'config.json + safetensors headers, read in the worker' },
    compress: ot.compress
      ? { available: true, note: 'src/ot compress' }
      : { available: false, note: waiting('GradOT compression (src/ot: compress)') },
    exportPackage: ot.pkg
      ? { available: true, note: 'src/ot emulator package' }
      : { available: false, note: waiting('emulator package writer (src/ot)') },
    openPackage: { available: true, note: 'zip/folder read in the worker (manifest + tensor headers)' },
    validateDataset: validate
      ? { available: true, note: 'src/data validateDataset' }
      : { available: false, note: waiting('schema validation (src/data: validateDataset); syntax is checked') },
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

async function probeBackend(): Promise<BackendInfo> {
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
    source: (await load(WEBGPU)) ? 'engine' : 'probe',
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

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

interface HeaderTensor {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Reads only the JSON header (8-byte length + JSON) and checks every tensor lies inside the file. */
async function readSafetensorsHeader(file: InputFile): Promise<TensorInfo[]> {
  const size = file.data.size;
  if (size < 8) fail(file.path, `file is ${size} bytes: too short to be safetensors (needs an 8-byte header length)`);
  const lenBytes = new DataView(await file.data.slice(0, 8).arrayBuffer());
  const headerLen = Number(lenBytes.getBigUint64(0, true));
  if (headerLen <= 1 || headerLen > 100 * 1024 * 1024) {
    fail(file.path, `header length ${headerLen} is not plausible: not a safetensors file`);
  }
  if (8 + headerLen > size) {
    fail(file.path, `truncated: header says ${headerLen} bytes of JSON but the file has only ${size - 8} after the length`);
  }
  const text = new TextDecoder().decode(await file.data.slice(8, 8 + headerLen).arrayBuffer());
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    fail(file.path, `header is not valid JSON (${(e as Error).message})`);
  }
  const dataLen = size - 8 - headerLen;
  const out: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = raw as HeaderTensor;
    if (!t || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) fail(file.path, `tensor ${name}: malformed entry`);
    const params = t.shape.reduce((a, b) => a * b, 1);
    const [begin, end] = t.data_offsets;
    if (end > dataLen) {
      fail(file.path, `truncated: tensor ${name} ends at byte ${end} of the data section, which has only ${dataLen} bytes`);
    }
    const bytes = DTYPE_BYTES[t.dtype];
    if (bytes !== undefined && end - begin !== params * bytes) {
      fail(file.path, `tensor ${name}: ${t.dtype}${JSON.stringify(t.shape)} needs ${params * bytes} bytes, offsets give ${end - begin}`);
    }
    out.push({ name, dtype: t.dtype, shape: t.shape, params });
  }
  return out;
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

async function openModel(name: string, files: InputFile[]): Promise<ModelSummary> {
  if (files.length === 0) fail(name, 'no files given');
  const configFile = findFile(files, 'config.json');
  const weightFiles = files.filter((f) => f.path.endsWith('.safetensors'));
  const other = files.filter((f) => f !== configFile && !weightFiles.includes(f));
  if (!configFile && weightFiles.length === 0) {
    const names = files.map((f) => f.path).join(', ');
    fail(files[0]?.path, `not a model: expected config.json and *.safetensors, got ${names}`);
  }
  if (!configFile) fail(weightFiles[0]?.path, 'config.json is missing next to the weights');
  if (weightFiles.length === 0) fail(configFile.path, 'no *.safetensors weights next to config.json (pytorch .bin is not read)');
  const cfg = await readJson(configFile);
  const tensors: TensorInfo[] = [];
  for (const w of weightFiles) tensors.push(...(await readSafetensorsHeader(w)));

  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown';
  const numLayers = num(cfg, 'num_hidden_layers', 'n_layer');
  const hiddenSize = num(cfg, 'hidden_size', 'n_embd');
  const numHeads = num(cfg, 'num_attention_heads', 'n_head');
  const numKvHeads = num(cfg, 'num_key_value_heads') || numHeads;
  const intermediateSize = num(cfg, 'intermediate_size', 'ffn_dim', 'n_inner') || 4 * hiddenSize;
  const warnings: string[] = [];
  if (familyOf(modelType) === 'unknown') warnings.push(`model_type "${modelType}" is not one of gpt2, opt, llama/qwen2`);

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
  if (numLayers && layers.length !== numLayers) {
    warnings.push(`config.json says ${numLayers} layers, the weights have ${layers.length}`);
  }
  const summary: ModelSummary = {
    name,
    files: files.map((f) => ({ path: f.path, size: f.data.size })),
    modelType,
    family: familyOf(modelType),
    numLayers: numLayers || layers.length,
    hiddenSize,
    numHeads,
    numKvHeads,
    intermediateSize,
    vocabSize: num(cfg, 'vocab_size'),
    maxPositions: num(cfg, 'max_position_embeddings', 'n_positions'),
    totalParams: tensors.reduce((a, t) => a + t.params, 0),
    otherParams,
    layers,
    tensors,
    dtypes,
    hasTokenizer: !!findFile(other, 'tokenizer.json'),
    parsedBy: 'studio worker: config.json + safetensors headers',
    warnings,
  };
  if (!summary.hasTokenizer) summary.warnings.push('tokenizer.json is missing: tuning and evaluation will need it');
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
  let files = input;
  if (input.length === 1 && input[0]!.path.toLowerCase().endsWith('.zip')) files = await expandZip(input[0]!);
  const manifestFile = findFile(files, 'emulator.json');
  if (!manifestFile) {
    fail(input[0]?.path ?? name, `not an emulator package: no emulator.json (found ${files.map((f) => f.path).join(', ') || 'nothing'})`);
  }
  const manifest = await readJson(manifestFile);
  const weights = findFile(files, 'emulator.safetensors');
  if (!weights) fail(manifestFile.path, 'emulator.safetensors is missing next to emulator.json');
  const tensors = await readSafetensorsHeader(weights);
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

// ---------------------------------------------------------------- datasets

const openDatasets = new Map<string, { preview: DatasetPreview; file: InputFile }>();
const PREVIEW_ROWS = 50;
const MAX_ISSUES = 200;

function kindOf(obj: Record<string, unknown>): string {
  if ('choices' in obj && 'label' in obj) return 'mc';
  if ('prompt' in obj && 'answer' in obj) return 'sft';
  if ('text' in obj) return 'lm';
  return 'unknown';
}

function cell(v: unknown): string {
  if (typeof v === 'string') return v;
  return JSON.stringify(v) ?? '';
}

async function openDataset(file: InputFile): Promise<DatasetPreview> {
  const lower = file.path.toLowerCase();
  const format: DatasetPreview['format'] | null = lower.endsWith('.jsonl') || lower.endsWith('.json')
    ? 'jsonl'
    : lower.endsWith('.csv')
      ? 'csv'
      : lower.endsWith('.txt')
        ? 'txt'
        : null;
  if (!format) fail(file.path, 'unsupported dataset type: use .jsonl, .csv or .txt');
  const text = await file.data.text();
  if (text.trim().length === 0) fail(file.path, 'file is empty');
  const issues: DatasetIssue[] = [];
  const rows: Record<string, string>[] = [];
  const columns = new Set<string>();
  const kinds = new Map<string, number>();
  let total = 0;
  if (format === 'jsonl') {
    const lines = text.split(/\r?\n/);
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      total++;
      try {
        const obj = JSON.parse(line) as unknown;
        if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
          if (issues.length < MAX_ISSUES) issues.push({ file: file.path, line: i + 1, message: 'line is JSON but not an object' });
          return;
        }
        const o = obj as Record<string, unknown>;
        const k = kindOf(o);
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
        if (k === 'unknown' && issues.length < MAX_ISSUES) {
          issues.push({ file: file.path, line: i + 1, message: `no known fields: expected "text", "prompt"+"answer" or "context"+"choices"+"label" (has ${Object.keys(o).join(', ') || 'none'})` });
        }
        if (rows.length < PREVIEW_ROWS) {
          const r: Record<string, string> = {};
          for (const [key, v] of Object.entries(o)) {
            columns.add(key);
            r[key] = cell(v);
          }
          rows.push(r);
        }
      } catch (e) {
        if (issues.length < MAX_ISSUES) issues.push({ file: file.path, line: i + 1, message: `not valid JSON: ${(e as Error).message}` });
      }
    });
    if (total > 0 && issues.length === total) {
      fail(file.path, `no line is a valid JSON object (first problem, line ${issues[0]!.line}: ${issues[0]!.message})`, issues[0]!.line ?? undefined);
    }
  } else if (format === 'csv') {
    const parsed = Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true });
    for (const err of parsed.errors.slice(0, MAX_ISSUES)) {
      // Papa's row is 0-based over data rows; +2 for the header line and 1-based lines.
      issues.push({ file: file.path, line: err.row !== undefined ? err.row + 2 : null, message: err.message });
    }
    for (const f of parsed.meta.fields ?? []) columns.add(f);
    total = parsed.data.length;
    for (const r of parsed.data.slice(0, PREVIEW_ROWS)) rows.push(r);
    if (total > 0) kinds.set(kindOf(parsed.data[0] as Record<string, unknown>), total);
  } else {
    const paras = text.split(/\n\s*\n/).filter((p) => p.trim().length > 0);
    total = paras.length;
    columns.add('text');
    for (const p of paras.slice(0, PREVIEW_ROWS)) rows.push({ text: p.length > 400 ? `${p.slice(0, 400)}…` : p });
    kinds.set('lm', total);
  }
  let validatedBy = 'studio worker: syntax and field names only';
  const validate = await fn<(...args: unknown[]) => unknown>(DATA, 'validateDataset');
  if (validate) {
    // src/data's validator is authoritative when present; its exact signature is wired once it lands.
    validatedBy = 'src/data validateDataset (present; wiring pending)';
  }
  const kind = [...kinds.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'unknown';
  const preview: DatasetPreview = {
    datasetId: newId('ds'),
    file: file.path,
    format,
    kind,
    columns: [...columns],
    rows,
    totalRows: total,
    issues,
    validatedBy,
  };
  openDatasets.set(preview.datasetId, { preview, file });
  return preview;
}

// ---------------------------------------------------------------- jobs (pause / resume / cancel)

interface JobControl {
  paused: boolean;
  cancelled: boolean;
}
const jobs = new Map<string, JobControl>();

// ---------------------------------------------------------------- OPFS checkpoints

const CKPT_DIR = 'gradot-checkpoints';

async function checkpointDir(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(CKPT_DIR, { create });
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
