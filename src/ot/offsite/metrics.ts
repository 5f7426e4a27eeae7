import { makeBatches, type Batch, type ChoiceExample, type Example } from '../../data/batch';
import { IGNORE_INDEX } from '../../data/types';

/**
 * Evaluation metrics, matching lm-evaluation-harness where it defines them.
 *
 * Multiple choice (lm-eval `output_type: multiple_choice`): each choice is scored by the summed
 * log-likelihood of its tokens given the context (context + target_delimiter " " + choice).
 *   acc      = [argmax_i LL_i == label]
 *   acc_norm = [argmax_i LL_i / len(choice_i) == label]
 * where lm-eval computes `completion_len = np.array([float(len(i)) for i in choices])` over the choice
 * strings WITHOUT the delimiter. `len` of a Python str counts Unicode code points, so although lm-eval's
 * docs call acc_norm "byte-length normalised", the divisor is code points; we use code points too
 * (`choiceLength`), so the two agree on non-ASCII choices. Our task files write the delimiter space into
 * the choice (" positive"), so the data layer strips leading whitespace before counting
 * (data/batch `choiceChars`), giving lm-eval's number for the same task. np.argmax breaks ties to the
 * first index; so do we.
 * Aggregation is the mean over examples, with standard error sample_stddev (n-1 denominator) / sqrt(n),
 * as lm-eval's `mean_stderr`.
 *
 * Perplexity: exp(total NLL / total predicted tokens), i.e. token-level perplexity pooled over the whole
 * set (not a mean of per-document perplexities).
 */

/** Length lm-eval's acc_norm divides by: Unicode code points (Python `len`), not UTF-16 units. */
export function choiceLength(choice: string): number {
  let n = 0;
  for (const _ of choice) n++;
  return n;
}

/** Index of the largest value, first one on ties (np.argmax). NaN never wins. */
export function argmax(xs: readonly number[]): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i] as number;
    if (best < 0 || v > bestV) {
      if (Number.isNaN(v)) continue;
      best = i;
      bestV = v;
    }
  }
  return best;
}

export interface ChoiceResult {
  label: number;
  /** argmax of raw log-likelihood */
  pred: number;
  /** argmax of log-likelihood / choice length */
  predNorm: number;
  acc: number;
  accNorm: number;
}

/** Scores one multiple-choice example from its per-choice summed log-likelihoods and choice lengths. */
export function scoreChoices(logLikelihoods: readonly number[], lengths: readonly number[], label: number): ChoiceResult {
  const k = logLikelihoods.length;
  if (k === 0 || lengths.length !== k) throw new RangeError(`need one length per choice (got ${k} scores, ${lengths.length} lengths)`);
  if (!Number.isInteger(label) || label < 0 || label >= k) throw new RangeError(`label ${label} out of range for ${k} choices`);
  for (const l of lengths) if (!(l > 0)) throw new RangeError(`choice lengths must be positive, got ${l}`);
  const pred = argmax(logLikelihoods);
  const predNorm = argmax(logLikelihoods.map((ll, i) => ll / (lengths[i] as number)));
  return { label, pred, predNorm, acc: pred === label ? 1 : 0, accNorm: predNorm === label ? 1 : 0 };
}

export interface MeanStderr {
  n: number;
  mean: number;
  /** sample standard deviation / sqrt(n); NaN when n < 2 */
  stderr: number;
}

export function meanStderr(xs: readonly number[]): MeanStderr {
  const n = xs.length;
  if (n === 0) return { n, mean: NaN, stderr: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, stderr: NaN };
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  return { n, mean, stderr: Math.sqrt(ss / (n - 1)) / Math.sqrt(n) };
}

/**
 * Mean and standard error of per-item differences b_i − a_i between two evaluations of the same items,
 * each given as a '0'/'1' string in item order (EvalMetrics.correct). Pairing is what makes a Δ between
 * two models on one test set meaningful: two 95% accuracies that disagree on 5 items have a Δ error
 * near 0.4 points, not the 1.4 of two independent samples.
 */
export function pairedDifference(a: string, b: string): MeanStderr {
  if (a.length !== b.length) throw new RangeError(`paired evaluations differ in length (${a.length} vs ${b.length} items)`);
  const d: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i) - 48,
      y = b.charCodeAt(i) - 48;
    if ((x !== 0 && x !== 1) || (y !== 0 && y !== 1)) throw new RangeError(`item ${i}: per-item results must be '0' or '1'`);
    d.push(y - x);
  }
  return meanStderr(d);
}

/** Per-item correctness as a compact '0'/'1' string (item order), for pairing evaluations later. */
export function correctString(results: readonly ChoiceResult[], key: 'acc' | 'accNorm'): string {
  return results.map((r) => (r[key] ? '1' : '0')).join('');
}

export interface MultipleChoiceMetrics {
  n: number;
  acc: number;
  accStderr: number;
  accNorm: number;
  accNormStderr: number;
}

export function aggregateMultipleChoice(results: readonly ChoiceResult[]): MultipleChoiceMetrics {
  const a = meanStderr(results.map((r) => r.acc));
  const an = meanStderr(results.map((r) => r.accNorm));
  return { n: results.length, acc: a.mean, accStderr: a.stderr, accNorm: an.mean, accNormStderr: an.stderr };
}

/** One scored (example, choice) row, e.g. a data/batch ChoiceExample plus the model's summed log-prob. */
export interface ChoiceRow {
  example: number;
  choice: number;
  label: number;
  /** choice length for acc_norm (ChoiceExample.chars) */
  chars: number;
  logLikelihood: number;
}

/** Groups per-choice rows (in any order) into per-example results, checking every choice is present. */
export function scoreChoiceRows(rows: readonly ChoiceRow[]): ChoiceResult[] {
  const byExample = new Map<number, ChoiceRow[]>();
  for (const r of rows) {
    const list = byExample.get(r.example);
    if (list) list.push(r);
    else byExample.set(r.example, [r]);
  }
  const out: ChoiceResult[] = [];
  for (const ex of [...byExample.keys()].sort((p, q) => p - q)) {
    const list = (byExample.get(ex) as ChoiceRow[]).slice().sort((p, q) => p.choice - q.choice);
    list.forEach((r, i) => {
      if (r.choice !== i) throw new Error(`example ${ex}: choice ${i} missing or duplicated`);
      if (r.label !== (list[0] as ChoiceRow).label) throw new Error(`example ${ex}: inconsistent labels`);
    });
    out.push(
      scoreChoices(
        list.map((r) => r.logLikelihood),
        list.map((r) => r.chars),
        (list[0] as ChoiceRow).label,
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Perplexity

export function perplexity(sumNll: number, tokens: number): number {
  if (!(tokens > 0)) throw new RangeError(`perplexity needs at least one token, got ${tokens}`);
  return Math.exp(sumNll / tokens);
}

export interface PerplexityMetrics {
  tokens: number;
  /** mean NLL per token, nats */
  nll: number;
  perplexity: number;
}

/** Pools (summed NLL, token count) parts, e.g. one per batch, into token-level perplexity. */
export function aggregatePerplexity(parts: readonly { sumNll: number; tokens: number }[]): PerplexityMetrics {
  let s = 0;
  let t = 0;
  for (const p of parts) {
    s += p.sumNll;
    t += p.tokens;
  }
  return { tokens: t, nll: s / t, perplexity: perplexity(s, t) };
}

/** Bits per UTF-8 byte of the scored text: tokenizer-independent, comparable across vocabularies. */
export function bitsPerByte(sumNll: number, bytes: number): number {
  return sumNll / (bytes * Math.LN2);
}

// ---------------------------------------------------------------------------------------------------
// Per-row scores from logits (CPU reference)

export interface RowScores {
  /** per row: Σ log p(target) over non-ignored targets (a choice's log-likelihood; −NLL for text) */
  sumLogProb: Float64Array;
  /** per row: number of non-ignored targets */
  tokens: Int32Array;
  /** per row: every non-ignored target is the argmax (greedy exact match); rows without targets: false */
  greedyMatch: boolean[];
  /** per row: number of non-ignored targets that are the argmax */
  greedyCorrect: Int32Array;
}

/**
 * CPU reference for the evaluation read-out of a batch: logits [B*T*V] row-major and shifted targets
 * [B*T] (IGNORE_INDEX where no loss). Log-softmax in float64 with the max subtracted. Argmax ties go to
 * the lower id, so a target tied for the top counts as greedy only if it is the first.
 */
export function rowScoresFromLogits(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  batchSize: number,
  seqLen: number,
  vocab: number,
): RowScores {
  if (logits.length !== batchSize * seqLen * vocab) throw new RangeError('logits size must be B*T*V');
  if (targets.length !== batchSize * seqLen) throw new RangeError('targets size must be B*T');
  const sumLogProb = new Float64Array(batchSize);
  const tokens = new Int32Array(batchSize);
  const greedyCorrect = new Int32Array(batchSize);
  for (let b = 0; b < batchSize; b++) {
    for (let t = 0; t < seqLen; t++) {
      const y = targets[b * seqLen + t] as number;
      if (y === IGNORE_INDEX) continue;
      if (y < 0 || y >= vocab) throw new RangeError(`target ${y} outside vocabulary of ${vocab}`);
      const off = (b * seqLen + t) * vocab;
      let mx = -Infinity;
      let am = 0;
      for (let v = 0; v < vocab; v++) {
        const z = logits[off + v] as number;
        if (z > mx) {
          mx = z;
          am = v;
        }
      }
      let se = 0;
      for (let v = 0; v < vocab; v++) se += Math.exp((logits[off + v] as number) - mx);
      sumLogProb[b]! += (logits[off + y] as number) - mx - Math.log(se);
      tokens[b] = (tokens[b] as number) + 1;
      if (am === y) greedyCorrect[b] = (greedyCorrect[b] as number) + 1;
    }
  }
  const greedyMatch = Array.from(tokens, (n, b) => n > 0 && greedyCorrect[b] === n);
  return { sumLogProb, tokens, greedyMatch, greedyCorrect };
}

/** Prompt/answer accuracy by exact greedy match: the share of examples whose whole answer is argmax. */
export function exactMatchAccuracy(matches: readonly boolean[]): MeanStderr {
  return meanStderr(matches.map((m) => (m ? 1 : 0)));
}

// ---------------------------------------------------------------------------------------------------
// Batched evaluation drivers (model-agnostic: the caller supplies per-row scores for a batch)

/** Per-row read-out of a model on one batch, e.g. `rowScoresFromLogits` or a GPU reduction. */
export interface BatchRowScores {
  sumLogProb: ArrayLike<number>;
  tokens: ArrayLike<number>;
  greedyMatch?: readonly boolean[];
}

export type ScoreBatch = (batch: Batch) => Promise<BatchRowScores> | BatchRowScores;

export interface EvalBatchOptions {
  batchSize: number;
  padId?: number;
  /** Called after each batch with (batches done, total). */
  onProgress?: (done: number, total: number) => void;
}

function checkRows(batch: Batch, s: BatchRowScores): void {
  if (s.sumLogProb.length !== batch.batchSize || s.tokens.length !== batch.batchSize) {
    throw new RangeError(`scorer returned ${s.sumLogProb.length} rows for a batch of ${batch.batchSize}`);
  }
}

/** Multiple-choice accuracy (acc, acc_norm) over encoded choice examples, longest batches first. */
export async function evaluateMultipleChoice(
  examples: readonly ChoiceExample[],
  score: ScoreBatch,
  opts: EvalBatchOptions,
): Promise<MultipleChoiceMetrics & { results: ChoiceResult[] }> {
  const batches = makeBatches(examples, { batchSize: opts.batchSize, padId: opts.padId, sortByLength: true });
  const rows: ChoiceRow[] = [];
  for (let i = 0; i < batches.length; i++) {
    const b = batches[i] as Batch;
    const s = await score(b);
    checkRows(b, s);
    b.indices.forEach((ex, r) => {
      const e = examples[ex] as ChoiceExample;
      rows.push({ example: e.example, choice: e.choice, label: e.label, chars: e.chars, logLikelihood: s.sumLogProb[r] as number });
    });
    opts.onProgress?.(i + 1, batches.length);
  }
  const results = scoreChoiceRows(rows);
  return { ...aggregateMultipleChoice(results), results };
}

/** Token-level perplexity over encoded text (or any examples), plus greedy exact match per example. */
export async function evaluatePerplexity(
  examples: readonly Example[],
  score: ScoreBatch,
  opts: EvalBatchOptions,
): Promise<PerplexityMetrics & { exactMatch: MeanStderr | null }> {
  const batches = makeBatches(examples, { batchSize: opts.batchSize, padId: opts.padId, sortByLength: true });
  const parts: { sumNll: number; tokens: number }[] = [];
  const matches: boolean[] = [];
  let haveMatch = true;
  for (let i = 0; i < batches.length; i++) {
    const b = batches[i] as Batch;
    const s = await score(b);
    checkRows(b, s);
    for (let r = 0; r < b.batchSize; r++) parts.push({ sumNll: -(s.sumLogProb[r] as number), tokens: s.tokens[r] as number });
    if (s.greedyMatch) matches.push(...s.greedyMatch);
    else haveMatch = false;
    opts.onProgress?.(i + 1, batches.length);
  }
  return { ...aggregatePerplexity(parts), exactMatch: haveMatch ? exactMatchAccuracy(matches) : null };
}
