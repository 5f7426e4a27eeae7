/**
 * The emulator package: `emulator.json` (what was done and why: source model id and hash,
 * split, method, λs, budget, per-layer ranks / kept components / kept channels / score summaries, support
 * data digest, the readings used, and the emulator's ModelSpec) + `emulator.safetensors` (adapters,
 * compressed middle, frozen embeddings and head, under the engine's canonical names, F32: low-rank factors
 * `X.weight_a`/`X.weight_b` have no Hugging Face name). As a folder or one .zip for the browser.
 *
 * Writing is deterministic (sorted JSON keys, safetensors sorted by name), so write(read(write(p))) is
 * byte-identical to write(p).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { zipSync } from 'fflate';
import { unzipBounded } from '../../faults/zip';
import { checkSpecBounds } from '../../faults/bounds';
import { checkFiniteStats, checkFiniteTensors } from '../../faults/finite';
import type { Backend } from '../../engine/backend';
import { countTargets } from '../../engine/ops';
import { reclaimHostMemory } from '../../engine/reclaim';
import { noGrad, tidy } from '../../engine/tensor';
import { CpuBackend, CpuStorage } from '../../engine/cpu/backend';
import { Tensor } from '../../engine/tensor';
import { Decoder, decoderFromWeights } from '../../model/decoder';
import { canonicalShapes, validateWeights } from '../../model/hf';
import { paramCounts } from '../../model/params';
import {
  f32BitsToBF16,
  f32BitsToHalf,
  halfToFloat,
  encodeTensor,
  parseSafetensors,
  safetensorsHeader,
  serializeSafetensors,
  type WriteDType,
} from '../../model/safetensors';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';
import { middleIndices, type CompressionMethod, type Split } from './budget';
import {
  compressModel,
  GradotScorer,
  sharedWithSource,
  type CompressOptions,
  type CompressResult,
  type FactorSpill,
  type LayerRecord,
} from './compress';
import type { LambdaMode } from './gcs';
import { supportPass, type SupportBatch, type SupportPassResult } from './support';

export const EMULATOR_FORMAT = 'gradot-emulator';
export const EMULATOR_VERSION = 1;
export const EMULATOR_JSON = 'emulator.json';
export const EMULATOR_WEIGHTS = 'emulator.safetensors';

export interface EmulatorMeta {
  format: typeof EMULATOR_FORMAT;
  version: typeof EMULATOR_VERSION;
  source: { modelId: string; sha256: string; numLayers: number; params: number };
  split: Split;
  method: CompressionMethod;
  keep: number;
  lambdaAttn: number;
  lambdaMlp: number;
  lambdaMode: LambdaMode;
  readings: Record<string, string>;
  budget: {
    paramsBefore: number;
    paramsTarget: number;
    paramsAfter: number;
    granularity: number;
    kappa: number | null;
    /** Source indices of the middle blocks kept. */
    keptBlocks: number[];
  };
  layers: LayerRecord[];
  support: { digest: string; tokens: number; batches: number; meanLoss: number } | null;
  /** The emulator's spec (what the decoder needs to run `emulator.safetensors`). */
  spec: ModelSpec;
  /** Written by older builds only: emulator.json is a function of its inputs (the same build gives the same
   *  bytes, in the CLI and in the studio), so wall-clock times live in the build report instead. */
  timings?: Record<string, number>;
  /** dtype of emulator.safetensors (the source model's own by default; absent in packages from before it = F32). */
  dtype?: WriteDType;
}

export interface EmulatorPackage {
  meta: EmulatorMeta;
  weights: WeightMap;
}

export interface SourceInfo {
  modelId: string;
  /** weightsSha256 of the source model's canonical weights. */
  sha256: string;
  params: number;
}

export function emulatorMeta(
  r: CompressResult,
  source: SourceInfo,
  support: SupportPassResult | null,
  sourceNumLayers: number,
): EmulatorMeta {
  return {
    format: EMULATOR_FORMAT,
    version: EMULATOR_VERSION,
    source: { modelId: source.modelId, sha256: source.sha256, numLayers: sourceNumLayers, params: source.params },
    split: { bottom: r.plan.middle[0] ?? 0, top: sourceNumLayers - (r.plan.middle[r.plan.middle.length - 1] ?? -1) - 1 },
    method: r.plan.method,
    keep: r.plan.keep,
    lambdaAttn: r.lambdaAttn,
    lambdaMlp: r.lambdaMlp,
    lambdaMode: r.lambdaMode,
    readings: r.readings,
    budget: {
      paramsBefore: r.plan.paramsBefore,
      paramsTarget: r.plan.paramsTarget,
      paramsAfter: r.plan.paramsAfter,
      granularity: r.plan.granularity,
      kappa: r.plan.kappa ?? null,
      keptBlocks: r.plan.keptBlocks,
    },
    layers: r.layers,
    support: support ? { digest: support.digest, tokens: support.tokens, batches: support.batches, meanLoss: support.meanLoss } : null,
    spec: r.spec,
  };
}

/** JSON with object keys sorted at every level (undefined members dropped, like JSON.stringify). */
export function stableStringify(v: unknown, indent = 2): string {
  const norm = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(norm);
    if (x && typeof x === 'object' && !ArrayBuffer.isView(x)) {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(x as object).sort()) {
        const val = (x as Record<string, unknown>)[k];
        if (val !== undefined) o[k] = norm(val);
      }
      return o;
    }
    if (typeof x === 'number' && !Number.isFinite(x)) throw new Error(`stableStringify: non-finite number ${x}`);
    return x;
  };
  // Integer-like keys would be re-ordered by JS objects; our records have none, but guard anyway.
  const s = JSON.stringify(norm(v), null, indent);
  return s;
}

/** SHA-256 (hex) of the weights serialized canonically (F32 safetensors, names sorted, no metadata). */
/** An incremental SHA-256: node:crypto's in Node, @noble/hashes' (pure JS) elsewhere. */
export interface Sha256Stream {
  update(b: Uint8Array): unknown;
  hex(): string;
}

export async function sha256Stream(): Promise<Sha256Stream> {
  const nodeCrypto = await nodeCryptoModule();
  if (nodeCrypto) {
    const h = nodeCrypto.createHash('sha256');
    return { update: (b) => h.update(b), hex: () => h.digest('hex') };
  }
  return nobleSha256();
}

export function nobleSha256(): Sha256Stream {
  const h = sha256.create();
  return {
    update: (b) => h.update(b),
    hex: () => Array.from(h.digest(), (x) => x.toString(16).padStart(2, '0')).join(''),
  };
}

export async function weightsSha256(weights: WeightMap, hasher?: Sha256Stream): Promise<string> {
  // The bytes of serializeSafetensors(weights, { dtype: 'F32' }), hashed tensor by tensor: serializing a
  // 0.5 B-parameter model first would hold another 2 GB just to hash it (and WebCrypto's digest copies its
  // input: 2 GB more in a browser).
  const h = hasher ?? (await sha256Stream());
  const { header, entries } = safetensorsHeader(weights, 'F32');
  h.update(header);
  // encodeTensor's F32 on a little-endian host is a view of the tensor's own array (no copy).
  for (const [, t] of entries) h.update(encodeTensor(t, 'F32'));
  return h.hex();
}

type NodeCrypto = { createHash(alg: string): { update(b: Uint8Array): unknown; digest(enc: 'hex'): string } };
async function nodeCryptoModule(): Promise<NodeCrypto | null> {
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  // A specifier in a variable: this module is also bundled for browser workers, which must not resolve it.
  const name = 'node:crypto';
  try {
    return (await import(/* @vite-ignore */ name)) as NodeCrypto;
  } catch {
    return null;
  }
}

/** The dtype most of a model's tensors were stored in (what its emulator package is written in). */
export function sourceDtype(weights: WeightMap): WriteDType {
  const n: Record<string, number> = {};
  for (const t of weights.values()) n[t.dtype] = (n[t.dtype] ?? 0) + t.data.length;
  const best = Object.entries(n).sort((a, b) => b[1] - a[1])[0]?.[0];
  return best === 'F16' || best === 'BF16' ? best : 'F32';
}

/**
 * Rounds every tensor to `dtype` in place (values stay Float32Array), so what is evaluated is exactly what
 * the package stores. Tensors already in that dtype (shared with the source) are unchanged.
 */
export function roundWeightsTo(weights: WeightMap, dtype: WriteDType): void {
  if (dtype === 'F32') return;
  const cvt = dtype === 'F16' ? f32BitsToHalf : f32BitsToBF16;
  for (const t of weights.values()) {
    if (t.dtype === dtype) continue;
    // The source model's own arrays (shared, not copied, by compressModel) are never written.
    if (sharedWithSource.has(t.data)) t.data = t.data.slice();
    const u = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    if (dtype === 'BF16') for (let i = 0; i < u.length; i++) u[i] = cvt(u[i]!) << 16;
    else for (let i = 0; i < t.data.length; i++) t.data[i] = halfToFloat(cvt(u[i]!));
    t.dtype = dtype;
  }
}

/**
 * emulator.safetensors before it is bytes: serializeSafetensors(weights, { dtype, metadata }) once written.
 * A writer that streams it (src/storage/package-file.ts) calls `onWritten` after each tensor, so the caller
 * can drop the tensor there and then.
 */
export interface PackageWeights {
  kind: 'safetensors';
  weights: WeightMap;
  dtype: WriteDType;
  metadata: Record<string, string>;
  onWritten?: (name: string) => void;
}

/** emulator.json's bytes and the weights still as tensors: what writeEmulatorPackage serializes. */
export function emulatorPackageParts(pkg: EmulatorPackage): { json: Uint8Array; weights: PackageWeights } {
  validateWeights(pkg.meta.spec, pkg.weights, EMULATOR_WEIGHTS);
  return {
    json: new TextEncoder().encode(stableStringify(pkg.meta) + '\n'),
    weights: {
      kind: 'safetensors',
      weights: pkg.weights,
      dtype: pkg.meta.dtype ?? 'F32',
      metadata: { format: 'pt', gradot: `${EMULATOR_FORMAT}/v${EMULATOR_VERSION}` },
    },
  };
}

/** Writes emulator.json + emulator.safetensors, the weights in `pkg.meta.dtype` (default F32). */
export function writeEmulatorPackage(pkg: EmulatorPackage): Map<string, Uint8Array> {
  const { json, weights: w } = emulatorPackageParts(pkg);
  const files = new Map<string, Uint8Array>();
  files.set(EMULATOR_JSON, json);
  files.set(EMULATOR_WEIGHTS, serializeSafetensors(w.weights, { dtype: w.dtype, metadata: w.metadata }));
  return files;
}

export function readEmulatorPackage(files: Map<string, Uint8Array>): EmulatorPackage {
  const json = files.get(EMULATOR_JSON);
  const st = files.get(EMULATOR_WEIGHTS);
  if (!json || !st) throw new Error(`emulator package needs ${EMULATOR_JSON} and ${EMULATOR_WEIGHTS}`);
  const meta = JSON.parse(new TextDecoder().decode(json)) as EmulatorMeta;
  if (meta.format !== EMULATOR_FORMAT) throw new Error(`${EMULATOR_JSON}: not a GradOT emulator (format '${String(meta.format)}')`);
  if (meta.version !== EMULATOR_VERSION) throw new Error(`${EMULATOR_JSON}: unsupported version ${String(meta.version)}`);
  checkSpecBounds(meta.spec, EMULATOR_JSON);
  const { tensors } = parseSafetensors(st, EMULATOR_WEIGHTS);
  validateWeights(meta.spec, tensors, EMULATOR_WEIGHTS);
  return { meta, weights: tensors };
}

/** One .zip (stored, fixed timestamps, so identical packages zip identically). */
export function zipEmulatorPackage(files: Map<string, Uint8Array>): Uint8Array {
  const entries: Record<string, [Uint8Array, { level: 0; mtime: Date }]> = {};
  for (const name of [...files.keys()].sort()) entries[name] = [files.get(name)!, { level: 0, mtime: new Date(Date.UTC(1980, 0, 1)) }];
  return zipSync(entries);
}

/** The files of a package .zip; limits on entries and sizes are checked before and while inflating. */
export function unzipEmulatorPackage(zip: Uint8Array, file = 'emulator.zip'): Map<string, Uint8Array> {
  return unzipBounded(zip, file);
}

// ---------------------------------------------------------------------------------------------------------
// One call for the CLI / worker: support pass -> compression -> package -> report.

export interface BuildEmulatorOptions extends CompressOptions {
  modelId: string;
  /** Backend for the support pass and the loss evaluation (CPU or WebGPU). */
  backend: Backend;
  /** Support batches (consumed twice: the pass, then the full-vs-emulator support loss). */
  support: SupportBatch[];
  /** Called once when each phase starts. */
  onProgress?: (phase: 'support' | 'compress' | 'evaluate' | 'package', detail?: string) => void;
  /** Per support batch (index, loss), for progress bars. */
  onSupportBatch?: (index: number, loss: number) => void;
  /** Checked between support batches: an abort stops the build with the signal's reason. */
  signal?: AbortSignal;
  /** Paused between support batches while paused. */
  pause?: { readonly paused: boolean; wait(): Promise<void> };
  /**
   * Work done / total within a phase, for progress bars and ETAs: support = batch × block-group units;
   * scoring = matrices (SVD + GCS) and MLPs scored, which runs between the support pass's groups;
   * compress = factored matrices built;
   * evaluate = support batches.
   */
  onWork?: (phase: 'support' | 'scoring' | 'compress' | 'evaluate', done: number, total: number) => void;
  /** gradot: where factors over half the memory budget wait for the build (else they are recomputed). */
  factorSpill?: FactorSpill;
  /**
   * Bytes gradot may use beyond the model's own weights (default DEFAULT_MEMORY_BUDGET): a quarter bounds
   * one group of support statistics (supportPass memoryBudget), half bounds the SVD factors kept between
   * scoring and building (beyond it they are recomputed). Peak memory then does not grow with the number
   * of blocks.
   */
  memoryBudget?: number;
  /** dtype of emulator.safetensors; default the source model's own (F16/BF16 stay F16/BF16). */
  dtype?: WriteDType;
  /**
   * Runs after evaluation with both decoders (e.g. the held-out gradient shift), before the package is
   * serialized: at real sizes the package bytes are another copy of the emulator, so they should not
   * exist while a measurement holds activations and gradients.
   */
  beforePackage?: (full: Decoder, emu: Decoder) => Promise<void>;
  /**
   * Leave emulator.safetensors as tensors (`weights` in the result, absent from `files`) for a writer that
   * streams it to disk: at real sizes its bytes are another copy of the emulator while the source model and
   * the F32 emulator are both still in memory (the CLI; the studio needs the bytes).
   */
  streamWeights?: boolean;
}

/** Default working-memory budget of buildEmulator (beyond the model weights). */
export const DEFAULT_MEMORY_BUDGET = 2 ** 30;

/**
 * A decoder over `weights`: on the f32 CPU backend its parameters share the host arrays instead of copying
 * them (the support pass and evaluation never write to parameters), so the model is in memory once.
 */
export function sharedDecoder(be: Backend, spec: ModelSpec, weights: WeightMap): Decoder {
  if (!(be instanceof CpuBackend) || be.dtype !== 'f32' || ![...weights.values()].every((t) => t.data instanceof Float32Array)) {
    return decoderFromWeights(be, spec, weights);
  }
  const params = new Map<string, Tensor>();
  for (const [name, shape] of canonicalShapes(spec)) {
    const w = weights.get(name);
    if (!w) throw new Error(`sharedDecoder: missing tensor ${name}`);
    const t = new Tensor(be, shape, new CpuStorage(w.data as Float32Array), false);
    t.name = name;
    params.set(name, t);
  }
  return new Decoder(spec, params);
}

/** Ascending indices as [start, end) runs: [0, 1, 2, 5, 6] → [[0, 3], [5, 7]]. */
export function toRanges(indices: readonly number[]): [number, number][] {
  const sorted = [...indices].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i === last[1]) last[1] = i + 1;
    else if (!last || i > last[1]) out.push([i, i + 1]);
  }
  return out;
}

export interface EmulatorReport {
  modelId: string;
  method: CompressionMethod;
  keep: number;
  lambdaAttn: number;
  lambdaMlp: number;
  params: { before: number; after: number; middleBefore: number; middleAfter: number; middleTarget: number; middleKept: number };
  /** keptRanges: which singular components (σ order) each factorized matrix kept, as [start, end) runs
   *  (compact: mostly one run), so a spectrum can mark a run's cut long after its emulator is gone. */
  layers: {
    index: number;
    source: number;
    role: string;
    ranks: LayerRecord['ranks'];
    mlpWidth: number;
    keptRanges?: Partial<Record<string, [number, number][]>>;
  }[];
  supportLoss: { full: number; emulator: number };
  seconds: { support: number; svd: number; scoring: number; compress: number; evaluate: number; package: number; total: number };
  readings: Record<string, string>;
}

async function meanLoss(dec: Decoder, batches: SupportBatch[], onBatch?: (done: number, total: number) => void): Promise<number> {
  let s = 0,
    n = 0,
    k = 0;
  for (const b of batches) {
    onBatch?.(k++, batches.length);
    const N = countTargets(b.targets);
    if (N === 0) continue;
    const l = tidy(() => noGrad(() => dec.loss(b.ids, b.targets, b.B, b.T)));
    s += (await l.item()) * N;
    l.free();
    reclaimHostMemory(); // the batch's activations, freed with the scope
    n += N;
  }
  return n === 0 ? NaN : s / n;
}

/** One trip through the event loop: in a worker, a cancel or pause message (comlink) is only delivered
 *  between macrotasks, and a loop of resolved promises never yields one. Used only when a job can be
 *  controlled (a signal or pauser was given). */
const nextMacrotask = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** The batches, with pause and abort honoured between them. */
async function* controlled(batches: SupportBatch[], o: Pick<BuildEmulatorOptions, 'signal' | 'pause'>): AsyncGenerator<SupportBatch> {
  for (const b of batches) {
    if (o.signal || o.pause) await nextMacrotask();
    if (o.pause?.paused) await o.pause.wait();
    o.signal?.throwIfAborted();
    yield b;
  }
}

export async function buildEmulator(
  spec: ModelSpec,
  weights: WeightMap,
  o: BuildEmulatorOptions,
): Promise<{
  files: Map<string, Uint8Array>;
  /** With `streamWeights`: emulator.safetensors, still as tensors. */
  weights?: PackageWeights;
  meta: EmulatorMeta;
  report: EmulatorReport;
  result: CompressResult;
}> {
  const t0 = performance.now();
  checkFiniteTensors(weights, o.modelId); // NaN weights would give NaN factors, written without a word
  const full = sharedDecoder(o.backend, spec, weights);
  let sp: SupportPassResult | null = null;
  const budget = o.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  try {
    // gradot: statistics are scored group by group as the support pass produces them, then dropped.
    const scorer = o.method === 'gradot' ? new GradotScorer(spec, weights, o, budget / 2, o.factorSpill) : undefined;
    if (scorer) {
      o.onProgress?.('support');
      const needed = scorer.needed;
      sp = await supportPass(full, controlled(o.support, o), middleIndices(spec, o.split), {
        linears: needed,
        memoryBudget: budget / 4,
        count: o.support.length,
        ...(o.onSupportBatch ? { onBatch: o.onSupportBatch } : {}),
        between: async () => {
          if (o.pause?.paused) await o.pause.wait();
          o.signal?.throwIfAborted();
        },
        onStats: (name, s) => {
          // Non-finite statistics would give non-finite scores and factors, written without a word.
          checkFiniteStats(new Map([[name, s as unknown as Record<string, unknown>]]), o.modelId);
          scorer.consume(name, s);
          o.onWork?.('scoring', scorer.done, scorer.total);
        },
        onProgress: (done, total) => o.onWork?.('support', done, total),
      });
    }
    reclaimHostMemory(o.backend, { force: true }); // the support pass's pooled arrays: compression allocates none of its sizes
    o.onProgress?.('compress');
    const tc = performance.now();
    o.signal?.throwIfAborted();
    const result = compressModel(
      spec,
      weights,
      { ...o, onLinearBuilt: (done, total) => o.onWork?.('compress', done, total) },
      undefined,
      scorer,
    );
    const dtype = o.dtype ?? sourceDtype(weights);
    roundWeightsTo(result.weights, dtype);
    const compressSeconds = (performance.now() - tc) / 1000;
    // compressModel is one synchronous stretch: a cancel that arrived meanwhile is honoured here.
    if (o.signal) await nextMacrotask();
    o.signal?.throwIfAborted();
    reclaimHostMemory(o.backend, { force: true }); // the support pass's and the build's transients, before evaluation's
    o.onProgress?.('evaluate');
    const te = performance.now();
    const emu = sharedDecoder(o.backend, result.spec, result.weights);
    const lossFull = sp ? sp.meanLoss : await meanLoss(full, o.support);
    let lossEmu: number;
    let evaluateSeconds: number;
    try {
      lossEmu = await meanLoss(emu, o.support, (d, t) => o.onWork?.('evaluate', d, t));
      evaluateSeconds = (performance.now() - te) / 1000;
      if (o.beforePackage) {
        o.signal?.throwIfAborted();
        await o.beforePackage(full, emu);
      }
    } finally {
      emu.free();
    }
    reclaimHostMemory(o.backend, { force: true }); // evaluation's and the held-out figure's, before the package bytes
    o.onProgress?.('package');
    const tp = performance.now();
    const before = paramCounts(spec).total;
    const meta: EmulatorMeta = {
      ...emulatorMeta(result, { modelId: o.modelId, sha256: await weightsSha256(weights), params: before }, sp, spec.layers.length),
      dtype,
    };
    let files: Map<string, Uint8Array>;
    let streamed: PackageWeights | undefined;
    if (o.streamWeights) {
      const parts = emulatorPackageParts({ meta, weights: result.weights });
      files = new Map([[EMULATOR_JSON, parts.json]]);
      streamed = parts.weights;
    } else files = writeEmulatorPackage({ meta, weights: result.weights });
    const packageSeconds = (performance.now() - tp) / 1000;
    const report: EmulatorReport = {
      modelId: o.modelId,
      method: o.method,
      keep: o.keep,
      lambdaAttn: result.lambdaAttn,
      lambdaMlp: result.lambdaMlp,
      params: {
        before,
        after: paramCounts(result.spec).total,
        middleBefore: result.plan.paramsBefore,
        middleAfter: result.plan.paramsAfter,
        middleTarget: result.plan.paramsTarget,
        middleKept: result.plan.paramsAfter / result.plan.paramsBefore,
      },
      layers: result.layers.map((l) => ({
        index: l.index,
        source: l.source,
        role: l.role,
        ranks: l.ranks,
        mlpWidth: l.mlpWidth,
        ...(l.keptComponents
          ? { keptRanges: Object.fromEntries(Object.entries(l.keptComponents).map(([p, k]) => [p, toRanges(k ?? [])])) }
          : {}),
      })),
      supportLoss: { full: lossFull, emulator: lossEmu },
      seconds: {
        // Scoring ran inside the support pass: report the pass without it, so the phases add up.
        support: sp ? Math.max(0, sp.seconds - (scorer ? (scorer.svdMs + scorer.scoreMs) / 1000 : 0)) : 0,
        svd: result.timings.svdSeconds,
        scoring: result.timings.scoreSeconds,
        compress: compressSeconds,
        evaluate: evaluateSeconds,
        package: packageSeconds,
        total: (performance.now() - t0) / 1000,
      },
      readings: result.readings,
    };
    return { files, ...(streamed ? { weights: streamed } : {}), meta, report, result };
  } finally {
    full.free();
  }
}
