/**
 * Peak memory of a compress or tune job, estimated before it starts, so a model that does not fit is
 * refused (or at least announced) with the numbers instead of a tab that dies half-way.
 *
 * The estimate follows what the engine holds at the worst moment (f32 CPU backend; WebGPU moves the sums
 * and activations to the GPU, so there it is an upper bound for the page):
 * - the model's weights in f32 (the decoder shares them; F16/BF16 files are widened on load), and while
 *   loading also the file's own bytes;
 * - the WebAssembly heap the matmul kernels stage operands in, which grows to the largest product (the LM
 *   head: tokens x d, vocab x d and tokens x vocab) and never shrinks;
 * - the logits and their softmax/gradient (one block of rows x vocab, three f32 copies; head-loss.ts);
 * - gradot's support pass: one group of KFAC sums (whole blocks under a quarter of the memory budget, at
 *   least one block), the SVD factors kept for scoring (f32, at most half the budget), one group's tape and
 *   the saved residual streams;
 * - the emulator's own tensors (the compressed middle: everything else is shared with the model), and at
 *   packaging, in the page, one slice of the package being converted (the CLI streams it to disk);
 * - tuning: the emulator in f32, gradient and both AdamW moments of the trainable adapters, and the tape of
 *   every block for one batch.
 * Calibrated against peak RSS measured with `/usr/bin/time -v gradot compress` on the hub-shaped gpt2
 * and opt-125m checkpoints (see the tests); ESTIMATE_MARGIN is the relative error allowed there.
 */

import { headBlockRows, headPieceRows } from '../engine/head-blocks';
import { HELD_OUT_TAPE_BYTES, tapeFloatsPerToken } from '../model/tape-size';

export type EstimateJob = 'compress' | 'tune';

/** What the estimate needs of a model (ModelSummary has all of it). */
export interface ModelShape {
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  numHeads: number;
  numKvHeads: number;
  /** LLaMA-style gated MLP (up, gate, down) instead of up, down. */
  gated: boolean;
  /** Parameters, buffers excluded. */
  params: number;
  /** Bytes of the weights as stored (safetensors payload). */
  fileBytes: number;
}

export interface EstimateOptions {
  job: EstimateJob;
  /** Compression method (compress); only gradot runs the support pass. */
  method?: 'gradot' | 'svd' | 'prune' | 'drop' | 'none';
  /** Fraction of middle-block parameters kept (compress; the emulator's size). */
  keep?: number;
  split?: { bottom: number; top: number };
  /** Sequences per batch and tokens per sequence (support batches, or training batches). */
  batch: number;
  seq: number;
  /** gradot's working-memory budget beyond the model (default 1 GiB, as buildEmulator's). */
  memoryBudget?: number;
  /** Bytes per element of the written package (default: the model's own, fileBytes / params). */
  packageBytesPerParam?: number;
  /** Tune: 'lora' trains a few small matrices, 'full' the adapter blocks. */
  tuneMode?: 'full' | 'lora';
  /** Tune: the emulator's parameters (default: params at `keep`, else the model's). */
  emulatorParams?: number;
  /** Fixed cost of the runtime (Node or the page, V8, the engine's code and worker pool). */
  runtimeBytes?: number;
  /** Compress: the held-out gradient-shift figure runs before packaging (the CLI's default; the studio skips it). */
  heldout?: boolean;
  /** The studio's page, not Node: adds BROWSER_TRANSIENT_SHARE and the download's copies (see there). */
  browser?: boolean;
}

export interface MemoryPart {
  what: string;
  bytes: number;
}

export interface MemoryEstimate {
  /** Estimated peak resident bytes. */
  bytes: number;
  /** The phase where the peak falls. */
  phase: string;
  /** The terms of that phase, largest first. */
  parts: MemoryPart[];
  /** Every phase's total (runtime included), in job order. */
  phases: { phase: string; bytes: number; parts: MemoryPart[] }[];
}

/** Relative error of the estimate against the measured peaks it is calibrated on (tests hold it there). */
export const ESTIMATE_MARGIN = 0.25;
/** Node + V8 + the engine's code and wasm pool, measured as a CLI run's RSS before the model is read. */
export const NODE_RUNTIME_BYTES = 160 * 2 ** 20;
/** A studio tab before any model: the page, React, the worker and its engine. */
export const PAGE_RUNTIME_BYTES = 300 * 2 ** 20;
export const DEFAULT_ESTIMATE_BUDGET = 2 ** 30;

/**
 * The page against Node, for the same job (`browser: true`). In Node the build forces a collection when
 * typed arrays have grown by 512 MiB (reclaimHostMemory); a page cannot, and the worker's collector takes the
 * support pass's freed activations and statistics later, so at the peak part of them is still held:
 * BROWSER_SUPPORT_GARBAGE is that part, as a share of the support pass's working memory (every term but
 * the model's weights and the runtime). After the build the studio makes the package's zip Blob slice by
 * slice (workers/studio/zip-blob.ts): the page holds one converted slice, the browser keeps the Blob's data
 * outside the page ('packaging'). Measured with the real-size studio spec (`REAL_SIZE=1 npm run
 * test:real-size`: the page renderer's RSS from /proc, page and workers) against this estimate with
 * PAGE_RUNTIME_BYTES, on the hub-shaped checkpoints of `gradot make-model`:
 * - gpt2 (F32, 124 M), GradOT keep 0.5, 8 support batches of 4 x 64 tokens: the support pass peaked at
 *   1.72 GiB against 1.62 estimated here without the page terms, 0.10 GiB over on 0.87 GiB of working
 *   memory (0.11: BROWSER_SUPPORT_GARBAGE rounds it up).
 * - Qwen2.5-0.5B (BF16, 494 M), keep 0.5, one tab, load 4-13, the package made as a contiguous zip before:
 *   prune 4.21 GiB, svd 4.59. With the zip Blob made slice by slice: prune (built second) 3.07 GiB, svd
 *   (third) 3.23, against 3.19 estimated here (evaluation; packaging 3.00); GradOT at the 1 GiB budget went
 *   to 4.12 GiB in its support pass (estimated 4.08), hence the studio's smaller budget for it
 *   (studioMemoryBudget). The first build in a tab (layer drop) reached 6.21 GiB while its weights loaded
 *   (91 s, against 30 s for the later builds' loads, whose RSS rose only by the weights): about 4 GiB the
 *   worker had freed but not collected, not modelled here. Reading with `blob.slice().arrayBuffer()` it had
 *   reached 6.0-7.4 GiB.
 * - An 8-block Qwen2-shaped checkpoint (255 M, BF16 487 MiB), each kind at keep 0.5 in one tab, tensors read
 *   through a BYOB reader (since replaced: its reads could stall): drop 2.42 GiB, prune 2.40, svd 2.62
 *   against 2.45 estimated here (with `arrayBuffer()`: drop 4.39).
 */
export const BROWSER_SUPPORT_GARBAGE = 0.15;

/** Elements the studio converts per Blob part of emulator.safetensors (workers/studio/zip-blob.ts). */
export const PACKAGE_SLICE_ELEMENTS = 16 * 2 ** 20;

const F32 = 4;

function blockParams(m: ModelShape): { attn: number; mlp: number } {
  const d = m.hiddenSize;
  const kv = (d / m.numHeads) * m.numKvHeads;
  return { attn: 2 * d * d + 2 * d * kv, mlp: (m.gated ? 3 : 2) * d * m.intermediateSize };
}

/** Bytes of one block's support statistics (as supportBytesPerBlock: shared q/k/v and up/gate inputs). */
export function supportBytesPerBlockOf(m: ModelShape): number {
  const d = m.hiddenSize,
    i = m.intermediateSize;
  const kv = (d / m.numHeads) * m.numKvHeads;
  // Per linear: out² (G) + 2·out·in (sum of g and the weight's own grad) + out.
  const lin = (out: number, inn: number) => out * out + 2 * out * inn + out;
  let n = lin(d, d) * 2 + lin(kv, d) * 2 + lin(i, d) * (m.gated ? 2 : 1) + lin(d, i);
  // Input statistics: q/k/v share one, o one, up/gate one, down one.
  n += 3 * (d * d + d) + (i * i + i);
  return n * F32;
}

/** The largest staged matmul (the LM head: one block of rows, one piece of the vocabulary), which sizes the
 *  kernels' WebAssembly heap. */
function wasmHeapBytes(m: ModelShape, tokens: number): number {
  const d = m.hiddenSize,
    V = m.vocabSize,
    i = m.intermediateSize;
  const r = headBlockRows(tokens, m.vocabSize); // one block of the head's rows (head-loss.ts)
  // A head weight over 256 MB is staged in vocabulary pieces of at most 128 MB (head-loss.ts).
  const w = headPieceRows(V, d) * d;
  return Math.max(r * d + w + r * V, 2 * tokens * i + i * i) * F32;
}

/** SVD factors of one block's scored matrices as the scorer keeps them (U·S and Vᵀ in f32). */
function svdFactorBytesPerBlock(m: ModelShape): number {
  const d = m.hiddenSize,
    i = m.intermediateSize;
  const kv = (d / m.numHeads) * m.numKvHeads;
  const f = (a: number, b: number) => (a * Math.min(a, b) + b * Math.min(a, b)) * F32;
  return 2 * f(d, d) + 2 * f(kv, d) + (m.gated ? 2 : 1) * f(i, d) + f(d, i);
}

/** The held-out figure's tape: whole-depth, or one block's plus the saved block inputs when the whole one
 *  would pass HELD_OUT_TAPE_BYTES (gradshift.ts then runs block by block). */
function heldOutTape(m: ModelShape, tokens: number, seq: number): MemoryPart {
  const perBlock = tokens * tapeFloatsPerToken(m, seq) * F32;
  const whole = m.numLayers * perBlock;
  if (whole <= HELD_OUT_TAPE_BYTES) return { what: 'tape of every block', bytes: whole };
  return { what: 'one block’s tape and every block’s saved input', bytes: perBlock + (m.numLayers + 1) * tokens * m.hiddenSize * F32 };
}

export function estimatePeakMemory(m: ModelShape, o: EstimateOptions): MemoryEstimate {
  const runtime = o.runtimeBytes ?? NODE_RUNTIME_BYTES;
  const tokens = o.batch * o.seq;
  const weights = m.params * F32;
  const split = o.split ?? { bottom: 2, top: 2 };
  const middle = Math.max(0, m.numLayers - split.bottom - split.top);
  const bp = blockParams(m);
  const keep = o.keep ?? 1;
  const emuParams = o.emulatorParams ?? Math.round(m.params - middle * (bp.attn + bp.mlp) * (1 - keep));
  const heap = wasmHeapBytes(m, tokens);
  // One block of logits and, in the backward, its recomputation and gradient.
  const logits = 3 * headBlockRows(tokens, m.vocabSize) * m.vocabSize * F32;
  const phases: { phase: string; parts: MemoryPart[] }[] = [
    {
      phase: 'loading',
      parts: [
        { what: 'model weights (f32)', bytes: weights },
        { what: 'model file being read', bytes: m.fileBytes },
      ],
    },
  ];
  if (o.job === 'compress') {
    const budget = o.memoryBudget ?? DEFAULT_ESTIMATE_BUDGET;
    const common: MemoryPart[] = [
      { what: 'model weights (f32)', bytes: weights },
      { what: 'matmul staging heap', bytes: heap },
    ];
    if (o.method === 'gradot' || o.method === undefined) {
      const perBlock = supportBytesPerBlockOf(m);
      const perGroup = Math.min(middle, Math.max(1, Math.floor(budget / 4 / perBlock)));
      const groups = Math.max(1, Math.ceil(middle / perGroup));
      const factors = Math.min(budget / 2, middle * svdFactorBytesPerBlock(m));
      phases.push({
        phase: 'support pass',
        parts: [
          ...common,
          { what: `support statistics (${perGroup} of ${middle} blocks at a time)`, bytes: perGroup * perBlock },
          { what: 'logits, softmax and their gradient', bytes: logits },
          { what: 'SVD factors kept for scoring', bytes: factors },
          { what: "one block group's tape", bytes: perGroup * tokens * tapeFloatsPerToken(m, o.seq) * F32 },
          { what: 'saved residual streams', bytes: 8 * (groups + 1) * tokens * m.hiddenSize * F32 },
        ],
      });
    } else {
      phases.push({ phase: 'evaluation', parts: [...common, { what: 'logits, softmax', bytes: 2 * tokens * m.vocabSize * F32 }] });
    }
    const pkgBytes = o.packageBytesPerParam ?? (m.params > 0 ? m.fileBytes / m.params : F32);
    // The emulator shares every tensor compression leaves alone with the model; it owns the middle's.
    const owned = Math.max(0, emuParams - (m.params - middle * (bp.attn + bp.mlp)));
    const built: MemoryPart[] = [...common, { what: "emulator's compressed middle (f32)", bytes: owned * F32 }];
    phases.push({ phase: 'evaluation', parts: [...built, { what: 'logits and softmax', bytes: (2 / 3) * logits }] });
    if (o.heldout) {
      // Before packaging: both models' adapter gradients (the full model's used in place) and a full-depth tape.
      const adapter = (split.bottom + split.top) * (bp.attn + bp.mlp);
      phases.push({
        phase: 'held-out gradient shift',
        parts: [
          ...built,
          { what: 'logits, softmax and their gradient', bytes: logits },
          heldOutTape(m, tokens, o.seq),
          { what: 'adapter gradients (full model, emulator)', bytes: 2 * adapter * F32 },
        ],
      });
    }
    // The CLI streams emulator.safetensors to disk after dropping the model (src/storage/package-file.ts), so
    // there packaging holds less than the evaluation. The studio makes the zip's Blob slice by slice
    // (workers/studio/zip-blob.ts): the page holds one converted slice and its copy on the way to the Blob,
    // whose data the browser keeps outside the page; the model's freed arrays may not be collected yet.
    if (o.browser)
      phases.push({
        phase: 'packaging',
        // An F32 slice is a view of the tensor (no conversion): only the Blob's copy.
        parts: [
          ...built,
          {
            what: 'package slice being converted (and its Blob copy)',
            bytes: (pkgBytes < F32 ? 2 : 1) * PACKAGE_SLICE_ELEMENTS * pkgBytes,
          },
        ],
      });
  } else {
    const trainable =
      o.tuneMode === 'lora'
        ? (split.bottom + split.top) * 2 * 8 * 2 * m.hiddenSize
        : (split.bottom + split.top) * (bp.attn + bp.mlp + 4 * m.hiddenSize);
    phases.push({
      phase: 'training',
      parts: [
        { what: 'emulator weights (f32)', bytes: emuParams * F32 },
        { what: 'matmul staging heap', bytes: heap },
        { what: 'trainable gradients and AdamW moments', bytes: 3 * trainable * F32 },
        { what: 'logits, softmax and their gradient', bytes: logits },
        { what: 'tape of every block', bytes: m.numLayers * tokens * tapeFloatsPerToken(m, o.seq) * F32 },
      ],
    });
  }
  if (o.browser) {
    const sp = phases.find((p) => p.phase === 'support pass');
    if (sp) {
      const working = sp.parts.filter((x) => !x.what.startsWith('model weights')).reduce((a, x) => a + x.bytes, 0);
      sp.parts.push({ what: 'freed activations the page has not collected yet', bytes: BROWSER_SUPPORT_GARBAGE * working });
    }
  }
  const all = phases.map((p) => ({
    phase: p.phase,
    bytes: runtime + p.parts.reduce((a, x) => a + x.bytes, 0),
    parts: [{ what: 'runtime', bytes: runtime }, ...p.parts].sort((a, b) => b.bytes - a.bytes),
  }));
  const peak = all.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return { bytes: peak.bytes, phase: peak.phase, parts: peak.parts, phases: all };
}

/** The smallest working-memory budget the studio gives gradot's support pass. */
export const MIN_STUDIO_BUDGET = 2 ** 28;

/**
 * The share of the tab's limit the studio keeps free when it chooses gradot's budget: the page's freed
 * arrays come and go in the support pass (Qwen2.5-0.5B-shaped at 1 GiB: the renderer swung between 3.1 and
 * 4.0 GiB within seconds, against 4.08 GiB estimated), so an estimate just under the limit is not enough.
 */
export const STUDIO_BUDGET_HEADROOM = 0.1;

/**
 * gradot's working-memory budget in the studio: DEFAULT_ESTIMATE_BUDGET while the support pass's estimated
 * peak fits `limitBytes` less STUDIO_BUDGET_HEADROOM, else halved (down to MIN_STUDIO_BUDGET) until it does. The budget caps the SVD
 * factors the scorer keeps for the build (half of it); the studio recomputes the others' SVDs when it builds
 * (no folder to park them in, as the CLI has): the same emulator, later. Qwen2.5-0.5B's factors are 1.5 GB
 * in f32, over any of these budgets, so a smaller one is only time.
 */
export function studioMemoryBudget(m: ModelShape, o: EstimateOptions, limitBytes: number): number {
  let budget = DEFAULT_ESTIMATE_BUDGET;
  const supportPeak = (b: number) =>
    estimatePeakMemory(m, { ...o, memoryBudget: b }).phases.find((p) => p.phase === 'support pass')?.bytes ?? 0;
  const target = limitBytes * (1 - STUDIO_BUDGET_HEADROOM);
  while (budget > MIN_STUDIO_BUDGET && supportPeak(budget) > target) budget /= 2;
  return budget;
}

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** The estimate's input from what the studio knows of an open model (its summary). */
export function modelShapeOf(s: {
  family: string;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  totalParams: number;
  dtypes: Record<string, number>;
}): ModelShape {
  let fileBytes = 0;
  for (const [dt, n] of Object.entries(s.dtypes)) fileBytes += n * (DTYPE_BYTES[dt.toUpperCase()] ?? 4);
  return {
    numLayers: s.numLayers,
    hiddenSize: s.hiddenSize,
    intermediateSize: s.intermediateSize,
    vocabSize: s.vocabSize,
    numHeads: s.numHeads,
    numKvHeads: s.numKvHeads || s.numHeads,
    gated: s.family === 'llama',
    params: s.totalParams,
    fileBytes,
  };
}

export interface TabMemory {
  /** Bytes a tab may use, as far as the page can tell. */
  bytes: number;
  /** Where the figure comes from, for the message. */
  source: string;
}

/** What a tab may use when the browser says nothing: 4 GiB, the usual ceiling of one renderer process. */
export const DEFAULT_TAB_BYTES = 4 * 2 ** 30;

/**
 * The memory a tab may use: the smaller of Chrome's JS heap limit (`performance.memory.jsHeapSizeLimit`)
 * and half the device's memory (`navigator.deviceMemory`, in GiB, capped at 8 by browsers), or
 * DEFAULT_TAB_BYTES when neither exists (Firefox, Safari).
 */
export function tabMemory(
  env: { jsHeapSizeLimit?: number | undefined; deviceMemoryGiB?: number | undefined } = browserMemoryInfo(),
): TabMemory {
  const c: TabMemory[] = [];
  if (env.jsHeapSizeLimit && env.jsHeapSizeLimit > 0)
    c.push({ bytes: env.jsHeapSizeLimit, source: "the browser's heap limit (performance.memory)" });
  if (env.deviceMemoryGiB && env.deviceMemoryGiB > 0)
    c.push({
      bytes: (env.deviceMemoryGiB / 2) * 2 ** 30,
      source: `half of the device's ${env.deviceMemoryGiB} GB (navigator.deviceMemory)`,
    });
  if (c.length === 0) return { bytes: DEFAULT_TAB_BYTES, source: 'the default for one tab (the browser does not say)' };
  return c.reduce((a, b) => (b.bytes < a.bytes ? b : a));
}

export function browserMemoryInfo(): { jsHeapSizeLimit?: number; deviceMemoryGiB?: number } {
  const g = globalThis as { performance?: { memory?: { jsHeapSizeLimit?: number } }; navigator?: { deviceMemory?: number } };
  const out: { jsHeapSizeLimit?: number; deviceMemoryGiB?: number } = {};
  const lim = g.performance?.memory?.jsHeapSizeLimit;
  if (typeof lim === 'number') out.jsHeapSizeLimit = lim;
  const dm = g.navigator?.deviceMemory;
  if (typeof dm === 'number') out.deviceMemoryGiB = dm;
  return out;
}

export const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GB`;

export interface FitVerdict {
  /** Estimated peak within the limit. */
  fits: boolean;
  /**
   * 'fits'; 'tight' when over the limit by less than the estimate's margin (it may still fit: warn, do
   * not stop); 'over' when over it even at the low end of the margin (ask before starting).
   */
  level: 'fits' | 'tight' | 'over';
  estimate: MemoryEstimate;
  limit: TabMemory;
  /** One sentence with the numbers (what is needed, what is allowed, the largest terms). */
  message: string;
}

/** Whether a job's estimated peak fits the tab, with a message that gives the numbers. */
export function fitVerdict(job: string, estimate: MemoryEstimate, limit: TabMemory): FitVerdict {
  const top = estimate.parts
    .slice(0, 3)
    .map((p) => `${p.what} ${gib(p.bytes)}`)
    .join(', ');
  const fits = estimate.bytes <= limit.bytes;
  const level = fits ? 'fits' : estimate.bytes * (1 - ESTIMATE_MARGIN) <= limit.bytes ? 'tight' : 'over';
  const margin = `±${Math.round(ESTIMATE_MARGIN * 100)}%`;
  const message = fits
    ? `${job}: estimated peak ${gib(estimate.bytes)} (${estimate.phase}) within ${gib(limit.bytes)}, ${limit.source}.`
    : `${job} ${level === 'over' ? 'will probably not fit' : 'may not fit'}: estimated peak ${gib(estimate.bytes)} in the ${estimate.phase} (${top}), ` +
      `over the ${gib(limit.bytes)} this tab may use (${limit.source}). The estimate is good to about ${margin}; ` +
      'a smaller batch or context, a lower keep, or the CLI (`gradot compress`) lowers or avoids the peak.';
  return { fits, level, estimate, limit, message };
}
