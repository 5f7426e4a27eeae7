/**
 * The contract between the studio UI (main thread) and workers/studio.worker.ts (exposed with comlink).
 *
 * Why it lives here: both sides import these types, and the UI must never import worker code (it would pull
 * the numeric core onto the main thread). Everything crossing the boundary is structured-cloneable:
 * plain objects, typed arrays, Blobs/Files. Progress callbacks are passed wrapped in `Comlink.proxy`.
 *
 * Capabilities: the engine, model, data and OT modules land independently. The worker reports which
 * operations are backed by real code right now (`Capabilities`); the UI disables the rest with the note
 * given, instead of showing anything made up.
 */
import type { Verdict } from '../ot/offsite/verdicts';

import type { RunInfo } from '../engine/webgpu/run-info';

// ---------------------------------------------------------------- backend badge

export interface BackendInfo {
  kind: 'webgpu' | 'cpu';
  /** Adapter description/vendor/architecture as the browser reports it (WebGPU only). */
  adapterName?: string;
  vendor?: string;
  architecture?: string;
  /** True for software adapters such as SwiftShader. */
  isFallbackAdapter?: boolean;
  features?: string[];
  limits?: Record<string, number>;
  /** Why WebGPU is not used (missing navigator.gpu, no adapter, requestDevice failed...). */
  reason?: string;
  /** Where the info came from: the engine's createWebGpuBackend, or a plain adapter probe. */
  source: 'engine' | 'probe';
  /** The GPU device was lost during this session: jobs moved to the CPU backend (`reason` says more). */
  lost?: boolean;
  /** The CPU backend's threads and f32 kernel (and why fewer threads than asked, e.g. no cross-origin
   *  isolation). */
  cpu?: { threads: number; requested: number; reason: string | null; kernel: string };
  /** Where the jobs actually run: a software adapter is reported (kind 'webgpu') but skipped for the CPU. */
  jobsOn?: 'webgpu' | 'cpu';
  /** What the jobs run on, from the engine (WebGPU: adapter, f16 / subgroup kernel variants in use; CPU:
   *  threads, kernel, and why not WebGPU): the same facts and words as the CLI's "backend: …" line. */
  run?: RunInfo;
}

// ---------------------------------------------------------------- capabilities

export type CapabilityKey =
  | 'inspectModel'
  | 'compress'
  | 'exportPackage'
  | 'openPackage'
  | 'validateDataset'
  | 'tune'
  | 'evaluate'
  | 'exportAdapters'
  | 'plugIn'
  | 'otProtocol';

export interface Capability {
  available: boolean;
  /** What backs it (e.g. "src/model/hf.ts"), or what it is waiting on. */
  note: string;
}

export type Capabilities = Record<CapabilityKey, Capability>;

// ---------------------------------------------------------------- inputs

/** One file of a model/package/dataset, with its path relative to the folder the user picked. */
export interface InputFile {
  path: string;
  data: Blob;
}

// ---------------------------------------------------------------- model owner

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
}

export interface LayerSummary {
  index: number;
  params: number;
  tensors: number;
}

export interface ModelSummary {
  /** Display name (folder name, "demo", or URL). */
  name: string;
  files: { path: string; size: number }[];
  modelType: string;
  family: string;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  totalParams: number;
  /** Parameters outside the numbered blocks (embeddings, final norm, head). */
  otherParams: number;
  layers: LayerSummary[];
  tensors: TensorInfo[];
  dtypes: Record<string, number>;
  hasTokenizer: boolean;
  /** Which code produced this summary (the model module, or the worker's header reader). */
  parsedBy: string;
  warnings: string[];
}

export type CompressMethod = 'gradot' | 'svd' | 'prune' | 'drop' | 'none';

export interface CompressOptions {
  method: CompressMethod;
  /** Fraction of middle-block parameters kept, in (0, 1]. */
  keep: number;
  adapters: { bottom: number; top: number };
  lambdaAttn: number;
  lambdaMlp: number;
  /** Support data for the gradient pass (gradot only; JSONL/CSV/TXT). */
  support: InputFile | null;
  /** Support examples used (the first N after encoding) and their context length: the pass is a full
   *  forward+backward, so these bound its cost on slow (software) adapters. */
  supportExamples: number;
  supportSeqLen: number;
  supportBatch: number;
  /** 'auto' = the engine's WebGPU backend when the badge shows one, else CPU. */
  backend: 'auto' | 'cpu';
  seed: number;
  /** gradot's working-memory budget in bytes, as the page chose it from its estimate (memory-estimate.ts
   *  studioMemoryBudget); default 1 GiB, as the CLI's. */
  memoryBudget?: number;
}

export interface ProgressEvent {
  jobId: string;
  /** Short phase name, e.g. "support pass", "scoring attention", "slicing MLP", "packing". */
  phase: string;
  /** 0..1 over the whole job, or null when unknown. */
  fraction: number | null;
  /** Seconds since the job started (worker clock). */
  elapsedS: number;
  /** Estimated seconds left, or null when unknown. */
  etaS: number | null;
  message?: string;
  /** Training only. */
  step?: number;
  totalSteps?: number;
  loss?: number;
  validLoss?: number;
  tokensPerS?: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

export interface PerMatrixResult {
  /** Source block index. */
  layer: number;
  /** 'q' | 'k' | 'v' | 'o' | 'up' | 'gate' | 'down' (gate for gated MLPs only). */
  proj: string;
  /** [out, in] of the source matrix. */
  shape: [number, number];
  /** Kept rank, or kept channels for an MLP sliced by channels (`unit`); 0 when the block was dropped. */
  kept: number;
  /** Full rank min(out, in), or the source MLP width for channels. */
  full: number;
  unit: 'rank' | 'channels';
  /** Removed candidates' summed gradient shift ‖GδA‖₁ and first-order loss increase ⟨g, δ⟩ (gradot only). */
  removedGradShift?: number;
  removedLossIncrease?: number;
}

export interface CompressLayerResult {
  /** Source block index. */
  layer: number;
  role: 'bottom' | 'middle' | 'top' | 'dropped';
  paramsBefore: number;
  paramsAfter: number;
  /** Sums over the block's scored matrices (gradot only; null otherwise). */
  removedGradShift: number | null;
  removedLossIncrease: number | null;
}

export interface CompressResult {
  jobId: string;
  method: CompressMethod;
  keep: number;
  split: { bottom: number; top: number };
  /** Whole model parameters before/after. */
  paramsBefore: number;
  paramsAfter: number;
  /** Middle blocks: before, budget target, after. */
  middleBefore: number;
  middleTarget: number;
  middleAfter: number;
  layers: CompressLayerResult[];
  matrices: PerMatrixResult[];
  /** Which reading of each *inferred* part was used (docs/ot-compression.md). */
  readings: Record<string, string>;
  notes: string[];
  support: { tokens: number; batches: number; meanLoss: number; digest: string } | null;
  timings: Record<string, number>;
  backend: string;
  /** Handle for exportPackage / spectrum. */
  packageId: string;
  packageBytes: number;
}

/** Singular values of one source matrix with the components the emulator kept (σ descending). */
export interface Spectrum {
  layer: number;
  proj: string;
  sigma: number[];
  kept: number[];
}

// ---------------------------------------------------------------- data owner

export interface PackageSummary {
  packageId: string;
  name: string;
  manifest: Record<string, unknown>;
  sourceModel: string;
  method: string;
  /** Model family of the emulator (gpt2 | opt | llama): picks the default LoRA targets. */
  family?: string;
  files: { path: string; size: number }[];
  tensorCount: number;
  params: number;
  warnings: string[];
}

export interface DatasetIssue {
  file: string;
  /** 1-based line (JSONL/TXT) or row (CSV); null when the whole file is bad. */
  line: number | null;
  message: string;
}

export interface DatasetPreview {
  /** Empty when !ok (the file cannot be used). */
  datasetId: string;
  /** False when the reader rejected the file; `issues` says where. */
  ok: boolean;
  file: string;
  format: 'jsonl' | 'csv' | 'txt';
  /** 'lm' | 'mc' | 'sft' when known. */
  kind: string;
  columns: string[];
  rows: Record<string, string>[];
  totalRows: number;
  issues: DatasetIssue[];
  /** Non-fatal findings (duplicates, label imbalance, ...). */
  warnings: string[];
  /** Which code validated it (src/data, or the worker's syntax-only check). */
  validatedBy: string;
  /**
   * Mean characters an evaluation scores per record (multiple choice: context + choice, summed over the
   * choices; prompt + answer; text), for a time estimate before the first evaluation.
   */
  meanScoredChars?: number;
}

export interface TuneOptions {
  packageId: string;
  datasetId: string;
  mode: 'full' | 'lora';
  lora: { rank: number; alpha: number; targets: string[] };
  lr: number;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  seed: number;
  /** Commit a resumable checkpoint (OPFS) every this many optimizer steps. */
  checkpointEvery: number;
  /** Held-out share of the records for validation (0 = none); src/ot prepareTraining's split. */
  validFraction: number;
}

export interface TuneResult {
  jobId: string;
  runId: string;
  status: 'done' | 'cancelled';
  steps: number;
  totalSteps: number;
  trainLoss: number;
  bestValLoss: number | null;
  bestStep: number | null;
  weightsFrom: 'best' | 'final' | null;
  trainableParams: number;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
  /** Step the run continued from (0 = fresh). */
  resumedFrom: number | 'done';
  backend: string;
  packageName: string;
  datasetName: string;
  /** What the run trains (also for a resumed run): PEFT export is for LoRA runs only. */
  mode?: 'full' | 'lora';
}

/**
 * Where training runs checkpoint (OPFS): each run is one src/ot checkpoint store at
 *   opfsCheckpointStore(`${RUNS_DIR}/${runId}`)
 * and every commit's `meta` is a `TuneCheckpointMeta`. `checkpoint()` lists the runs, reads each store's
 * latest() entry (manifest only, cheap) and offers the newest one for resuming.
 */
export const RUNS_DIR = 'gradot-runs';

/** `${RUNS_DIR}/${runId}/run.json`: what a resume needs besides the store (package.zip and the dataset
 *  file are saved next to it, in this browser's private storage only). */
export interface RunRecord {
  runId: string;
  createdAt: string;
  packageName: string;
  datasetName: string;
  /** File name of the saved dataset inside the run folder. */
  datasetFile: string;
  options: Omit<TuneOptions, 'packageId' | 'datasetId'>;
}

export interface CheckpointInfo {
  runId: string;
  /** The checkpoint's id in the run's store. */
  checkpointId: string;
  step: number;
  totalSteps: number;
  savedAt: string;
  packageName: string;
  datasetName: string;
}

export interface EvalOptions {
  /** The emulator: an opened package, or the package a finished run was trained on. */
  packageId?: string;
  /** A finished tuning run: adds Emulator FT (its adapter applied to the emulator). */
  runId?: string;
  /** The evaluation file (an opened dataset). */
  datasetId: string;
  /** Evaluate on the first N examples only (0 or absent = all): bounds the cost on slow backends. */
  limit?: number;
}

export interface EvalResult {
  /** Headline metric: accuracy for multiple choice, token-mean loss otherwise. */
  metric: 'acc' | 'loss';
  value: number;
  higherIsBetter: boolean;
  n: number;
  loss?: number;
  perplexity?: number;
  acc?: number;
  accNorm?: number;
  exactMatch?: number;
  seconds: number;
}

export interface EvalReport {
  file: string;
  emulatorZS: EvalResult;
  emulatorFT: EvalResult | null;
  backend: string;
}

export interface DownloadFile {
  name: string;
  /** A Blob for large files the worker keeps (an emulator package): passed on without a copy. */
  bytes: Uint8Array | Blob;
  mime: string;
}

// ---------------------------------------------------------------- model owner: plug returned adapters in

export interface AdapterSummary {
  adapterId: string;
  name: string;
  /** 'adapter' (our adapter.json + adapter.safetensors) or 'peft' (adapter_config.json + adapter_model.safetensors). */
  layout: 'adapter' | 'peft';
  manifest: Record<string, unknown>;
  files: { path: string; size: number }[];
  tensorCount: number;
  params: number;
  /** Adapter tensors whose names the open model does not have (non-empty = adapters of another model). */
  unknownTensors: string[];
  warnings: string[];
}

export interface PlugInOptions {
  adapterId: string;
  /** Evaluation task (an opened dataset). */
  datasetId: string;
  /** Evaluate on the first N examples only (0 or absent = all). */
  limit?: number;
}

// ---------------------------------------------------------------- "try it": generation with transformers.js

/** Which model state to export and run: the open full model (with opened adapters plugged in, when given),
 *  or a finished tuning run's emulator with its adapters applied. */
export type GenerateTarget = { kind: 'plugin'; adapterId?: string } | { kind: 'run'; runId: string };

export interface GenerateOptions {
  target: GenerateTarget;
  prompt: string;
  maxNewTokens: number;
  /** Greedy unless true. */
  sample: boolean;
  temperature: number;
  topK: number;
  /** Chosen by the caller so it can cancel(jobId) while tokens stream (generation has no progress events). */
  jobId?: string;
}

/** What "Try it" is doing: Cancel stops it between any two of these, and between tokens. */
export type GenerateStage = 'loading model' | 'exporting to ONNX' | 'loading transformers.js' | 'generating';

export interface GenerateResult {
  text: string;
  promptTokens: number;
  newTokens: number;
  /** ONNX export of the model state (0 when the export was reused). */
  exportSeconds: number;
  generateSeconds: number;
  /** transformers.js device: 'webgpu' or 'wasm' (onnxruntime-web served from this origin). */
  device: string;
  /** What was exported, e.g. "plug-in model (demo + adapter.zip)". */
  model: string;
}

export interface PlugInResult {
  file: string;
  fullZS: EvalResult;
  plugIn: EvalResult;
  /** Canonical tensors the adapter replaced in the full model. */
  replaced: number;
  backend: string;
}

// ---------------------------------------------------------------- researcher

export interface OTSetting {
  method: CompressMethod;
  keep: number;
  lambdaAttn: number;
  lambdaMlp: number;
  adapters: { bottom: number; top: number };
}

export interface ProtocolRequest {
  setting: OTSetting;
  tune: {
    lr: number;
    epochs: number;
    batchSize: number;
    gradAccum: number;
    seqLen: number;
    seed: number;
    mode: 'full' | 'lora';
    lora: { rank: number; alpha: number; targets: string[] };
  };
  supportExamples: number;
  fullFT: boolean;
  /** Example limits (0 or absent = all): the first N training and test examples, so a grid of settings
   *  finishes in minutes on a CPU. Runs record them. */
  trainLimit?: number;
  testLimit?: number;
}

/** One row of the researcher's table: the five OT numbers (accuracy or -loss, higher is better). */
export interface OTRun {
  id: string;
  createdAt: string;
  model: string;
  task: string;
  setting: OTSetting;
  fullZS: number | null;
  emulatorZS: number | null;
  emulatorFT: number | null;
  plugIn: number | null;
  fullFT: number | null;
  /** Plug-in − Emulator FT for accuracy, Emulator FT loss − Plug-in loss for loss: larger is better. */
  delta: number | null;
  /** Paired standard error of Δ over the test items (multiple-choice runs; absent for older or loss runs). */
  deltaStderr?: number | null;
  /** Full ZS − Emulator ZS's paired standard error over the test items (the privacy side; multiple choice). */
  hidesStderr?: number | null;
  /** The protocol's verdicts on the headline metric, "yes" only beyond two paired standard errors
   *  (src/ot/offsite/verdicts.ts); absent on older rows. */
  verdicts?: { deltaPositive: Verdict; plugInBeatsFullZS: Verdict; emulatorHides: Verdict };
  /** Middle-block parameters of the full model / of the emulator (src/ot's definition; > 1). */
  compressionRatio: number | null;
  metric: string;
  /** Tuning seed of the run (several seeds of one setting give error bars); absent on older rows. */
  seed?: number;
  /** Example limits the run used (absent = all examples). */
  limits?: { train: number; test: number };
  /** Where the row came from: this browser's protocol run or an imported report. */
  origin: 'browser' | 'import';
  /** The full report (src/ot OTReport) for browser runs. */
  report?: unknown;
}

// ---------------------------------------------------------------- the facade

export interface StudioApi {
  capabilities(): Promise<Capabilities>;
  /** The backend badge. `allowSoftwareAdapter` (first call only) runs jobs on a software WebGPU adapter too. */
  probeBackend(opts?: { allowSoftwareAdapter?: boolean }): Promise<BackendInfo>;
  /** `onChange` receives the badge's new data when the backend changes (the GPU device was lost). */
  watchBackend(onChange: (b: BackendInfo) => void): Promise<void>;

  openModel(name: string, files: InputFile[]): Promise<ModelSummary>;
  compress(opts: CompressOptions, onProgress: ProgressFn): Promise<CompressResult>;
  exportPackage(packageId: string): Promise<DownloadFile>;
  spectrum(packageId: string, layer: number, proj: string): Promise<Spectrum>;
  openAdapters(name: string, files: InputFile[]): Promise<AdapterSummary>;
  plugIn(opts: PlugInOptions, onProgress: ProgressFn): Promise<PlugInResult>;
  /** Exports the target to ONNX (transformers.js layout, in the worker) and generates with transformers.js;
   *  `onText` receives the decoded continuation so far after each new token. */
  generate(opts: GenerateOptions, onText: (text: string) => void, onStage?: (stage: GenerateStage) => void): Promise<GenerateResult>;

  openPackage(name: string, files: InputFile[]): Promise<PackageSummary>;
  openDataset(file: InputFile): Promise<DatasetPreview>;
  tune(opts: TuneOptions, onProgress: ProgressFn): Promise<TuneResult>;
  /** Continues an interrupted run from its last OPFS checkpoint (package and data are read from OPFS). */
  resumeRun(runId: string, onProgress: ProgressFn): Promise<TuneResult>;
  pause(jobId: string): Promise<void>;
  resume(jobId: string): Promise<void>;
  cancel(jobId: string): Promise<void>;
  checkpoint(): Promise<CheckpointInfo | null>;
  discardCheckpoint(runId: string): Promise<void>;
  evaluate(opts: EvalOptions, onProgress: ProgressFn): Promise<EvalReport>;
  exportAdapters(runId: string, format: 'safetensors' | 'peft'): Promise<DownloadFile[]>;

  /** The whole OT protocol for one setting on the open model; task files are matched by name
   *  (*train*, optional *valid*, *test*). Full ZS/Full FT are reused across settings of one task. */
  runProtocol(req: ProtocolRequest, taskFiles: InputFile[], onProgress: ProgressFn): Promise<OTRun>;
  /** This backend's speed on the open model (for the grid's estimate before it runs); cached per model. */
  calibrate(seqLen: number): Promise<Calibration>;
  /** Singular values of the open model's matrices (the spectra of compared runs). */
  modelSpectra(requests: { layer: number; proj: string }[]): Promise<ModelSpectrum[]>;
}

/** What one backend costs on the open model, measured in the worker (src/ui/grid-estimate.ts uses it). */
export interface Calibration {
  model: string;
  backend: string;
  seqLen: number;
  /** Tokens of the timed forward pass. */
  tokens: number;
  /** Seconds per token of one forward pass of the whole model (no gradient). */
  forwardSecPerToken: number;
  /** Seconds of one exact SVD of the model's largest middle-block matrix. */
  svdSecondsPerMatrix: number;
  /** Seconds to load the model's weights (each grid setting does once). */
  loadSeconds: number;
  measuredAt: string;
}

/** Singular values (descending) of one matrix of the open model. */
export interface ModelSpectrum {
  model: string;
  layer: number;
  proj: string;
  sigma: number[];
}

/** Error payloads thrown by the worker carry the file they concern; comlink rethrows them as Error. */
export interface StudioErrorInfo {
  file?: string;
  line?: number;
  message: string;
}

/** Prefix used so the UI can recover the file name from an Error thrown across comlink. */
export function encodeStudioError(e: StudioErrorInfo): string {
  return JSON.stringify({ studioError: e });
}

export function decodeStudioError(err: unknown): StudioErrorInfo {
  const msg = err instanceof Error ? err.message : String(err);
  try {
    const parsed = JSON.parse(msg) as { studioError?: StudioErrorInfo };
    if (parsed && parsed.studioError) return parsed.studioError;
  } catch {
    // not one of ours: plain message
  }
  return { message: msg };
}
