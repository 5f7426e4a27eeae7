/**
 * The whole offsite-tuning protocol on one machine, for one model, one compression
 * setting and one task:
 *
 *   Full ZS      full model, zero-shot
 *   Emulator ZS  emulator with the original adapters
 *   Emulator FT  emulator with the adapters tuned on it
 *   Plug-in      full model (original middle) with those tuned adapters
 *   Full FT      (optional) the same tuning recipe on the full model, every block trainable
 *   Δ            Plug-in − Emulator FT (the adapters' transfer; larger is better)
 *   hides        Full ZS − Emulator ZS (the model owner's privacy side; larger = the emulator is a poorer
 *                substitute for the model), with the perplexity gap where perplexity is measured
 *   ratio        compression ratio of the middle: original middle params / emulator middle params
 *
 * Scores: multiple-choice tasks by acc (acc_norm alongside); prompt/answer and text tasks by the
 * answer-token (or token) loss, where lower is better — there Δ is taken as Emulator FT loss − Plug-in loss
 * so that "larger is better" holds for Δ in both cases (recorded in `deltaDefinition`).
 *
 * Every claim (Δ > 0, Plug-in > Full ZS, the emulator hides the model) gets a verdict against its paired
 * standard error (verdicts.ts): "yes" only beyond two of them.
 *
 * The emulator comes from an injected `compress` function (the model owner's step), so the protocol runs
 * with any compression, including `none`; `defaultCompress` is the real GradOT/baseline builder.
 */
import type { Backend } from '../../engine/backend';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights, type Decoder } from '../../model/decoder';
import { paramCounts, splitParamCounts } from '../../model/params';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';
import type { Example } from '../../data/batch';
import type { CompressionMethod } from '../emulator/budget';
import type { LambdaMode } from '../emulator/gcs';
import { buildEmulator } from '../emulator/package';
import type { CheckpointStore } from '../../storage';
import { evaluate, headline, type EncodedTask, type EvalMetrics } from './evaluate';
import { applyAdapter, plugIn } from './plugin';
import type { Split } from '../emulator/split';
import type { SupportBatch } from '../emulator/support';
import { tune, type TrainedAdapter, type TuneOptions, type TuneProgress, type TuneResult } from './tune';
import { pairedDifference } from './metrics';
import { headlineClaim, protocolClaims, type Claim } from './verdicts';

export interface ProtocolModel {
  spec: ModelSpec;
  weights: WeightMap;
  modelId: string;
}

export interface CompressRequest {
  method: CompressionMethod;
  keep: number;
  split: Split;
  seed: number;
  backend: Backend;
}

export interface CompressedModel {
  spec: ModelSpec;
  weights: WeightMap;
  /** Whatever the compressor wants on record (emulator.json meta, report). */
  record?: Record<string, unknown>;
}

export type CompressFn = (model: ProtocolModel, req: CompressRequest) => Promise<CompressedModel>;

/** The emulator builder of src/ot/emulator/package.ts (support pass for gradot, then compression). */
export function defaultCompress(
  support: SupportBatch[],
  extra: {
    lambdaAttn?: number;
    lambdaMlp?: number;
    lambdaMode?: LambdaMode;
    /** gradot's layout (variants.ts gradot-paper: scp + uniform); the compressor's defaults when absent. */
    mlp?: 'scp' | 'drd';
    rankAllocation?: 'uniform' | 'global';
  } = {},
): CompressFn {
  return async (model, req) => {
    const r = await buildEmulator(model.spec, model.weights, {
      method: req.method,
      keep: req.keep,
      split: req.split,
      seed: req.seed,
      backend: req.backend,
      support,
      modelId: model.modelId,
      ...extra,
    });
    return { spec: r.result.spec, weights: r.result.weights, record: { emulator: r.report as unknown as Record<string, unknown> } };
  };
}

export type ProtocolPhase = 'full-zs' | 'compress' | 'emulator-zs' | 'tune' | 'emulator-ft' | 'plug-in' | 'full-ft-tune' | 'full-ft';

export interface ProtocolProgress {
  phase: ProtocolPhase;
  /** Set during the two tuning phases. */
  tune?: TuneProgress;
  /** Set when a phase's evaluation finishes. */
  result?: EvalMetrics;
}

export interface ProtocolOptions {
  method: CompressionMethod;
  keep: number;
  split: Split;
  compress: CompressFn;
  task: { name: string; train: readonly Example[]; valid: readonly Example[]; test: EncodedTask };
  /** The tuning recipe (split comes from above). */
  tune: Omit<TuneOptions, 'split' | 'store' | 'signal' | 'pause' | 'onProgress'>;
  fullFT?: boolean;
  backend?: Backend;
  evalBatchSize?: number;
  padId?: number;
  /** Results that do not depend on the emulator, from an earlier run on the same model, task and recipe
   *  (several methods side by side need Full ZS and Full FT once). */
  reuse?: { fullZS?: EvalMetrics; fullFT?: { metrics: EvalMetrics; tune: TuneSummary } };
  /** Checkpoints of the emulator tuning run (resumable). */
  store?: CheckpointStore;
  signal?: AbortSignal;
  onProgress?: (p: ProtocolProgress) => void;
}

export interface TuneSummary {
  method: TuneResult['method'];
  steps: number;
  epochs: number;
  trainLoss: number;
  bestStep: number | null;
  bestValLoss: number | null;
  weightsFrom: TuneResult['weightsFrom'];
  trainableParams: number;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
}

export interface OTReport {
  format: 'gradot-ot-report';
  version: 1;
  model: string;
  task: string;
  taskKind: EncodedTask['kind'];
  method: CompressionMethod;
  /** The named layout of `method` the run was asked for (variants.ts, e.g. 'gradot-paper'); absent = defaults. */
  variant?: string;
  keep: number;
  split: Split;
  metric: 'acc' | 'loss';
  higherIsBetter: boolean;
  fullZS: number;
  emulatorZS: number;
  emulatorFT: number;
  plugIn: number;
  fullFT: number | null;
  delta: number;
  /** Paired standard error of Δ over the test items (multiple choice; null for loss metrics or old reports). */
  deltaStderr?: number | null;
  deltaDefinition: string;
  /** The privacy side: Full ZS − Emulator ZS (acc), or Emulator ZS loss − Full ZS loss; larger = the emulator
   *  hides more of the model. Absent in reports written before it existed. */
  privacyGap?: number;
  /** Paired standard error of privacyGap over the same test items (multiple choice; null for loss metrics). */
  privacyGapStderr?: number | null;
  /** Zero-shot perplexity of the full model and of the emulator, where the task measures perplexity. */
  perplexityGap?: { full: number; emulator: number } | null;
  /** Each claim of the protocol with its paired standard error and verdict (verdicts.ts), on acc and acc_norm
   *  for multiple choice. */
  claims?: Claim[];
  compressionRatio: number;
  params: { full: number; emulator: number; middleFull: number; middleEmulator: number; adapters: number };
  details: { fullZS: EvalMetrics; emulatorZS: EvalMetrics; emulatorFT: EvalMetrics; plugIn: EvalMetrics; fullFT: EvalMetrics | null };
  tune: TuneSummary;
  fullTune: TuneSummary | null;
  tuneOptions: Record<string, unknown>;
  compressRecord?: Record<string, unknown>;
  backend: string;
  seconds: Record<string, number>;
  /** Claims on the headline metric that hold beyond two paired standard errors (false when inside noise or
   *  untested), for a quick read; `claims` has the numbers. */
  checks: { plugInBeatsFullZS: boolean; deltaPositive: boolean; emulatorHides: boolean };
}

function summary(r: TuneResult): TuneSummary {
  return {
    method: r.method,
    steps: r.steps,
    epochs: r.epochs,
    trainLoss: r.trainLoss,
    bestStep: r.bestStep,
    bestValLoss: r.bestValLoss,
    weightsFrom: r.weightsFrom,
    trainableParams: r.trainableParams,
    tokens: r.tokens,
    seconds: r.seconds,
    tokensPerSec: r.tokensPerSec,
  };
}

/** Runs the protocol; `runProtocol` is what the CLI and the studio worker call. */
export async function runProtocol(model: ProtocolModel, o: ProtocolOptions): Promise<OTReport> {
  const be = o.backend ?? new CpuBackend();
  const seconds: Record<string, number> = {};
  const t0 = performance.now();
  const timed = async <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      seconds[key] = (performance.now() - t) / 1000;
    }
  };
  const evalOpts = { batchSize: o.evalBatchSize ?? 8, padId: o.padId, signal: o.signal };
  const ev = async (phase: ProtocolPhase, dec: Decoder): Promise<EvalMetrics> => {
    o.signal?.throwIfAborted();
    const r = await timed(phase, () => evaluate(dec, o.task.test, evalOpts));
    o.onProgress?.({ phase, result: r });
    return r;
  };
  const decs: Decoder[] = [];
  const mk = (spec: ModelSpec, w: WeightMap): Decoder => {
    const d = decoderFromWeights(be, spec, w);
    decs.push(d);
    return d;
  };
  try {
    // 1. Full ZS
    o.onProgress?.({ phase: 'full-zs' });
    let fullZS: EvalMetrics;
    if (o.reuse?.fullZS) {
      fullZS = o.reuse.fullZS;
      o.onProgress?.({ phase: 'full-zs', result: fullZS });
    } else fullZS = await ev('full-zs', mk(model.spec, model.weights));

    // 2. Compress (model owner)
    o.onProgress?.({ phase: 'compress' });
    const emu = await timed('compress', () =>
      o.compress(model, { method: o.method, keep: o.keep, split: o.split, seed: o.tune.seed ?? 0, backend: be }),
    );
    const emuDec = mk(emu.spec, emu.weights);
    const emulatorZS = await ev('emulator-zs', emuDec);

    // 3. Emulator FT (data owner)
    o.onProgress?.({ phase: 'tune' });
    const tuned = await timed('tune', () =>
      tune(
        emuDec,
        { train: o.task.train, valid: o.task.valid },
        {
          ...o.tune,
          split: o.split,
          store: o.store,
          signal: o.signal,
          onProgress: (p) => o.onProgress?.({ phase: 'tune', tune: p }),
        },
      ),
    );
    if (tuned.method === 'lora') await applyAdapter(emuDec, tuned.adapter);
    const emulatorFT = await ev('emulator-ft', emuDec);

    // 4. Plug-in (model owner)
    o.onProgress?.({ phase: 'plug-in' });
    const plugged = await plugIn(model, tuned.adapter, be);
    const plugDec = mk(plugged.spec, plugged.weights);
    const plugInM = await ev('plug-in', plugDec);

    // 5. Full FT (optional): every block trainable, same recipe.
    let fullFT: EvalMetrics | null = null;
    let fullTune: TuneSummary | null = null;
    if (o.fullFT && o.reuse?.fullFT) {
      fullFT = o.reuse.fullFT.metrics;
      fullTune = o.reuse.fullFT.tune;
      o.onProgress?.({ phase: 'full-ft', result: fullFT });
    } else if (o.fullFT) {
      o.onProgress?.({ phase: 'full-ft-tune' });
      const ftDec = mk(model.spec, model.weights);
      const L = model.spec.layers.length;
      const ft = await timed('full-ft-tune', () =>
        tune(
          ftDec,
          { train: o.task.train, valid: o.task.valid },
          {
            ...o.tune,
            split: { bottom: L, top: 0 },
            signal: o.signal,
            onProgress: (p) => o.onProgress?.({ phase: 'full-ft-tune', tune: p }),
          },
        ),
      );
      if (ft.method === 'lora') await applyAdapter(ftDec, ft.adapter);
      fullTune = summary(ft);
      fullFT = await ev('full-ft', ftDec);
    }

    const h = (m: EvalMetrics): number => headline(m).value;
    const { metric, higherIsBetter } = headline(fullZS);
    const delta = higherIsBetter ? h(plugInM) - h(emulatorFT) : h(emulatorFT) - h(plugInM);
    const deltaStderr =
      emulatorFT.correct !== undefined && plugInM.correct !== undefined
        ? pairedDifference(emulatorFT.correct, plugInM.correct).stderr
        : null;
    const fullCounts = paramCounts(model.spec).total;
    const emuCounts = paramCounts(emu.spec).total;
    const midFull = splitParamCounts(model.spec, o.split.bottom, o.split.top).middle;
    const midEmu = splitParamCounts(emu.spec, o.split.bottom, o.split.top).middle;
    seconds.total = (performance.now() - t0) / 1000;
    const claims = protocolClaims({ fullZS, emulatorZS, emulatorFT, plugIn: plugInM });
    const holds = (id: Claim['id']): boolean => headlineClaim(claims, id)?.verdict === 'yes';
    const privacy = headlineClaim(claims, 'emulatorHides');
    const { lora, ...tuneRest } = o.tune;
    return {
      format: 'gradot-ot-report',
      version: 1,
      model: model.modelId,
      task: o.task.name,
      taskKind: o.task.test.kind,
      method: o.method,
      keep: o.keep,
      split: o.split,
      metric,
      higherIsBetter,
      fullZS: h(fullZS),
      emulatorZS: h(emulatorZS),
      emulatorFT: h(emulatorFT),
      plugIn: h(plugInM),
      fullFT: fullFT ? h(fullFT) : null,
      delta,
      deltaStderr,
      privacyGap: higherIsBetter ? h(fullZS) - h(emulatorZS) : h(emulatorZS) - h(fullZS),
      privacyGapStderr: privacy?.stderr ?? null,
      perplexityGap:
        fullZS.perplexity !== undefined && emulatorZS.perplexity !== undefined
          ? { full: fullZS.perplexity, emulator: emulatorZS.perplexity }
          : null,
      claims,
      deltaDefinition: higherIsBetter ? 'Plug-in − Emulator FT (acc)' : 'Emulator FT loss − Plug-in loss (lower loss is better)',
      compressionRatio: midEmu > 0 ? midFull / midEmu : Infinity,
      params: { full: fullCounts, emulator: emuCounts, middleFull: midFull, middleEmulator: midEmu, adapters: tuned.trainableParams },
      details: { fullZS, emulatorZS, emulatorFT, plugIn: plugInM, fullFT },
      tune: summary(tuned),
      fullTune,
      tuneOptions: { ...tuneRest, ...(lora ? { lora } : {}) },
      ...(emu.record ? { compressRecord: emu.record } : {}),
      backend: be.name,
      seconds,
      checks: {
        plugInBeatsFullZS: holds('plugInBeatsFullZS'),
        deltaPositive: holds('deltaPositive'),
        emulatorHides: holds('emulatorHides'),
      },
    };
  } finally {
    for (const d of decs) d.free();
  }
}

export type { TrainedAdapter };
