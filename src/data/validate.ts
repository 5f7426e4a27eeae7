import { encodePair, type EncodeOptions } from './batch';
import { assertPlainTokenizer } from './tokenizer';
import type { Dataset, DatasetFormat, DatasetKind, TextTokenizer } from './types';

/** Summary of a dataset for the UI preview and the CLI, computed without a model. */

export interface LengthStats {
  min: number;
  max: number;
  mean: number;
  median: number;
  p95: number;
  total: number;
}

export interface TokenSummary extends LengthStats {
  /** Records tokenized (the first `sampled` of the dataset; all when equal to count). */
  sampled: number;
  contextLength: number | null;
  /** Records whose full sequence (prefix + answer/choice) exceeds contextLength+1 tokens: they will be
   * left-truncated (prompt/answer, multiple choice) or split into chunks (text). */
  overContext: number;
  /** Records that cannot fit at all because the answer/choice alone exceeds the context ('too-long'). */
  tooLong: number;
  /** Text: number of training chunks the sampled records make (concat packing). */
  chunks: number | null;
}

export interface DatasetSummary {
  file: string;
  format: DatasetFormat;
  kind: DatasetKind;
  count: number;
  /** Characters (code points) per record: text; prompt+answer; context+longest choice. */
  chars: LengthStats;
  /** Multiple choice: records per correct index, and the share of the most common one. */
  labels: { counts: number[]; majorityFraction: number } | null;
  /** Multiple choice: fewest and most choices per record. */
  choices: { min: number; max: number } | null;
  /** Present when a tokenizer was given. */
  tokens: TokenSummary | null;
  /** Exact duplicate records. */
  duplicates: number;
  warnings: string[];
}

export interface ValidateOptions {
  tokenizer?: TextTokenizer;
  contextLength?: number;
  /** Tokenize at most this many records (tokenizing a large file for a preview is slow); default 2000. */
  maxTokenized?: number;
  /** The encoding settings training will use, so token counts match. */
  encode?: Pick<EncodeOptions, 'addBos' | 'appendEos' | 'choiceDelimiter' | 'answerDelimiter'>;
}

function cp(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function lengthStats(xs: readonly number[]): LengthStats {
  if (xs.length === 0) return { min: 0, max: 0, mean: 0, median: 0, p95: 0, total: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const total = s.reduce((a, b) => a + b, 0);
  // Nearest-rank percentiles: always an observed value, which reads better in a preview.
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  return { min: s[0] as number, max: s[s.length - 1] as number, mean: total / s.length, median: rank(0.5), p95: rank(0.95), total };
}

export function validateDataset(ds: Dataset, opts: ValidateOptions = {}): DatasetSummary {
  const warnings: string[] = [];
  const n = ds.records.length;
  const seen = new Set<string>();
  let duplicates = 0;
  const chars: number[] = [];
  let labels: DatasetSummary['labels'] = null;
  let choices: DatasetSummary['choices'] = null;

  const note = (key: string) => {
    if (seen.has(key)) duplicates++;
    else seen.add(key);
  };

  if (ds.kind === 'lm') {
    let empty = 0;
    for (const r of ds.records) {
      chars.push(cp(r.text));
      if (r.text.trim() === '') empty++;
      note(r.text);
    }
    if (empty) warnings.push(`${empty} of ${n} documents are empty or whitespace only`);
  } else if (ds.kind === 'sft') {
    let emptyAnswers = 0;
    for (const r of ds.records) {
      chars.push(cp(r.prompt) + cp(r.answer));
      if (r.answer.trim() === '') emptyAnswers++;
      note(JSON.stringify([r.prompt, r.answer]));
    }
    if (emptyAnswers) warnings.push(`${emptyAnswers} of ${n} answers are empty: those records only teach the end-of-text token`);
  } else {
    let maxChoices = 0;
    let minChoices = Infinity;
    for (const r of ds.records) {
      maxChoices = Math.max(maxChoices, r.choices.length);
      minChoices = Math.min(minChoices, r.choices.length);
      chars.push(cp(r.context) + Math.max(...r.choices.map(cp)));
      note(JSON.stringify([r.context, r.choices, r.label]));
    }
    const counts = new Array<number>(maxChoices).fill(0);
    for (const r of ds.records) counts[r.label] = (counts[r.label] ?? 0) + 1;
    const majorityFraction = Math.max(...counts) / n;
    labels = { counts, majorityFraction };
    choices = { min: minChoices, max: maxChoices };
    if (minChoices !== maxChoices) warnings.push(`records have between ${minChoices} and ${maxChoices} choices`);
    if (n >= 10 && majorityFraction > Math.max(0.5, 2 / maxChoices)) {
      const top = counts.indexOf(Math.max(...counts));
      warnings.push(
        `labels are unbalanced: ${(100 * majorityFraction).toFixed(0)}% of records have label ${top}, ` +
          `so always answering ${top} scores that accuracy`,
      );
    }
  }
  if (duplicates) warnings.push(`${duplicates} records are exact duplicates of earlier ones`);
  if (n < 10) warnings.push(`only ${n} record${n === 1 ? '' : 's'}: metrics on so few are mostly noise`);

  const tokens = opts.tokenizer ? tokenSummary(ds, opts.tokenizer, opts, warnings) : null;
  return {
    file: ds.file,
    format: ds.format,
    kind: ds.kind,
    count: n,
    chars: lengthStats(chars),
    labels,
    choices,
    tokens,
    duplicates,
    warnings,
  };
}

function tokenSummary(ds: Dataset, tok: TextTokenizer, opts: ValidateOptions, warnings: string[]): TokenSummary {
  assertPlainTokenizer(tok);
  const C = opts.contextLength ?? null;
  const limit = Math.min(ds.records.length, opts.maxTokenized ?? 2000);
  const enc = opts.encode ?? {};
  const bos = enc.addBos && tok.bosId !== null ? 1 : 0;
  const eos = (enc.appendEos ?? true) && tok.eosId !== null ? 1 : 0;
  const lens: number[] = [];
  let overContext = 0;
  let tooLong = 0;
  let chunks: number | null = null;
  let firstTooLong: number | null = null;
  for (let i = 0; i < limit; i++) {
    if (ds.kind === 'lm') {
      const r = ds.records[i] as (typeof ds.records)[number];
      const len = bos + tok.encode(r.text).length + 1; // +1: the separator between documents
      lens.push(len);
      if (C !== null && len > C + 1) overContext++;
    } else if (ds.kind === 'sft') {
      const r = ds.records[i] as (typeof ds.records)[number];
      const { ctx, cont } = encodePair(tok, r.prompt, (enc.answerDelimiter ?? '') + r.answer);
      const ans = cont.length + eos;
      const len = Math.max(1, bos + ctx.length) + ans;
      lens.push(len);
      if (C !== null && ans > C) {
        tooLong++;
        firstTooLong ??= r.line;
      } else if (C !== null && len > C + 1) overContext++;
    } else {
      const r = ds.records[i] as (typeof ds.records)[number];
      let len = 0;
      let bad = false;
      for (const c of r.choices) {
        const { ctx, cont } = encodePair(tok, r.context, (enc.choiceDelimiter ?? '') + c);
        len = Math.max(len, Math.max(1, bos + ctx.length) + cont.length);
        if (C !== null && cont.length > C) bad = true;
      }
      lens.push(len);
      if (bad) {
        tooLong++;
        firstTooLong ??= r.line;
      } else if (C !== null && len > C + 1) overContext++;
    }
  }
  const stats = lengthStats(lens);
  if (ds.kind === 'lm' && C !== null) {
    chunks = Math.max(1, Math.ceil((stats.total - 1) / C));
    if (stats.total < C + 1) warnings.push(`the text is ${stats.total} tokens, less than one context window of ${C}`);
  }
  const sampledNote = limit < ds.records.length ? ` (of the first ${limit} records)` : '';
  if (C !== null && ds.kind !== 'lm' && overContext) {
    warnings.push(
      `${overContext} records${sampledNote} are longer than the context of ${C} tokens; their ${ds.kind === 'sft' ? 'prompts' : 'contexts'} will be cut from the left`,
    );
  }
  if (tooLong) {
    const where = firstTooLong !== null ? `, first at line ${firstTooLong}` : '';
    warnings.push(
      `${tooLong} records${sampledNote} have an ${ds.kind === 'sft' ? 'answer' : 'choice'} longer than the context of ${C} tokens${where}: training/evaluation will stop on them`,
    );
  }
  if (ds.kind === 'sft' && tok.eosId === null) warnings.push('the tokenizer has no EOS token, so answers will not teach the model to stop');
  return { ...stats, sampled: limit, contextLength: C, overContext, tooLong, chunks };
}
