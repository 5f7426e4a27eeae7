import { DatasetError } from './errors';
import { deriveSeed, epochOrderFrom, mulberry32, shuffleInPlace } from './random';
import { assertPlainTokenizer } from './tokenizer';
import {
  IGNORE_INDEX,
  type ChoiceDataset,
  type Dataset,
  type PromptDataset,
  type SourceLine,
  type TextDataset,
  type TextTokenizer,
} from './types';

/**
 * Records → token sequences → padded batches.
 *
 * Every example is stored as model input `ids` plus `targets` that are ALREADY SHIFTED:
 * `targets[t]` is the token the model must predict after reading `ids[0..t]` (i.e. the next token), or
 * IGNORE_INDEX (-100) where no loss is taken. The trainer therefore calls cross-entropy(logits, targets)
 * position by position, with no shifting of its own. A full sequence of n tokens gives n-1 inputs, so a
 * context of C tokens fits sequences of up to C+1 tokens.
 *
 * Over-long sequences (prompt/answer and multiple choice): the answer (or choice) is always kept whole and
 * the prompt (or context) is truncated FROM THE LEFT, keeping its end, which is what the answer depends on
 * most; a BOS token, if used, stays at position 0. If the answer/choice alone cannot fit with at least one
 * token before it to predict from, that is DatasetError 'too-long' naming the record's line. Language
 * modelling text is never truncated: it is cut into context-sized chunks.
 */

export interface EncodeOptions {
  /** Maximum model input length C; sequences of up to C+1 tokens fit. */
  contextLength: number;
  /** Put the tokenizer's BOS token first (LLaMA-style models); default false (GPT-2, OPT encode without). */
  addBos?: boolean;
  /**
   * Inserted between context and each choice (lm-eval's target_delimiter). Default '': our task files
   * carry their own spacing (`"choices": [" negative", " positive"]`, as public/data does), consistent
   * with prompt/answer records. Use ' ' for files whose choices are written lm-eval style, without it.
   */
  choiceDelimiter?: string;
  /** Inserted between prompt and answer; default '' (templates carry their own spacing). */
  answerDelimiter?: string;
  /** End answers with EOS so the model learns to stop; default true when the tokenizer has an EOS. */
  appendEos?: boolean;
  /**
   * Language modelling: 'concat' (default, for training) joins documents with EOS and cuts chunks of C+1
   * tokens overlapping by one, so every token after the first is a target exactly once. 'document'
   * (for perplexity, like lm-eval's rolling loglikelihood) windows each document on its own after a
   * BOS/EOS prefix token, so no document conditions on another and every token of it is scored once.
   */
  packing?: 'concat' | 'document';
  /** 'concat' packing: drop the last, shorter chunk unless it is the only one; default false. */
  dropRemainder?: boolean;
}

export interface Example {
  /** Model input tokens, at most contextLength. */
  ids: number[];
  /** Shifted targets, same length as ids (see module comment). */
  targets: number[];
  /** Line of the source record (for LM chunks: of the document the chunk starts in). */
  line: SourceLine;
}

export interface ChoiceExample extends Example {
  /** Index of the multiple-choice record in its dataset. */
  example: number;
  /** Index of the choice within the record. */
  choice: number;
  /** The record's correct choice. */
  label: number;
  /** Target positions [start, end) that hold the choice's tokens; every other target is IGNORE_INDEX. */
  span: [number, number];
  /** Length acc_norm divides by: code points without leading whitespace (see `choiceChars`). */
  chars: number;
}

export interface EncodeStats {
  examples: number;
  /** Examples whose prompt/context was cut from the left. */
  truncated: number;
  /** Prompt/context tokens dropped in total. */
  droppedTokens: number;
  /** Targets that carry loss (not IGNORE_INDEX). */
  targetTokens: number;
}

export interface Encoded<E extends Example = Example> {
  examples: E[];
  stats: EncodeStats;
}

function checkContext(C: number): void {
  if (!Number.isInteger(C) || C < 1) throw new RangeError(`contextLength must be a positive integer, got ${C}`);
}

function countTargets(examples: Example[]): number {
  let n = 0;
  for (const e of examples) for (const t of e.targets) if (t !== IGNORE_INDEX) n++;
  return n;
}

/** lm-eval's pair encoding: trailing whitespace of the context moves to the continuation, the pair is
 * encoded jointly (so BPE merges across the boundary are the natural ones), and the context's own
 * token count marks the split. If joint encoding does not start with the context's tokens, fall back to
 * encoding the two parts separately, which keeps the boundary exact. */
export function encodePair(tok: TextTokenizer, context: string, continuation: string): { ctx: number[]; cont: number[] } {
  const trimmed = context.replace(/\s+$/u, '');
  const moved = context.slice(trimmed.length);
  const cont = moved + continuation;
  const ctx = trimmed === '' ? [] : tok.encode(trimmed);
  const whole = tok.encode(trimmed + cont);
  const prefixOk = ctx.length <= whole.length && ctx.every((id, i) => whole[i] === id);
  if (prefixOk && whole.length > ctx.length) return { ctx, cont: whole.slice(ctx.length) };
  return { ctx, cont: tok.encode(cont) };
}

/**
 * The acc_norm length of a choice: code points (Python `len`) without leading whitespace. lm-eval divides
 * by len(choice) of choices written WITHOUT the delimiter space it inserts; our files write that space
 * into the choice, so stripping it gives the same number for the same task. Never zero: the reader
 * rejects blank choices.
 */
export function choiceChars(choice: string): number {
  let n = 0;
  for (const _ of choice.replace(/^\s+/u, '')) n++;
  return n;
}

interface PairSeq {
  ids: number[];
  targets: number[];
  truncated: boolean;
  dropped: number;
  /** target index where the continuation starts */
  start: number;
}

/**
 * Builds input/targets for prefix + continuation with loss on the continuation only, applying the
 * left-truncation policy. `startToken` is prepended when the prefix would otherwise be empty, so the
 * first continuation token has something to be predicted from.
 */
function buildPair(
  bos: number | null,
  ctx: number[],
  cont: number[],
  C: number,
  startToken: number | null,
  file: string,
  line: SourceLine,
  what: string,
): PairSeq {
  if (cont.length === 0) throw new DatasetError('bad-value', file, line, `${what} encodes to no tokens`);
  const lead = bos !== null ? [bos] : [];
  let body = ctx;
  if (lead.length + body.length === 0) {
    if (startToken === null) {
      throw new DatasetError('bad-value', file, line, `empty prompt/context and the tokenizer has no BOS or EOS token to start from`);
    }
    lead.push(startToken);
  }
  // The continuation must fit with at least one token before it: cont.length + 1 <= C + 1.
  if (cont.length > C) {
    throw new DatasetError(
      'too-long',
      file,
      line,
      `${what} is ${cont.length} tokens, more than the context of ${C} tokens can hold after at least one prompt token; ` +
        `shorten it or use a longer context`,
    );
  }
  const room = C + 1 - cont.length - lead.length; // prefix body tokens we can keep
  let dropped = 0;
  if (body.length > room) {
    const keep = Math.max(0, room);
    dropped = body.length - keep;
    body = body.slice(body.length - keep);
  }
  const full = lead.concat(body, cont);
  const prefixLen = lead.length + body.length;
  const n = full.length - 1;
  const ids = full.slice(0, n);
  const targets = new Array<number>(n);
  for (let t = 0; t < n; t++) targets[t] = t + 1 >= prefixLen ? (full[t + 1] as number) : IGNORE_INDEX;
  return { ids, targets, truncated: dropped > 0, dropped, start: prefixLen - 1 };
}

/** Prompt/answer records: loss on answer tokens (and the closing EOS) only. */
export function encodePromptAnswer(ds: PromptDataset, tok: TextTokenizer, opts: EncodeOptions): Encoded {
  const C = opts.contextLength;
  checkContext(C);
  assertPlainTokenizer(tok);
  const eos = (opts.appendEos ?? true) ? tok.eosId : null;
  const bos = opts.addBos ? requireBos(tok) : null;
  const delim = opts.answerDelimiter ?? '';
  const examples: Example[] = [];
  let truncated = 0;
  let droppedTokens = 0;
  for (const r of ds.records) {
    const { ctx, cont } = encodePair(tok, r.prompt, delim + r.answer);
    const answer = eos !== null ? cont.concat([eos]) : cont;
    const s = buildPair(
      bos,
      ctx,
      answer,
      C,
      tok.bosId ?? tok.eosId,
      ds.file,
      r.line,
      eos !== null ? 'the answer (with EOS)' : 'the answer',
    );
    if (s.truncated) truncated++;
    droppedTokens += s.dropped;
    examples.push({ ids: s.ids, targets: s.targets, line: r.line });
  }
  return { examples, stats: { examples: examples.length, truncated, droppedTokens, targetTokens: countTargets(examples) } };
}

/**
 * Multiple choice: one example per (record, choice) with targets on the choice's tokens only, so the
 * summed log-probability over non-ignored targets is the choice's log-likelihood (negated summed
 * cross-entropy), exactly what lm-eval's acc compares.
 */
export function encodeChoices(ds: ChoiceDataset, tok: TextTokenizer, opts: EncodeOptions): Encoded<ChoiceExample> {
  const C = opts.contextLength;
  checkContext(C);
  assertPlainTokenizer(tok);
  const bos = opts.addBos ? requireBos(tok) : null;
  const delim = opts.choiceDelimiter ?? '';
  const examples: ChoiceExample[] = [];
  let truncated = 0;
  let droppedTokens = 0;
  ds.records.forEach((r, ei) => {
    r.choices.forEach((choice, ci) => {
      const { ctx, cont } = encodePair(tok, r.context, delim + choice);
      const s = buildPair(bos, ctx, cont, C, tok.eosId ?? tok.bosId, ds.file, r.line, `choice ${ci}`);
      if (s.truncated) truncated++;
      droppedTokens += s.dropped;
      examples.push({
        ids: s.ids,
        targets: s.targets,
        line: r.line,
        example: ei,
        choice: ci,
        label: r.label,
        span: [s.start, s.ids.length],
        chars: choiceChars(choice),
      });
    });
  });
  return { examples, stats: { examples: examples.length, truncated, droppedTokens, targetTokens: countTargets(examples) } };
}

/** Language-modelling text, packed per `opts.packing`. */
export function encodeText(ds: TextDataset, tok: TextTokenizer, opts: EncodeOptions): Encoded {
  const C = opts.contextLength;
  checkContext(C);
  assertPlainTokenizer(tok);
  const bos = opts.addBos ? requireBos(tok) : null;
  const examples: Example[] = [];
  if ((opts.packing ?? 'concat') === 'document') {
    const prefix = bos ?? tok.bosId ?? tok.eosId;
    for (const r of ds.records) {
      const toks = tok.encode(r.text);
      if (toks.length === 0) continue;
      // Without a prefix token the first token has nothing to be predicted from and is not scored.
      const seq = prefix !== null ? [prefix, ...toks] : toks;
      for (let i = 0; i + 1 < seq.length; i += C) {
        const end = Math.min(i + C + 1, seq.length);
        examples.push({ ids: seq.slice(i, end - 1), targets: seq.slice(i + 1, end), line: r.line });
      }
    }
  } else {
    const sep = tok.eosId !== null ? [tok.eosId] : tok.encode('\n\n');
    const stream: number[] = [];
    const starts: { at: number; line: SourceLine }[] = [];
    for (const r of ds.records) {
      const toks = tok.encode(r.text);
      if (toks.length === 0) continue;
      starts.push({ at: stream.length, line: r.line });
      if (bos !== null) stream.push(bos);
      for (const t of toks) stream.push(t);
      for (const t of sep) stream.push(t);
    }
    let d = 0;
    for (let i = 0; i + 1 < stream.length; i += C) {
      const end = Math.min(i + C + 1, stream.length);
      if (end - i < C + 1 && opts.dropRemainder && examples.length > 0) break;
      while (d + 1 < starts.length && (starts[d + 1] as { at: number }).at <= i) d++;
      examples.push({ ids: stream.slice(i, end - 1), targets: stream.slice(i + 1, end), line: starts[d]?.line ?? null });
    }
  }
  if (examples.length === 0) throw new DatasetError('empty', ds.file, null, 'the text encodes to no tokens to predict');
  return { examples, stats: { examples: examples.length, truncated: 0, droppedTokens: 0, targetTokens: countTargets(examples) } };
}

/** Encodes any dataset by its kind. */
export function encodeDataset(ds: Dataset, tok: TextTokenizer, opts: EncodeOptions): Encoded {
  if (ds.kind === 'lm') return encodeText(ds, tok, opts);
  if (ds.kind === 'sft') return encodePromptAnswer(ds, tok, opts);
  return encodeChoices(ds, tok, opts);
}

function requireBos(tok: TextTokenizer): number {
  if (tok.bosId === null) throw new Error('addBos is set but the tokenizer has no BOS token');
  return tok.bosId;
}

// ---------------------------------------------------------------------------------------------------
// Batching

export interface Batch {
  /** [batchSize * seqLen] row-major model input, padded on the right with padId. */
  ids: Int32Array;
  /** [batchSize * seqLen] shifted targets; padding is IGNORE_INDEX. */
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Indices of the examples in this batch, row by row. */
  indices: number[];
  /** Targets that carry loss, for per-token averaging across batches. */
  targetTokens: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Token written into padded input positions; any valid id works since their targets are ignored and
   * padding is on the right of a causal model. Default 0. */
  padId?: number;
  /** Shuffle the example order (default false). The order is a function of (seed, epoch) only. */
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Custom randomness instead of (seed, epoch). */
  rand?: () => number;
  /** Drop a final batch smaller than batchSize (default false). */
  dropLast?: boolean;
  /**
   * Without shuffle: order examples longest first (stable), so each batch pads little, as lm-eval does
   * for evaluation. Results are per example (`Batch.indices`), so order does not change any metric.
   */
  sortByLength?: boolean;
  /** Round seqLen up to a multiple of this (fewer distinct shapes for GPU pipelines). */
  padToMultipleOf?: number;
  /** Pad every batch to exactly this length (static shapes); must be >= the longest example. */
  fixedLength?: number;
}

/** Pads a list of examples into one batch. */
export function makeBatch(examples: readonly Example[], indices: number[], opts: Omit<BatchOptions, 'batchSize'> = {}): Batch {
  const B = indices.length;
  if (B === 0) throw new RangeError('empty batch');
  let T = 0;
  for (const i of indices) T = Math.max(T, (examples[i] as Example).ids.length);
  if (opts.padToMultipleOf && opts.padToMultipleOf > 1) T = Math.ceil(T / opts.padToMultipleOf) * opts.padToMultipleOf;
  if (opts.fixedLength !== undefined) {
    if (opts.fixedLength < T) throw new RangeError(`fixedLength ${opts.fixedLength} is shorter than an example (${T})`);
    T = opts.fixedLength;
  }
  const ids = new Int32Array(B * T).fill(opts.padId ?? 0);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  let targetTokens = 0;
  indices.forEach((ex, b) => {
    const e = examples[ex] as Example;
    ids.set(e.ids, b * T);
    targets.set(e.targets, b * T);
    for (const t of e.targets) if (t !== IGNORE_INDEX) targetTokens++;
  });
  return { ids, targets, batchSize: B, seqLen: T, indices: [...indices], targetTokens };
}

/** The example order for one epoch. */
export function batchOrder(
  n: number,
  opts: Pick<BatchOptions, 'shuffle' | 'seed' | 'epoch' | 'rand' | 'sortByLength'>,
  lengths?: readonly number[],
): number[] {
  if (!opts.shuffle) {
    const order = Array.from({ length: n }, (_, i) => i);
    if (opts.sortByLength && lengths) order.sort((p, q) => (lengths[q] as number) - (lengths[p] as number) || p - q);
    return order;
  }
  if (opts.rand)
    return shuffleInPlace(
      Array.from({ length: n }, (_, i) => i),
      opts.rand,
    );
  return epochOrderFrom(n, mulberry32(deriveSeed(opts.seed ?? 0, opts.epoch ?? 0)));
}

/** All batches of one epoch, in order. Resuming at step s of epoch e is `makeBatches(...)[s]` onwards. */
export function makeBatches(examples: readonly Example[], opts: BatchOptions): Batch[] {
  const bs = opts.batchSize;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`batchSize must be a positive integer, got ${bs}`);
  const order = batchOrder(examples.length, opts, opts.sortByLength ? examples.map((e) => e.ids.length) : undefined);
  const out: Batch[] = [];
  for (let i = 0; i < order.length; i += bs) {
    const idx = order.slice(i, i + bs);
    if (idx.length < bs && opts.dropLast) break;
    out.push(makeBatch(examples, idx, opts));
  }
  return out;
}
