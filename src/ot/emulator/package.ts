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
import { unzipSync, zipSync } from 'fflate';
import type { Backend } from '../../engine/backend';
import { countTargets } from '../../engine/ops';
import { noGrad, tidy } from '../../engine/tensor';
import { decoderFromWeights, type Decoder } from '../../model/decoder';
import { validateWeights } from '../../model/hf';
import { paramCounts } from '../../model/params';
import { parseSafetensors, serializeSafetensors } from '../../model/safetensors';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';
import { middleIndices, type CompressionMethod, type Split } from './budget';
import { compressModel, type CompressOptions, type CompressResult, type LayerRecord } from './compress';
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

export function emulatorMeta(r: CompressResult, source: SourceInfo, support: SupportPassResult | null, sourceNumLayers: number): EmulatorMeta {
  return {
    format: EMULATOR_FORMAT, version: EMULATOR_VERSION,
    source: { modelId: source.modelId, sha256: source.sha256, numLayers: sourceNumLayers, params: source.params },
    split: { bottom: r.plan.middle[0] ?? 0, top: sourceNumLayers - (r.plan.middle[r.plan.middle.length - 1] ?? -1) - 1 },
    method: r.plan.method, keep: r.plan.keep, lambdaAttn: r.lambdaAttn, lambdaMlp: r.lambdaMlp, lambdaMode: r.lambdaMode, readings: r.readings,
    budget: {
      paramsBefore: r.plan.paramsBefore, paramsTarget: r.plan.paramsTarget, paramsAfter: r.plan.paramsAfter,
      granularity: r.plan.granularity, kappa: r.plan.kappa ?? null, keptBlocks: r.plan.keptBlocks,
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
export async function weightsSha256(weights: WeightMap): Promise<string> {
  const bytes = serializeSafetensors(weights, { dtype: 'F32' });
  const h = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function writeEmulatorPackage(pkg: EmulatorPackage): Map<string, Uint8Array> {
  validateWeights(pkg.meta.spec, pkg.weights, EMULATOR_WEIGHTS);
  const files = new Map<string, Uint8Array>();
  files.set(EMULATOR_JSON, new TextEncoder().encode(stableStringify(pkg.meta) + '\n'));
  files.set(EMULATOR_WEIGHTS, serializeSafetensors(pkg.weights, {
    dtype: 'F32', metadata: { format: 'pt', gradot: `${EMULATOR_FORMAT}/v${EMULATOR_VERSION}` },
  }));
  return files;
}

export function readEmulatorPackage(files: Map<string, Uint8Array>): EmulatorPackage {
  const json = files.get(EMULATOR_JSON);
  const st = files.get(EMULATOR_WEIGHTS);
  if (!json || !st) throw new Error(`emulator package needs ${EMULATOR_JSON} and ${EMULATOR_WEIGHTS}`);
  const meta = JSON.parse(new TextDecoder().decode(json)) as EmulatorMeta;
  if (meta.format !== EMULATOR_FORMAT) throw new Error(`${EMULATOR_JSON}: not a GradOT emulator (format '${String(meta.format)}')`);
  if (meta.version !== EMULATOR_VERSION) throw new Error(`${EMULATOR_JSON}: unsupported version ${String(meta.version)}`);
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

export function unzipEmulatorPackage(zip: Uint8Array): Map<string, Uint8Array> {
  const out = unzipSync(zip);
  return new Map(Object.entries(out));
}

// ---------------------------------------------------------------------------------------------------------
// One call for the CLI / worker: support pass -> compression -> package -> report.

export interface BuildEmulatorOptions extends CompressOptions {
  modelId: string;
  /** Backend for the support pass and the loss evaluation (CPU or WebGPU). */
  backend: Backend;
  /** Support batches (consumed twice: the pass, then the full-vs-emulator support loss). */
  support: SupportBatch[];
  onProgress?: (phase: 'support' | 'compress' | 'evaluate' | 'package', detail?: string) => void;
  /** Per support batch (index, loss), for progress bars. */
  onSupportBatch?: (index: number, loss: number) => void;
  /** Checked between support batches: an abort stops the build with the signal's reason. */
  signal?: AbortSignal;
  /** Paused between support batches while paused. */
  pause?: { readonly paused: boolean; wait(): Promise<void> };
}

export interface EmulatorReport {
  modelId: string;
  method: CompressionMethod;
  keep: number;
  lambdaAttn: number;
  lambdaMlp: number;
  params: { before: number; after: number; middleBefore: number; middleAfter: number; middleTarget: number; middleKept: number };
  layers: { index: number; source: number; role: string; ranks: LayerRecord['ranks']; mlpWidth: number }[];
  supportLoss: { full: number; emulator: number };
  seconds: { support: number; svd: number; scoring: number; compress: number; evaluate: number; package: number; total: number };
  readings: Record<string, string>;
}

async function meanLoss(dec: Decoder, batches: SupportBatch[]): Promise<number> {
  let s = 0, n = 0;
  for (const b of batches) {
    const N = countTargets(b.targets);
    if (N === 0) continue;
    const l = tidy(() => noGrad(() => dec.loss(b.ids, b.targets, b.B, b.T)));
    s += (await l.item()) * N;
    l.free();
    n += N;
  }
  return n === 0 ? NaN : s / n;
}

/** The batches, with pause and abort honoured between them. */
async function* controlled(batches: SupportBatch[], o: Pick<BuildEmulatorOptions, 'signal' | 'pause'>): AsyncGenerator<SupportBatch> {
  for (const b of batches) {
    if (o.pause?.paused) await o.pause.wait();
    o.signal?.throwIfAborted();
    yield b;
  }
}

export async function buildEmulator(
  spec: ModelSpec, weights: WeightMap, o: BuildEmulatorOptions,
): Promise<{ files: Map<string, Uint8Array>; meta: EmulatorMeta; report: EmulatorReport; result: CompressResult }> {
  const t0 = performance.now();
  const full = decoderFromWeights(o.backend, spec, weights);
  let sp: SupportPassResult | null = null;
  try {
    if (o.method === 'gradot') {
      o.onProgress?.('support');
      sp = await supportPass(full, controlled(o.support, o), middleIndices(spec, o.split), o.onSupportBatch ? { onBatch: o.onSupportBatch } : {});
    }
    o.onProgress?.('compress');
    const tc = performance.now();
    o.signal?.throwIfAborted();
    const result = compressModel(spec, weights, o, sp?.stats);
    const compressSeconds = (performance.now() - tc) / 1000;
    o.onProgress?.('evaluate');
    const te = performance.now();
    const emu = decoderFromWeights(o.backend, result.spec, result.weights);
    const lossFull = sp ? sp.meanLoss : await meanLoss(full, o.support);
    const lossEmu = await meanLoss(emu, o.support);
    emu.free();
    const evaluateSeconds = (performance.now() - te) / 1000;
    o.onProgress?.('package');
    const tp = performance.now();
    const before = paramCounts(spec).total;
    const meta = emulatorMeta(result, { modelId: o.modelId, sha256: await weightsSha256(weights), params: before }, sp, spec.layers.length);
    const files = writeEmulatorPackage({ meta, weights: result.weights });
    const packageSeconds = (performance.now() - tp) / 1000;
    const report: EmulatorReport = {
      modelId: o.modelId, method: o.method, keep: o.keep, lambdaAttn: result.lambdaAttn, lambdaMlp: result.lambdaMlp,
      params: {
        before, after: paramCounts(result.spec).total,
        middleBefore: result.plan.paramsBefore, middleAfter: result.plan.paramsAfter, middleTarget: result.plan.paramsTarget,
        middleKept: result.plan.paramsAfter / result.plan.paramsBefore,
      },
      layers: result.layers.map((l) => ({ index: l.index, source: l.source, role: l.role, ranks: l.ranks, mlpWidth: l.mlpWidth })),
      supportLoss: { full: lossFull, emulator: lossEmu },
      seconds: {
        support: sp?.seconds ?? 0, svd: result.timings.svdSeconds, scoring: result.timings.scoreSeconds, compress: compressSeconds,
        evaluate: evaluateSeconds, package: packageSeconds, total: (performance.now() - t0) / 1000,
      },
      readings: result.readings,
    };
    return { files, meta, report, result };
  } finally {
    full.free();
  }
}
