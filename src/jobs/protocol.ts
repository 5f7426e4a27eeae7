/**
 * The researcher's job: the whole offsite-tuning protocol for one compression setting on one task, and its
 * five-number report (src/ot/offsite/protocol.ts runProtocol). Two steps, so a caller running several
 * settings on one task reads and checks the data once, before any compute:
 *   prepareProtocolData  task files -> training / validation / test examples and the support batches;
 *   runProtocolJob       one setting (method, keep) on prepared data -> OTReport.
 *
 * Support data for gradot's gradient pass: the support file, else the task's train file (the single-machine
 * research setting), as language-modelling text like every emulator build (src/jobs/data.ts).
 */
import type { Backend } from '../engine/backend';
import type { ChoiceExample, Example } from '../data/batch';
import type { TextTokenizer } from '../data/types';
import type { CompressionMethod } from '../ot/emulator/budget';
import type { LambdaMode } from '../ot/emulator/gcs';
import type { Split } from '../ot/emulator/split';
import type { SupportBatch } from '../ot/emulator/support';
import type { EncodedTask, EvalMetrics } from '../ot/offsite/evaluate';
import {
  defaultCompress,
  runProtocol,
  type OTReport,
  type ProtocolModel,
  type ProtocolProgress,
  type TuneSummary,
} from '../ot/offsite/protocol';
import { prepareEval, prepareTraining, type PreparedTraining } from '../ot/offsite/task-data';
import type { CheckpointStore } from '../storage';
import { defaultAddBos, padIdOf, supportBatches, supportChunks, type TaskFile } from './data';
import { withRecipeDefaults, type TuneRecipe } from './tune';
import type { JobControl } from './types';

export interface ProtocolTaskFiles {
  /** The task's name in reports. */
  name: string;
  train: TaskFile;
  valid: TaskFile | null;
  test: TaskFile;
}

export interface ProtocolDataOptions {
  /** Training context (tokens). */
  contextLength: number;
  /** Evaluation context (default: contextLength). */
  evalContextLength?: number;
  /** Held-out share of train when there is no valid file (default 0.05). */
  validFraction?: number;
  /** Seed of that split. */
  seed?: number;
  /** Default: the BOS policy of src/jobs/data.ts. */
  addBos?: boolean;
  /** Only the first N training examples / test questions. */
  limitTrain?: number;
  limitTest?: number;
  /** Support text for gradot (default: the train file); null when no method needs it. */
  support?: TaskFile | null;
  /** Support chunks (default 64) of at most supportSeqLen tokens (default 128, at most the context), batch 8. */
  supportExamples?: number;
  supportSeqLen?: number;
  supportBatch?: number;
  needSupport: boolean;
}

export interface ProtocolData {
  task: { name: string; train: Example[]; valid: Example[]; test: EncodedTask };
  prepared: PreparedTraining;
  support: SupportBatch[];
  /** Where the support text came from (recorded in the report). */
  supportFrom: string;
  padId: number;
}

export function prepareProtocolData(
  files: ProtocolTaskFiles,
  tok: TextTokenizer,
  spec: { family: string; maxPositions: number },
  o: ProtocolDataOptions,
): ProtocolData {
  const addBos = o.addBos ?? defaultAddBos(spec, tok);
  const C = o.contextLength;
  const prepared = prepareTraining(files.train, files.valid, tok, {
    contextLength: C,
    addBos,
    validFraction: o.validFraction ?? 0.05,
    seed: o.seed ?? 0,
  });
  const test = prepareEval(files.test, tok, { contextLength: o.evalContextLength ?? C, addBos });
  if (o.limitTrain !== undefined) prepared.train = prepared.train.slice(0, o.limitTrain);
  if (o.limitTest !== undefined) {
    const lim = o.limitTest;
    test.examples = test.kind === 'mc' ? (test.examples as ChoiceExample[]).filter((e) => e.example < lim) : test.examples.slice(0, lim);
    if (prepared.valid.length > lim) prepared.valid = prepared.valid.slice(0, lim);
  }
  const padId = padIdOf(tok);
  let support: SupportBatch[] = [];
  let supportFrom = 'none (not needed)';
  if (o.needSupport) {
    const sf = o.support ?? files.train;
    supportFrom = o.support ? o.support.name : `${files.train.name} (default)`;
    const chunks = supportChunks(sf, tok, { seqLen: Math.min(C, o.supportSeqLen ?? 128), addBos });
    support = supportBatches(chunks.slice(0, Math.max(1, o.supportExamples ?? 64)), o.supportBatch ?? 8, padId);
  }
  return { task: { name: files.name, train: prepared.train, valid: prepared.valid, test }, prepared, support, supportFrom, padId };
}

export interface ProtocolJobOptions {
  method: CompressionMethod;
  keep: number;
  split: Split;
  lambdaAttn?: number;
  lambdaMlp?: number;
  /** How λ is scaled (gcs.ts LambdaMode); the compressor's default when absent. */
  lambdaMode?: LambdaMode;
  /** gradot's layout (compress.ts CompressOptions); the compressor's defaults when absent. */
  mlp?: 'scp' | 'drd';
  rankAllocation?: 'uniform' | 'global';
  /** The method variant's name (variants.ts), recorded in the report as `variant`. */
  variant?: string;
  /** The tuning recipe (split, padding, store and controls come from the job). */
  tune: TuneRecipe;
  fullFT?: boolean;
  /** Evaluation batch size (default 16). */
  evalBatchSize?: number;
  backend: Backend;
  /** Full ZS / Full FT from an earlier setting on the same model, task and recipe. */
  reuse?: { fullZS?: EvalMetrics; fullFT?: { metrics: EvalMetrics; tune: TuneSummary } };
  store?: CheckpointStore;
}

/** The report plus where its support data came from. */
export type ProtocolJobReport = OTReport & { support: string };

export async function runProtocolJob(
  model: ProtocolModel,
  data: ProtocolData,
  o: ProtocolJobOptions,
  ctl: JobControl<ProtocolProgress> = {},
): Promise<ProtocolJobReport> {
  const compress = defaultCompress(data.support, {
    ...(o.lambdaAttn !== undefined ? { lambdaAttn: o.lambdaAttn } : {}),
    ...(o.lambdaMlp !== undefined ? { lambdaMlp: o.lambdaMlp } : {}),
    ...(o.lambdaMode ? { lambdaMode: o.lambdaMode } : {}),
    ...(o.mlp ? { mlp: o.mlp } : {}),
    ...(o.rankAllocation ? { rankAllocation: o.rankAllocation } : {}),
  });
  const r = await runProtocol(model, {
    method: o.method,
    keep: o.keep,
    split: o.split,
    compress,
    backend: o.backend,
    fullFT: Boolean(o.fullFT),
    padId: data.padId,
    evalBatchSize: o.evalBatchSize ?? 16,
    task: data.task,
    tune: { ...withRecipeDefaults(o.tune), padId: data.padId },
    ...(o.reuse ? { reuse: o.reuse } : {}),
    ...(o.store ? { store: o.store } : {}),
    ...(ctl.signal ? { signal: ctl.signal } : {}),
    ...(ctl.onProgress ? { onProgress: ctl.onProgress } : {}),
  });
  return Object.assign(r, { support: data.supportFrom }, o.variant ? { variant: o.variant } : {});
}

/** What a later setting on the same model, task and recipe can reuse from this report. */
export function reuseFrom(r: OTReport, before: ProtocolJobOptions['reuse'] = {}): NonNullable<ProtocolJobOptions['reuse']> {
  return {
    fullZS: r.details.fullZS,
    ...(r.fullTune && r.details.fullFT
      ? { fullFT: { metrics: r.details.fullFT, tune: r.fullTune } }
      : before.fullFT
        ? { fullFT: before.fullFT }
        : {}),
  };
}
