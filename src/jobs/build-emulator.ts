/**
 * The model owner's job: an emulator package from a full model (support pass -> compression -> package),
 * with its report: parameters, per-block ranks, support loss of both models and, on held-out text, the
 * adapter-gradient shift between them (utility) and both losses (privacy).
 *
 * Held-out text comes from `heldout` (a file), or with 'auto' from the LAST chunks of the support file,
 * which then never enter the support pass (the figure is not measured on the data that chose the
 * compression); 'none' skips it.
 */
import type { Backend } from '../engine/backend';
import type { TextTokenizer } from '../data/types';
import type { Example } from '../data/batch';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { CompressionMethod } from '../ot/emulator/budget';
import type { CompressResult, FactorSpill } from '../ot/emulator/compress';
import type { LambdaMode } from '../ot/emulator/gcs';
import { adapterGradientShift, type GradShiftResult } from '../ot/emulator/gradshift';
import {
  buildEmulator,
  EMULATOR_JSON,
  EMULATOR_WEIGHTS,
  type EmulatorMeta,
  type EmulatorReport,
  type PackageWeights,
} from '../ot/emulator/package';
import type { Decoder } from '../model/decoder';
import type { WriteDType } from '../model/safetensors';
import type { Split } from '../ot/emulator/split';
import { defaultAddBos, padIdOf, supportBatches, supportChunks, type TaskFile } from './data';
import { round, type JobControl } from './types';

export interface BuildEmulatorInput {
  spec: ModelSpec;
  weights: WeightMap;
  /** Recorded in emulator.json and the report. */
  modelId: string;
  /** Needed with a support file. */
  tokenizer: TextTokenizer | null;
  /** Support text: required by gradot (its gradient pass); with other methods it gives the support loss. */
  support: TaskFile | null;
  /** Held-out text for the gradient-shift figure (default 'auto': the support file's last chunks). */
  heldout?: TaskFile | 'auto' | 'none';
  /** Files shipped in the package next to emulator.json (the model's tokenizer files). */
  extraFiles?: Map<string, Uint8Array>;
}

export interface BuildEmulatorOptions {
  method: CompressionMethod;
  keep: number;
  split: Split;
  seed?: number;
  lambdaAttn?: number;
  lambdaMlp?: number;
  lambdaMode?: LambdaMode;
  attnKeep?: number;
  mlp?: 'scp' | 'drd';
  rankAllocation?: 'uniform' | 'global';
  /** Support chunk length in tokens (at most the model's context). */
  seqLen: number;
  /** Support chunks used at most (after any held-out slice is set aside). */
  supportExamples: number;
  /** Chunks per support batch. */
  batch: number;
  /** Held-out batches (of `batch` chunks) at most. */
  heldoutBatches?: number;
  /** Default: the BOS policy of src/jobs/data.ts. */
  addBos?: boolean;
  backend: Backend;
  /** gradot's working-memory budget in bytes beyond the model (package.ts DEFAULT_MEMORY_BUDGET). */
  memoryBudget?: number;
  /** dtype of emulator.safetensors (default: the model's own). */
  dtype?: WriteDType;
  /** gradot: where SVD factors over the budget wait for the build (the CLI: a temporary folder); else recomputed. */
  factorSpill?: FactorSpill;
  /**
   * Leave emulator.safetensors as tensors for a writer that streams it (the CLI): `entries` then holds the
   * emulator's weights in its place and `files` lacks it (package.ts buildEmulator's option of that name).
   */
  streamWeights?: boolean;
}

export type BuildEmulatorPhase = 'support' | 'compress' | 'evaluate' | 'package' | 'heldout';

export interface BuildEmulatorProgress {
  phase: BuildEmulatorPhase;
  /** Support pass: batches done / total, and the last batch's loss. */
  done?: number;
  total?: number;
  loss?: number;
  /** Seconds since the job started. */
  seconds: number;
  /** gradot: matrices (and MLPs) scored so far / to score — SVD + GCS run between the support pass's block groups. */
  scored?: number;
  toScore?: number;
}

/** The build as plain data (the CLI prints it as JSON; the studio shapes its tables from it). */
export interface BuildEmulatorReport {
  model: string;
  method: CompressionMethod;
  keep: number;
  split: Split;
  lambdaAttn: number;
  lambdaMlp: number;
  lambdaMode: LambdaMode;
  attnKeep?: number;
  mlp?: 'scp' | 'drd';
  rankAllocation?: 'uniform' | 'global';
  params: {
    before: number;
    after: number;
    keptFraction: number | null;
    middleBefore: number;
    middleTarget: number;
    middleAfter: number;
    middleKept: number | null;
  };
  layers: EmulatorReport['layers'];
  keptBlocks: number[];
  support: { file: string | null; batches: number; batch: number; seq: number; tokens: number | null; digest: string | null };
  supportLoss: { full: number | null; emulator: number | null };
  heldout: {
    from: string;
    batches?: number;
    tokens?: number;
    adapterParams?: number;
    gradShift?: number | null;
    perBatch?: (number | null)[];
    fullLoss?: number | null;
    emulatorLoss?: number | null;
  };
  seconds: Record<string, number | null>;
  readings: Record<string, string>;
  notes: string[];
}

export interface BuildEmulatorOutput {
  /** The package: emulator.json, emulator.safetensors (not with `streamWeights`), then the extra files. */
  files: Map<string, Uint8Array>;
  /**
   * The package in writing order, emulator.safetensors as bytes or (with `streamWeights`) as tensors still:
   * emulator.json, emulator.safetensors, then the extra files.
   */
  entries: [string, Uint8Array | PackageWeights][];
  meta: EmulatorMeta;
  report: BuildEmulatorReport;
  /** The compressor's full record (ranks, kept components, scores) and the emulator's weights. */
  result: CompressResult;
  heldout: GradShiftResult | null;
  /** Things the caller should tell the user (e.g. no held-out slice possible). */
  warnings: string[];
}

export async function buildEmulatorJob(
  input: BuildEmulatorInput,
  o: BuildEmulatorOptions,
  ctl: JobControl<BuildEmulatorProgress> = {},
): Promise<BuildEmulatorOutput> {
  const t0 = performance.now();
  const at = (): number => (performance.now() - t0) / 1000;
  const { spec } = input;
  if (o.method === 'gradot' && !input.support) throw new Error('gradot needs support data for its gradient pass');
  const tok = input.tokenizer;
  if (input.support && !tok) throw new Error("support data needs the model's tokenizer");
  const seq = Math.max(2, Math.min(spec.maxPositions, o.seqLen));
  const addBos = o.addBos ?? (tok ? defaultAddBos(spec, tok) : false);
  const padId = tok ? padIdOf(tok) : 0;
  const heldoutBatches = o.heldoutBatches ?? 4;
  const warnings: string[] = [];

  // Data: support chunks, and held-out ones from a file or from the end of the support file.
  const supportEx = input.support ? supportChunks(input.support, tok!, { seqLen: seq, addBos }) : [];
  const heldoutArg = input.heldout ?? 'auto';
  let sup = supportEx;
  let heldEx: Example[] = [];
  let heldoutFrom: string;
  if (typeof heldoutArg === 'object') {
    heldEx = supportChunks(heldoutArg, tok!, { seqLen: seq, addBos }).slice(0, heldoutBatches * o.batch);
    heldoutFrom = heldoutArg.name;
  } else if (heldoutArg === 'none' || !input.support) {
    heldoutFrom = 'none';
  } else if (supportEx.length >= 2) {
    const n = Math.max(1, Math.min(heldoutBatches * o.batch, Math.floor(supportEx.length / 2)));
    heldEx = supportEx.slice(supportEx.length - n);
    sup = supportEx.slice(0, supportEx.length - n);
    heldoutFrom = `${input.support.name} (last ${n} of ${supportEx.length} chunks, held out of the support pass)`;
  } else {
    heldoutFrom = 'none (the support file has one chunk; pass a held-out file)';
    warnings.push('support file too short to hold a slice out; no gradient-shift figure');
  }
  const support = supportBatches(sup.slice(0, Math.max(1, o.supportExamples)), o.batch, padId);
  const heldout = heldEx.length > 0 ? supportBatches(heldEx, o.batch, padId) : [];

  let held = null as GradShiftResult | null; // set by the beforePackage hook
  let heldoutSeconds = 0;
  let lastLoss: number | undefined;
  let supportUnits: { done?: number; total?: number } = {};
  let scoring: { scored?: number; toScore?: number } = {};
  const built = await buildEmulator(spec, input.weights, {
    method: o.method,
    keep: o.keep,
    split: o.split,
    backend: o.backend,
    support,
    modelId: input.modelId,
    seed: o.seed ?? 0,
    ...(o.lambdaAttn !== undefined ? { lambdaAttn: o.lambdaAttn } : {}),
    ...(o.lambdaMlp !== undefined ? { lambdaMlp: o.lambdaMlp } : {}),
    ...(o.lambdaMode ? { lambdaMode: o.lambdaMode } : {}),
    ...(o.attnKeep !== undefined ? { attnKeep: o.attnKeep } : {}),
    ...(o.mlp ? { mlp: o.mlp } : {}),
    ...(o.rankAllocation ? { rankAllocation: o.rankAllocation } : {}),
    ...(ctl.signal ? { signal: ctl.signal } : {}),
    ...(ctl.pause ? { pause: ctl.pause } : {}),
    ...(o.memoryBudget !== undefined ? { memoryBudget: o.memoryBudget } : {}),
    ...(o.dtype ? { dtype: o.dtype } : {}),
    ...(o.factorSpill ? { factorSpill: o.factorSpill } : {}),
    ...(o.streamWeights ? { streamWeights: true } : {}),
    // The held-out figure runs before the package is serialized (its bytes would add a copy of the emulator
    // to this phase's peak), on the decoders the build already holds.
    ...(heldout.length > 0
      ? {
          beforePackage: async (full: Decoder, emu: Decoder) => {
            ctl.onProgress?.({ phase: 'heldout', done: 0, total: heldout.length, seconds: at() });
            const th = performance.now();
            held = await adapterGradientShift(full, emu, heldout, o.split, (done, total) =>
              ctl.onProgress?.({ phase: 'heldout', done, total, seconds: at() }),
            );
            heldoutSeconds = (performance.now() - th) / 1000;
          },
        }
      : {}),
    onProgress: (phase) => ctl.onProgress?.({ phase, ...(phase === 'support' ? { done: 0, total: support.length } : {}), seconds: at() }),
    // Support progress counts batches through the first sweep and each block group (supportPass units).
    onSupportBatch: (_i, loss) => {
      lastLoss = loss;
    },
    onWork: (phase, done, total) => {
      if (phase === 'support') supportUnits = { done, total };
      if (phase === 'scoring') scoring = { scored: done, toScore: total };
      if (phase === 'evaluate' || phase === 'compress') ctl.onProgress?.({ phase, done, total, seconds: at() });
      else
        ctl.onProgress?.({
          phase: 'support',
          ...supportUnits,
          ...(lastLoss !== undefined ? { loss: lastLoss } : {}),
          ...scoring,
          seconds: at(),
        });
    },
  });

  const files = new Map(built.files);
  for (const [k, v] of input.extraFiles ?? []) files.set(k, v);
  const entries: [string, Uint8Array | PackageWeights][] = [...files];
  if (built.weights) entries.splice(entries.findIndex(([k]) => k === EMULATOR_JSON) + 1, 0, [EMULATOR_WEIGHTS, built.weights]);
  const r = built.report;
  const p = r.params;
  const report: BuildEmulatorReport = {
    model: input.modelId,
    method: o.method,
    keep: o.keep,
    split: o.split,
    lambdaAttn: r.lambdaAttn,
    lambdaMlp: r.lambdaMlp,
    lambdaMode: built.result.lambdaMode,
    ...(o.attnKeep !== undefined ? { attnKeep: o.attnKeep } : {}),
    ...(o.mlp ? { mlp: o.mlp } : {}),
    ...(o.rankAllocation ? { rankAllocation: o.rankAllocation } : {}),
    params: {
      before: p.before,
      after: p.after,
      keptFraction: round(p.after / p.before, 6),
      middleBefore: p.middleBefore,
      middleTarget: p.middleTarget,
      middleAfter: p.middleAfter,
      middleKept: round(p.middleKept, 6),
    },
    layers: r.layers,
    keptBlocks: built.result.plan.keptBlocks,
    support: {
      file: input.support?.name ?? null,
      batches: support.length,
      batch: o.batch,
      seq,
      tokens: built.meta.support?.tokens ?? null,
      digest: built.meta.support?.digest ?? null,
    },
    supportLoss: { full: round(r.supportLoss.full, 6), emulator: round(r.supportLoss.emulator, 6) },
    heldout: held
      ? {
          from: heldoutFrom,
          batches: heldout.length,
          tokens: held.tokens,
          adapterParams: held.adapterParams,
          gradShift: round(held.cosineDistance, 6),
          perBatch: held.perBatch.map((x) => round(x, 6)),
          fullLoss: round(held.fullLoss, 6),
          emulatorLoss: round(held.emulatorLoss, 6),
        }
      : { from: heldoutFrom },
    seconds: { ...Object.fromEntries(Object.entries(r.seconds).map(([k, v]) => [k, round(v, 4)])), heldout: round(heldoutSeconds, 4) },
    readings: r.readings,
    notes: built.result.plan.notes,
  };
  return { files, entries, meta: built.meta, report, result: built.result, heldout: held, warnings };
}
