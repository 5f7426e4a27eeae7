/**
 * Evaluation of a decoder on a task, batched, through src/ot/metrics.ts's drivers:
 * - multiple choice: acc and acc_norm (lm-eval: summed log-likelihood of each choice; normalised by the
 *   choice's length in characters), with standard errors;
 * - prompt/answer: answer-token loss and perplexity, plus greedy exact match of the whole answer;
 * - text: token-level perplexity (documents windowed on their own).
 *
 * Per-position negative log-likelihoods come from the backend's cross-entropy (a [B·T] read per batch);
 * logits are read back only when exact match needs the argmax, so large vocabularies stay on the device.
 */
import type { FloatArray } from '../../engine/backend';
import * as ops from '../../engine/ops';
import { noGrad, tidy, type Tensor } from '../../engine/tensor';
import type { Decoder } from '../../model/decoder';
import { encodeDataset, type Batch, type ChoiceExample, type EncodeOptions, type Example } from '../../data/batch';
import type { Dataset, DatasetKind, TextTokenizer } from '../../data/types';
import { IGNORE_INDEX } from '../../data/types';
import { correctString, evaluateMultipleChoice, evaluatePerplexity, type BatchRowScores, type ScoreBatch } from './metrics';
import type { LoraAdapter } from './lora';
import { targetLogits, type TargetLogits } from './target-logits';
import { NonFiniteError } from '../../faults/errors';

export interface EncodedTask {
  kind: DatasetKind;
  file: string;
  examples: Example[] | ChoiceExample[];
}

export interface EvalOptions {
  batchSize?: number;
  padId?: number;
  /** LoRA attached for every forward (else the decoder as is). */
  lora?: LoraAdapter | null;
  /** Prompt/answer: also compute greedy exact match (reads logits back). Default true. */
  exactMatch?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalMetrics {
  kind: DatasetKind;
  file: string;
  /** Records (mc) or examples (sft, lm windows) scored. */
  n: number;
  /** Token-mean NLL over scored targets (prompt/answer and text). */
  loss?: number;
  perplexity?: number;
  tokens?: number;
  acc?: number;
  accStderr?: number;
  accNorm?: number;
  accNormStderr?: number;
  /** Multiple choice: per-item acc / acc_norm as '0'/'1' strings in test-file order, so Δ can be paired. */
  correct?: string;
  correctNorm?: string;
  exactMatch?: number;
  seconds: number;
}

/** Encodes a dataset for evaluation (text windowed per document, like lm-eval's rolling loglikelihood). */
export function encodeTask(ds: Dataset, tok: TextTokenizer, opts: EncodeOptions): EncodedTask {
  const enc = encodeDataset(ds, tok, ds.kind === 'lm' ? { ...opts, packing: 'document' } : opts);
  return { kind: ds.kind, file: ds.file, examples: enc.examples as Example[] | ChoiceExample[] };
}

/** One trip through the event loop: in a worker, a cancel or pause message (comlink) is only delivered
 *  between macrotasks, and a loop of resolved promises never yields one. Used only when a job can be
 *  controlled (a signal or pauser was given). */
const nextMacrotask = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** Per-row summed log-likelihood of a batch on the device; logits read only for greedy match. */
export function batchScorer(dec: Decoder, o: Pick<EvalOptions, 'lora' | 'signal'> & { greedy?: boolean }): ScoreBatch {
  return async (b: Batch): Promise<BatchRowScores> => {
    if (o.signal) await nextMacrotask();
    o.signal?.throwIfAborted();
    const { batchSize: B, seqLen: T } = b;
    // Everything the forward made is freed with the scope except what is read below, which must be
    // returned (not assigned to an outer variable): the per-row losses, and the logits when greedy needs them.
    const { nll, got } = tidy(() =>
      noGrad(() => {
        const run = (): { nll: Tensor; got: Omit<TargetLogits, 'logits'> & { logits: Tensor | null } } => {
          const tl = targetLogits(dec, b.ids, b.targets, B, T);
          const nll = ops.crossEntropyRows(tl.logits, tl.targets, IGNORE_INDEX);
          return { nll, got: { ...tl, logits: o.greedy ? tl.logits : null } };
        };
        return o.lora ? o.lora.with(dec, run) : run();
      }),
    );
    let rows: FloatArray;
    try {
      rows = await nll.read();
    } catch (e) {
      got.logits?.free();
      throw e;
    } finally {
      nll.free();
    }
    const sumLogProb = new Float64Array(B);
    const tokens = new Int32Array(B);
    const n = got.targets.length;
    for (let k = 0; k < n; k++) {
      if (got.targets[k] === IGNORE_INDEX) continue;
      const r = Math.floor(got.positions[k]! / T);
      // NaN logits would score every choice NaN and report "acc 0.00%" as if it were a measurement.
      if (!Number.isFinite(rows[k]!)) {
        throw new NonFiniteError(
          'logits',
          `evaluation: the model's logits are not finite (token loss ${rows[k]}); its weights hold NaN or overflow — no metric can be computed`,
        );
      }
      sumLogProb[r]! -= rows[k]!;
      tokens[r]!++;
    }
    let greedyMatch: boolean[] | undefined;
    if (got.logits) {
      const V = dec.spec.vocabSize;
      let L: FloatArray;
      try {
        L = await got.logits.read();
      } finally {
        got.logits.free();
      }
      const ok = Array.from({ length: B }, (_, r) => tokens[r]! > 0);
      for (let k = 0; k < n; k++) {
        const y = got.targets[k]!;
        if (y === IGNORE_INDEX) continue;
        const off = k * V;
        let am = 0;
        for (let v = 1; v < V; v++) if (L[off + v]! > L[off + am]!) am = v;
        if (am !== y) ok[Math.floor(got.positions[k]! / T)] = false;
      }
      greedyMatch = ok;
    }
    return greedyMatch ? { sumLogProb, tokens, greedyMatch } : { sumLogProb, tokens };
  };
}

/** Evaluates `dec` on an encoded task. */
export async function evaluate(dec: Decoder, task: EncodedTask, opts: EvalOptions = {}): Promise<EvalMetrics> {
  const t0 = performance.now();
  const batchSize = opts.batchSize ?? 8;
  if (task.examples.length === 0) throw new Error(`${task.file}: nothing to evaluate`);
  if (task.kind === 'mc') {
    const ex = task.examples as ChoiceExample[];
    const score = batchScorer(dec, { lora: opts.lora, signal: opts.signal });
    const m = await evaluateMultipleChoice(ex, score, { batchSize, padId: opts.padId, onProgress: opts.onProgress });
    return {
      kind: 'mc',
      file: task.file,
      n: m.n,
      acc: m.acc,
      accStderr: m.accStderr,
      accNorm: m.accNorm,
      accNormStderr: m.accNormStderr,
      correct: correctString(m.results, 'acc'),
      correctNorm: correctString(m.results, 'accNorm'),
      seconds: (performance.now() - t0) / 1000,
    };
  }
  const greedy = task.kind === 'sft' && (opts.exactMatch ?? true);
  const score = batchScorer(dec, { lora: opts.lora, signal: opts.signal, greedy });
  const m = await evaluatePerplexity(task.examples, score, { batchSize, padId: opts.padId, onProgress: opts.onProgress });
  return {
    kind: task.kind,
    file: task.file,
    n: task.examples.length,
    loss: m.nll,
    perplexity: m.perplexity,
    tokens: m.tokens,
    ...(m.exactMatch ? { exactMatch: m.exactMatch.mean } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The headline number of a result and whether higher is better (acc for mc, loss for the others). */
export function headline(m: EvalMetrics): { metric: 'acc' | 'loss'; value: number; higherIsBetter: boolean } {
  return m.kind === 'mc'
    ? { metric: 'acc', value: m.acc!, higherIsBetter: true }
    : { metric: 'loss', value: m.loss!, higherIsBetter: false };
}
