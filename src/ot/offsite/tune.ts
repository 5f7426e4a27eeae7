/**
 * Offsite adapter tuning (OT §3.1): on an emulator (or any decoder), train only the adapter blocks — the
 * full blocks [0, l) and [L − r, L), as OT does — or LoRA pairs on their linears; everything else frozen.
 *
 * Training follows Hugging Face Trainer's conventions so numbers compare with PyTorch fine-tunes:
 * - loss: token-mean cross-entropy over the targets an example marks (answer tokens for prompt/answer data,
 *   every token for text); with gradient accumulation the mean is over ALL targets of the accumulated
 *   micro-batches (each micro-batch's summed loss is divided by the group's token count, known up front);
 * - AdamW with HF's decay rule (no decay on biases and norm weights), global-norm clipping (torch's
 *   coefficient), constant/linear/cosine schedule with linear warm-up (lr 0 at step 0 when warming up);
 * - the checkpoint kept is the one with the best validation loss (OT keeps the best emulator validation
 *   perplexity: same ordering), evaluated every `evalEvery` optimizer steps and at the end.
 *
 * Determinism and resume: the only randomness is the data order, a function of (seed, epoch) (src/data),
 * and LoRA's A initialisation (seed; saved in every checkpoint). A checkpoint holds the trainable tensors,
 * AdamW's m, v and per-parameter step counts, the optimizer step, the best-so-far and the history, so a run
 * resumed from any checkpoint replays exactly the remaining steps and ends with bit-identical weights.
 * A run commits `done` only after its last step; a store without `done` is an unfinished run, and asking
 * to tune into a finished store returns the finished result without training.
 */
import type { Backend, FloatArray } from '../../engine/backend';
import * as ops from '../../engine/ops';
import { AdamW, clipScale, globalGradNorm, lrAt, type AdamWState, type NamedParam, type ScheduleKind } from '../../engine/optim';
import { Tensor, backward, noGrad, tidy } from '../../engine/tensor';
import type { Decoder } from '../../model/decoder';
import type { WeightMap } from '../../model/weights';
import { makeBatches, type Batch, type Example } from '../../data/batch';
import type { CheckpointStore, JsonValue } from '../../storage';
import { LoraAdapter, type LoraConfig, checkLoraConfig } from './lora';
import { targetLogits } from './target-logits';
import { NonFiniteError } from '../../faults/errors';
import { adapterBlocks, inBlocks, type Split } from '../emulator/split';
import { packTensors, unpackTensors, type PackedTensor } from './tensor-pack';

export type TuneMethod = 'adapter' | 'lora';

export interface TuneProgress {
  phase: 'train' | 'eval' | 'done';
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  epoch: number;
  /** Token-mean training loss of the last step. */
  loss: number;
  lr: number;
  gradNorm: number;
  /** Input tokens (non-padding) per second over this session. */
  tokensPerSec: number;
  etaSeconds: number;
  valLoss?: number;
  bestValLoss?: number;
}

/** Something that can hold a run between steps (the UI's pause button). */
export interface PauseSignal {
  readonly paused: boolean;
  /** Resolves when not paused (immediately if running). */
  wait(): Promise<void>;
}

export class PauseController implements PauseSignal {
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;
  get paused(): boolean {
    return this.gate !== null;
  }
  pause(): void {
    if (this.gate) return;
    this.gate = new Promise((r) => (this.open = r));
  }
  resume(): void {
    const o = this.open;
    this.gate = null;
    this.open = null;
    o?.();
  }
  wait(): Promise<void> {
    return this.gate ?? Promise.resolve();
  }
}

export interface TuneOptions {
  split: Split;
  /** 'adapter' (default): the adapter blocks in full, as OT. 'lora': LoRA on their linears. */
  method?: TuneMethod;
  lora?: LoraConfig;
  lr: number;
  /** Default 0 (OT's scripts). */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global-norm clipping; default 1.0 (OT), null to disable. */
  maxGradNorm?: number | null;
  /** Default 'linear' (OT). */
  schedule?: ScheduleKind;
  warmupSteps?: number;
  /** Warm-up as a fraction of total steps (used when warmupSteps is absent). */
  warmupRatio?: number;
  /** Epochs over the training examples (default 1) unless maxSteps is given. */
  epochs?: number;
  maxSteps?: number;
  batchSize: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  seed?: number;
  padId?: number;
  /** Validate every this many optimizer steps (default: at the end of every epoch). */
  evalEvery?: number;
  evalBatchSize?: number;
  /** Commit a resumable checkpoint every this many steps (default: at each validation, else each epoch). */
  checkpointEvery?: number;
  /** Load the best-validation weights at the end (default true when there is validation data). */
  restoreBest?: boolean;
  store?: CheckpointStore;
  signal?: AbortSignal;
  pause?: PauseSignal;
  onProgress?: (p: TuneProgress) => void;
}

export interface TuneData {
  train: readonly Example[];
  valid?: readonly Example[] | null;
}

export interface HistoryEntry {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  valLoss?: number;
}

/** A trained adapter on the host: what plug-in and export consume. */
export interface TrainedAdapter {
  method: TuneMethod;
  split: Split;
  /** Blocks of the tuned model that are adapters (its own indices) and their source blocks. */
  blocks: number[];
  blockSources: number[];
  /** Block count of the tuned model. */
  numLayers: number;
  /** adapter: the adapter blocks' tensors (canonical names, tuned-model indices); lora: lora_A / lora_B. */
  weights: WeightMap;
  lora?: LoraConfig;
}

export interface TuneResult {
  method: TuneMethod;
  steps: number;
  totalSteps: number;
  epochs: number;
  trainLoss: number;
  bestStep: number | null;
  bestValLoss: number | null;
  /** Which weights the returned adapter holds. */
  weightsFrom: 'best' | 'final';
  history: HistoryEntry[];
  trainableParams: number;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
  /** Step the run resumed from (0 for a fresh run), or 'done' when the store already held a finished run. */
  resumedFrom: number | 'done';
  /** What the checkpoint store did that the user should know: a damaged newest checkpoint skipped, leftovers collected. */
  notes?: string[];
  adapter: TrainedAdapter;
}

const STATE_VERSION = 1;

interface SavedState {
  version: number;
  fingerprint: string;
  step: number;
  bestStep: number | null;
  bestValLoss: number | null;
  history: HistoryEntry[];
  optSteps: Record<string, number>;
  tokens: number;
}

/** FNV-1a over the examples' ids and targets: resuming with other data is refused. */
export function examplesDigest(examples: readonly Example[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number): void => {
    h ^= x & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 8) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 16) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 24) & 0xff;
    h = Math.imul(h, 0x01000193);
  };
  for (const e of examples) {
    mix(e.ids.length);
    for (const t of e.ids) mix(t);
    for (const t of e.targets) mix(t);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** One trip through the event loop: in a worker, a cancel or pause message (comlink) is only delivered
 *  between macrotasks, and a loop of resolved promises never yields one. Used only when a job can be
 *  controlled (a signal or pauser was given). */
const nextMacrotask = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

function toF32(a: FloatArray): Float32Array {
  return a instanceof Float32Array ? a.slice() : Float32Array.from(a);
}

function setData(t: Tensor, data: ArrayLike<number>): void {
  if (data.length !== t.size) throw new Error(`checkpoint: ${t.name ?? 'tensor'} has ${data.length} values, expected ${t.size}`);
  const be = t.backend;
  const s = be.fromArray(data);
  be.free(t.storage);
  t.storage = s;
}

/** Token-mean cross-entropy of `dec` (LoRA attached when given) over examples; no graph. */
export async function meanLoss(
  dec: Decoder,
  examples: readonly Example[],
  o: { batchSize: number; padId?: number; lora?: LoraAdapter | null },
): Promise<{ loss: number; tokens: number }> {
  const batches = makeBatches(examples, { batchSize: o.batchSize, padId: o.padId, sortByLength: true });
  let s = 0;
  let n = 0;
  for (const b of batches) {
    if (b.targetTokens === 0) continue;
    // The scope frees the forward's activations (and LoRA's B·A products): only the loss outlives it.
    const l = tidy(() =>
      noGrad(() => {
        const run = (): Tensor => {
          const tl = targetLogits(dec, b.ids, b.targets, b.batchSize, b.seqLen);
          return ops.crossEntropySum(tl.logits, tl.targets);
        };
        return o.lora ? o.lora.with(dec, run) : run();
      }),
    );
    s += await l.item();
    l.free();
    n += b.targetTokens;
  }
  return { loss: n > 0 ? s / n : NaN, tokens: n };
}

function nonFiniteStop(what: string, value: number, step: number, kept: string): NonFiniteError {
  const where =
    what === 'validation loss'
      ? `of the weights after step ${step}; training stopped and those weights were not saved`
      : `at step ${step}; training stopped before applying it`;
  return new NonFiniteError(
    what,
    `tune: the ${what} is ${value} ${where} (the learning rate may be too high, or the data or weights hold extreme values); ${kept}`,
  );
}

function realTokens(b: Batch, train: readonly Example[]): number {
  let n = 0;
  for (const i of b.indices) n += train[i]!.ids.length;
  return n;
}

/**
 * Tunes `model` in place (adapter method) or a LoRA adapter on it (lora method) and returns the trained
 * adapter. The model's parameters end with requiresGrad false.
 */
export async function tune(model: Decoder, data: TuneData, opts: TuneOptions): Promise<TuneResult> {
  const method = opts.method ?? 'adapter';
  if (method === 'lora') {
    if (!opts.lora) throw new Error("tune: method 'lora' needs a LoRA config");
    checkLoraConfig(opts.lora);
  }
  if (!(opts.lr > 0)) throw new RangeError(`tune: learning rate must be positive, got ${opts.lr}`);
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw new RangeError(`tune: batch size must be a positive integer`);
  const accum = opts.gradAccum ?? 1;
  if (!(Number.isInteger(accum) && accum >= 1)) throw new RangeError('tune: gradAccum must be a positive integer');
  if (data.train.length === 0) throw new Error('tune: no training examples');
  if (opts.evalEvery !== undefined && !(Number.isInteger(opts.evalEvery) && opts.evalEvery >= 1)) {
    throw new RangeError(`tune: evalEvery must be a positive number of steps, got ${opts.evalEvery}`);
  }
  if (opts.checkpointEvery !== undefined && !(Number.isInteger(opts.checkpointEvery) && opts.checkpointEvery >= 1)) {
    throw new RangeError(`tune: checkpointEvery must be a positive number of steps, got ${opts.checkpointEvery}`);
  }
  const blocks = adapterBlocks(model.spec, opts.split);
  const seed = opts.seed ?? 0;
  const padId = opts.padId ?? 0;
  const valid = data.valid && data.valid.length > 0 ? data.valid : null;
  const be: Backend = model.backend;

  const batchesPerEpoch = Math.ceil(data.train.length / opts.batchSize);
  const stepsPerEpoch = Math.ceil(batchesPerEpoch / accum);
  const epochs = opts.epochs ?? 1;
  const totalSteps = opts.maxSteps ?? Math.ceil(epochs * stepsPerEpoch);
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) throw new RangeError(`tune: ${totalSteps} total steps`);
  const warmup = opts.warmupSteps ?? Math.round((opts.warmupRatio ?? 0) * totalSteps);
  const schedule = { kind: opts.schedule ?? 'linear', lr: opts.lr, warmupSteps: warmup, totalSteps } as const;
  const evalEvery = opts.evalEvery ?? stepsPerEpoch;
  const ckptEvery = opts.checkpointEvery ?? (valid ? evalEvery : stepsPerEpoch);
  const restoreBest = opts.restoreBest ?? valid !== null;
  const maxNorm = opts.maxGradNorm === undefined ? 1.0 : opts.maxGradNorm;

  const fingerprint = JSON.stringify({
    v: STATE_VERSION,
    method,
    lora: opts.lora ?? null,
    split: opts.split,
    lr: opts.lr,
    wd: opts.weightDecay ?? 0,
    b1: opts.beta1 ?? 0.9,
    b2: opts.beta2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
    maxNorm,
    schedule,
    batch: opts.batchSize,
    accum,
    seed,
    padId,
    evalEvery,
    layers: model.spec.layers.length,
    train: examplesDigest(data.train),
    valid: valid ? examplesDigest(valid) : null,
  });

  // ---- trainable set
  let lora: LoraAdapter | null = null;
  let params: NamedParam[];
  if (method === 'lora') {
    model.setTrainable(() => false);
    lora = LoraAdapter.create(be, model.spec, blocks, opts.lora!, seed);
    params = lora.namedParams();
  } else {
    model.setTrainable((n) => inBlocks(n, blocks));
    params = model.namedParams(true);
  }
  const trainableParams = params.reduce((s, p) => s + p.tensor.size, 0);
  const opt = new AdamW(params, {
    lr: opts.lr,
    beta1: opts.beta1,
    beta2: opts.beta2,
    eps: opts.eps,
    weightDecay: opts.weightDecay ?? 0,
  });

  const packParams = async (): Promise<Uint8Array> => {
    const list: [string, PackedTensor][] = [];
    for (const p of params) list.push([`p:${p.name}`, { shape: p.tensor.shape, data: await p.tensor.read() }]);
    return packTensors(list);
  };
  const loadParams = (packed: Map<string, PackedTensor>): void => {
    for (const p of params) {
      const t = packed.get(`p:${p.name}`);
      if (!t) throw new Error(`checkpoint: missing ${p.name}`);
      setData(p.tensor, t.data);
    }
  };

  const hostAdapter = async (): Promise<TrainedAdapter> => {
    const weights: WeightMap = new Map();
    for (const p of params) {
      weights.set(p.name, { dtype: 'F32', shape: [...p.tensor.shape], data: toF32(await p.tensor.read()) });
    }
    return {
      method,
      split: { ...opts.split },
      blocks,
      blockSources: blocks.map((b) => model.spec.layers[b]!.source),
      numLayers: model.spec.layers.length,
      weights,
      ...(lora ? { lora: { ...opts.lora!, dropout: 0 } } : {}),
    };
  };

  const finish = (): void => {
    model.setTrainable(() => false);
  };

  // ---- state, possibly resumed
  let step = 0;
  let bestStep: number | null = null;
  let bestValLoss: number | null = null;
  let history: HistoryEntry[] = [];
  let tokens = 0;
  let resumedFrom: number | 'done' = 0;
  const store = opts.store;
  const notes: string[] = [];
  if (store) {
    // Temp files of interrupted writes and generations no manifest references: collected, and said.
    const collected = await store.gc();
    if (collected.length) notes.push(`removed ${collected.length} leftover file(s) of an interrupted checkpoint write`);
    const ids = new Set((await store.checkpoints()).map((e) => e.id));
    if (ids.has('done')) {
      const done = await store.load('done');
      const saved = JSON.parse(new TextDecoder().decode(done.files['result.json']!)) as Omit<TuneResult, 'adapter'> & {
        fingerprint: string;
      };
      if (saved.fingerprint !== fingerprint) {
        throw new Error('tune: the checkpoint folder holds a finished run with different settings or data; use a new folder');
      }
      loadParams(unpackTensors(done.files['final.bin']!, 'final.bin'));
      finish();
      const { fingerprint: _f, ...rest } = saved;
      void _f;
      const adapter = await hostAdapter();
      lora?.free();
      return { ...rest, resumedFrom: 'done', ...(notes.length ? { notes } : {}), adapter };
    }
    if (ids.has('last')) {
      const last = await store.load('last');
      if (last.fallback) notes.push(`${last.fallback}: resuming from its step`);
      const st = JSON.parse(new TextDecoder().decode(last.files['state.json']!)) as SavedState;
      if (st.version !== STATE_VERSION || st.fingerprint !== fingerprint) {
        throw new Error(
          'tune: the checkpoint folder holds a run with different settings or data; resume with the same ones or use a new folder',
        );
      }
      const packed = unpackTensors(last.files['tensors.bin']!, 'tensors.bin');
      loadParams(packed);
      const optState: AdamWState = {
        lr: opts.lr,
        params: params.map((p) => ({
          name: p.name,
          step: st.optSteps[p.name] ?? 0,
          m: packed.get(`m:${p.name}`)!.data,
          v: packed.get(`v:${p.name}`)!.data,
        })),
      };
      opt.importState(optState);
      step = st.step;
      bestStep = st.bestStep;
      bestValLoss = st.bestValLoss;
      history = st.history;
      tokens = st.tokens;
      resumedFrom = step;
    }
  }

  const saveLast = async (): Promise<void> => {
    if (!store) return;
    const os = await opt.exportState();
    const list: [string, PackedTensor][] = [];
    const optSteps: Record<string, number> = {};
    for (const p of params) list.push([`p:${p.name}`, { shape: p.tensor.shape, data: await p.tensor.read() }]);
    for (const s of os.params) {
      const shape = params.find((p) => p.name === s.name)!.tensor.shape;
      list.push([`m:${s.name}`, { shape, data: s.m }], [`v:${s.name}`, { shape, data: s.v }]);
      optSteps[s.name] = s.step;
    }
    const st: SavedState = { version: STATE_VERSION, fingerprint, step, bestStep, bestValLoss, history, optSteps, tokens };
    await store.commit(
      'last',
      {
        'state.json': new TextEncoder().encode(JSON.stringify(st)),
        'tensors.bin': packTensors(list),
      },
      { step, totalSteps } as JsonValue,
      { keepPrevious: true },
    ); // a damaged newest generation falls back to this one
  };

  // ---- loop
  const t0 = performance.now();
  let sessionTokens = 0;
  const startStep = step;
  let epochCache: { epoch: number; batches: Batch[] } | null = null;
  const batchesOf = (epoch: number): Batch[] => {
    if (epochCache?.epoch !== epoch) {
      epochCache = { epoch, batches: makeBatches(data.train, { batchSize: opts.batchSize, padId, shuffle: true, seed, epoch }) };
    }
    return epochCache.batches;
  };
  // Best weights when there is no store to commit them to.
  let bestSnapshot: Uint8Array | null = null;
  let lastLoss = history.length ? history[history.length - 1]!.loss : NaN;

  /** What a stopped run keeps, for its error message. */
  const keptNote = async (): Promise<string> => {
    if (bestStep !== null && bestValLoss !== null) {
      return store
        ? `the best checkpoint (step ${bestStep}, validation loss ${bestValLoss.toFixed(4)}) is kept as best in the checkpoint folder`
        : `the best weights so far were from step ${bestStep} (validation loss ${bestValLoss.toFixed(4)})`;
    }
    const last = store ? (await store.checkpoints()).find((e) => e.id === 'last') : undefined;
    if (last)
      return `the last finite checkpoint (step ${(last.meta as { step?: number } | null)?.step ?? '?'}) is kept in the checkpoint folder`;
    return 'no finite checkpoint was made before it';
  };

  const validate = async (): Promise<number> => {
    const { loss } = await meanLoss(model, valid!, { batchSize: opts.evalBatchSize ?? opts.batchSize, padId, lora });
    return loss;
  };

  try {
    while (step < totalSteps) {
      if (opts.signal || opts.pause) await nextMacrotask();
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (opts.pause?.paused) {
        await saveLast();
        await opts.pause.wait();
        if (opts.signal?.aborted) throw abortError(opts.signal);
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      const g = step % stepsPerEpoch;
      const all = batchesOf(epoch);
      const group = all.slice(g * accum, Math.min((g + 1) * accum, all.length));
      const groupTokens = group.reduce((s, b) => s + b.targetTokens, 0);
      let lossSum = 0;
      for (const b of group) {
        if (b.targetTokens === 0) continue;
        // Release frees the graph's activations as backward passes them (LoRA's effective weights
        // included: restore frees them through the engine, so a second free is a no-op); the scope frees
        // what the graph never touches (frozen bottom layers' internals). Only the loss outlives it.
        const l = tidy(() => {
          const restore = lora ? lora.attach(model) : null;
          try {
            const tl = targetLogits(model, b.ids, b.targets, b.batchSize, b.seqLen);
            const loss = ops.scale(ops.crossEntropySum(tl.logits, tl.targets), 1 / groupTokens);
            backward(loss, { release: true });
            return loss;
          } finally {
            restore?.();
          }
        });
        lossSum += await l.item();
        l.free();
        const n = realTokens(b, data.train);
        tokens += n;
        sessionTokens += n;
      }
      const norm = await globalGradNorm(params);
      // First non-finite loss or gradient: stop BEFORE the update, so no NaN reaches the weights, the
      // optimizer state or any checkpoint (the 'best' and 'last' already committed stay as they are).
      if (!Number.isFinite(lossSum) || !Number.isFinite(norm)) {
        throw nonFiniteStop(
          !Number.isFinite(lossSum) ? 'training loss' : 'gradient norm',
          !Number.isFinite(lossSum) ? lossSum : norm,
          step + 1,
          await keptNote(),
        );
      }
      const lr = lrAt(step, schedule);
      opt.step({ lr, gradScale: maxNorm === null ? 1 : clipScale(norm, maxNorm) });
      opt.zeroGrad();
      step++;
      lastLoss = groupTokens > 0 ? lossSum : NaN;
      const entry: HistoryEntry = { step, epoch, loss: lastLoss, lr, gradNorm: norm };
      history.push(entry);

      const elapsed = (performance.now() - t0) / 1000;
      const perStep = elapsed / Math.max(1, step - startStep);
      const progress = (): TuneProgress => ({
        phase: 'train',
        step,
        totalSteps,
        epoch,
        loss: lastLoss,
        lr,
        gradNorm: norm,
        tokensPerSec: elapsed > 0 ? sessionTokens / elapsed : 0,
        etaSeconds: perStep * (totalSteps - step),
        ...(entry.valLoss !== undefined ? { valLoss: entry.valLoss } : {}),
        ...(bestValLoss !== null ? { bestValLoss } : {}),
      });
      if (valid && (step % evalEvery === 0 || step === totalSteps)) {
        const vl = await validate();
        if (!Number.isFinite(vl)) throw nonFiniteStop('validation loss', vl, step, await keptNote());
        entry.valLoss = vl;
        if (bestValLoss === null || vl < bestValLoss) {
          bestValLoss = vl;
          bestStep = step;
          if (store) await store.commit('best', { 'tensors.bin': await packParams() }, { step, valLoss: vl });
          else bestSnapshot = await packParams();
        }
        opts.onProgress?.({ ...progress(), phase: 'eval', valLoss: vl, bestValLoss: bestValLoss ?? vl });
      }
      if (step % ckptEvery === 0 && step < totalSteps) await saveLast();
      opts.onProgress?.(progress());
    }

    let weightsFrom: 'best' | 'final' = 'final';
    if (restoreBest && bestStep !== null && bestStep !== step) {
      const bytes = store ? (await store.load('best')).files['tensors.bin']! : bestSnapshot!;
      loadParams(unpackTensors(bytes, 'best'));
      weightsFrom = 'best';
    } else if (restoreBest && bestStep === step) {
      weightsFrom = 'best';
    }
    const seconds = (performance.now() - t0) / 1000;
    const resultCore: Omit<TuneResult, 'adapter' | 'resumedFrom'> = {
      method,
      steps: step,
      totalSteps,
      epochs: step / stepsPerEpoch,
      trainLoss: lastLoss,
      bestStep,
      bestValLoss,
      weightsFrom,
      history,
      trainableParams,
      tokens,
      seconds,
      tokensPerSec: seconds > 0 ? sessionTokens / seconds : 0,
    };
    if (store) {
      await store.commit(
        'done',
        {
          'result.json': new TextEncoder().encode(JSON.stringify({ ...resultCore, fingerprint })),
          'final.bin': await packParams(),
        },
        { step, weightsFrom },
      );
    }
    opts.onProgress?.({
      phase: 'done',
      step,
      totalSteps,
      epoch: Math.floor((step - 1) / stepsPerEpoch),
      loss: lastLoss,
      lr: lrAt(step - 1, schedule),
      gradNorm: 0,
      tokensPerSec: resultCore.tokensPerSec,
      etaSeconds: 0,
      ...(bestValLoss !== null ? { bestValLoss } : {}),
    });
    const adapter = await hostAdapter();
    return { ...resultCore, resumedFrom, ...(notes.length ? { notes } : {}), adapter };
  } catch (e) {
    // A cancelled run hands back what it trained: the adapter after its last finished step, on the error
    // (`partial`), so a cancel never loses finished work. Steps end whole before the abort is checked.
    if (opts.signal?.aborted && step > 0 && e !== null && typeof e === 'object') {
      const seconds = (performance.now() - t0) / 1000;
      const partial: TuneResult = {
        method,
        steps: step,
        totalSteps,
        epochs: step / stepsPerEpoch,
        trainLoss: lastLoss,
        bestStep,
        bestValLoss,
        weightsFrom: 'final',
        history,
        trainableParams,
        tokens,
        seconds,
        tokensPerSec: seconds > 0 ? sessionTokens / seconds : 0,
        resumedFrom,
        adapter: await hostAdapter(),
      };
      (e as { partial?: TuneResult }).partial = partial;
    }
    throw e;
  } finally {
    opt.zeroGrad();
    opt.free();
    lora?.free();
    finish();
  }
}
