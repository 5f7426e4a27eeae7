/**
 * UI state only (tabs, form settings, toasts, what the worker told us). Models, datasets and tensors live
 * in the studio worker; here we keep the summaries it returned and ids to refer back to them.
 */
import { TUNE_DEFAULTS } from '../jobs/tune-defaults';
import { create } from 'zustand';
import type {
  BackendInfo,
  Capabilities,
  CheckpointInfo,
  CompressMethod,
  CompressResult,
  DatasetPreview,
  EvalReport,
  ModelSummary,
  PackageSummary,
  ProgressEvent,
  TuneResult,
} from '../jobs/studio-api';
import { loraDefaultTargets } from '../jobs/lora-defaults';

export type View = 'model' | 'data' | 'research';

export interface Toast {
  id: number;
  level: 'error' | 'info';
  file?: string;
  line?: number;
  message: string;
}

export interface CompressSettings {
  method: CompressMethod;
  keep: number;
  bottom: number;
  top: number;
  lambdaAttn: number;
  lambdaMlp: number;
  seed: number;
  supportExamples: number;
  supportSeqLen: number;
  supportBatch: number;
  backend: 'auto' | 'cpu';
}

export interface TuneSettings {
  mode: 'full' | 'lora';
  loraRank: number;
  loraAlpha: number;
  loraTargets: string[];
  lr: number;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  seed: number;
  checkpointEvery: number;
  validFraction: number;
}

export interface JobState {
  jobId: string | null;
  running: boolean;
  paused: boolean;
  progress: ProgressEvent | null;
  /** Pause was asked for and the job has not reached the end of its step yet. */
  pausing?: boolean;
  /** How the last run ended, for the status line once it stopped ('cancelled' is a choice, not a failure). */
  ended?: 'done' | 'cancelled' | 'failed' | null;
  /** [step, loss] pairs received so far (training curves). */
  lossCurve: { step: number; loss: number; validLoss?: number }[];
}

const idleJob: JobState = { jobId: null, running: false, paused: false, pausing: false, ended: null, progress: null, lossCurve: [] };

/** Default learning rates per adapter kind (src/jobs/tune-defaults.ts, the CLI's too): LoRA's small low-rank
 *  updates want a much larger step than full adapter blocks. Switching the kind swaps the default unless the
 *  user typed their own. */
export const DEFAULT_LR = { full: TUNE_DEFAULTS.full.lr, lora: TUNE_DEFAULTS.lora.lr } as const;

/** Evaluation example limit by default: a sample large enough to compare settings, small enough to finish in
 *  minutes on a CPU; 0 (= all) is one edit away. */
export const DEFAULT_EVAL_LIMIT = 200;

interface UiState {
  view: View;
  setView(v: View): void;

  backend: BackendInfo | null;
  capabilities: Capabilities | null;
  setBackend(b: BackendInfo): void;
  setCapabilities(c: Capabilities): void;

  toasts: Toast[];
  pushToast(t: Omit<Toast, 'id'>): void;
  dismissToast(id: number): void;

  model: ModelSummary | null;
  modelLoading: string | null;
  setModel(m: ModelSummary | null): void;
  setModelLoading(what: string | null): void;
  support: DatasetPreview | null;
  setSupport(d: DatasetPreview | null): void;
  compress: CompressSettings;
  setCompress(p: Partial<CompressSettings>): void;
  compressJob: JobState;
  setCompressJob(p: Partial<JobState>): void;
  compressResult: CompressResult | null;
  setCompressResult(r: CompressResult | null): void;

  pkg: PackageSummary | null;
  setPkg(p: PackageSummary | null): void;
  dataset: DatasetPreview | null;
  setDataset(d: DatasetPreview | null): void;
  tune: TuneSettings;
  setTune(p: Partial<TuneSettings>): void;
  tuneJob: JobState;
  setTuneJob(p: Partial<JobState>): void;
  tuneRunId: string | null;
  setTuneRunId(id: string | null): void;
  tuneResult: TuneResult | null;
  /** Adapter kind of the finished run (null when unknown, e.g. resumed from a checkpoint). */
  tuneRunMode: 'full' | 'lora' | null;
  setTuneRunMode(m: 'full' | 'lora' | null): void;
  setTuneResult(r: TuneResult | null): void;
  checkpoint: CheckpointInfo | null;
  setCheckpoint(c: CheckpointInfo | null): void;
  evalResult: EvalReport | null;
  setEvalResult(r: EvalReport | null): void;
}

let toastId = 1;

export const useUi = create<UiState>((set) => ({
  view: 'model',
  setView: (view) => set({ view }),

  backend: null,
  capabilities: null,
  setBackend: (backend) => set({ backend }),
  setCapabilities: (capabilities) => set({ capabilities }),

  toasts: [],
  pushToast: (t) => set((s) => ({ toasts: [...s.toasts.slice(-4), { ...t, id: toastId++ }] })),
  dismissToast: (id) => set((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) })),

  model: null,
  modelLoading: null,
  setModel: (model) => set({ model, compressResult: null }),
  setModelLoading: (modelLoading) => set({ modelLoading }),
  support: null,
  setSupport: (support) => set({ support }),
  compress: {
    method: 'gradot',
    keep: 0.3,
    bottom: 2,
    top: 2,
    lambdaAttn: 1,
    lambdaMlp: 1,
    seed: 0,
    supportExamples: 32,
    supportSeqLen: 64,
    supportBatch: 4,
    backend: 'auto',
  },
  setCompress: (p) => set((s) => ({ compress: { ...s.compress, ...p } })),
  compressJob: idleJob,
  setCompressJob: (p) => set((s) => ({ compressJob: { ...s.compressJob, ...p } })),
  compressResult: null,
  setCompressResult: (compressResult) => set({ compressResult }),

  pkg: null,
  // A package of another family brings that family's default LoRA targets (GPT-2: its fused c_attn), the
  // same ones the CLI uses when --lora-targets is not given.
  setPkg: (pkg) => set((s) => (pkg ? { pkg, tune: { ...s.tune, loraTargets: loraDefaultTargets(pkg.family) } } : { pkg })),
  dataset: null,
  setDataset: (dataset) => set({ dataset }),
  tune: {
    mode: 'full',
    loraRank: TUNE_DEFAULTS.lora.rank,
    loraAlpha: 2 * TUNE_DEFAULTS.lora.rank,
    loraTargets: loraDefaultTargets('llama'),
    lr: DEFAULT_LR.full,
    epochs: TUNE_DEFAULTS.full.epochs,
    batchSize: TUNE_DEFAULTS.full.batch,
    gradAccum: 1,
    seqLen: 128,
    seed: 0,
    checkpointEvery: 10,
    validFraction: 0.1,
  },
  setTune: (p) => set((s) => ({ tune: { ...s.tune, ...p } })),
  tuneJob: idleJob,
  setTuneJob: (p) => set((s) => ({ tuneJob: { ...s.tuneJob, ...p } })),
  tuneRunId: null,
  setTuneRunId: (tuneRunId) => set({ tuneRunId }),
  tuneResult: null,
  tuneRunMode: null,
  setTuneRunMode: (tuneRunMode) => set({ tuneRunMode }),
  setTuneResult: (tuneResult) => set({ tuneResult }),
  checkpoint: null,
  setCheckpoint: (checkpoint) => set({ checkpoint }),
  evalResult: null,
  setEvalResult: (evalResult) => set({ evalResult }),
}));
