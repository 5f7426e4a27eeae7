/**
 * Shared types of the data layer. Kept free of imports from src/model and src/engine so the readers and
 * batcher run (and test) on their own; the real tokenizer satisfies `TextTokenizer` structurally.
 */

/**
 * The minimal tokenizer surface the data layer needs. `encode` must return the text's tokens only, with
 * NO special tokens (no BOS/EOS added by a post-processor): the data layer places BOS/EOS itself, and a
 * BOS inside an encoded answer would be trained on. Wrap a tokenizer whose encode adds them by default
 * (src/model's, for LLaMA-family models) with `withoutSpecialTokens` from ./tokenizer.
 */
export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  eosId: number | null;
  bosId: number | null;
  vocabSize: number;
}

/**
 * What a dataset is for:
 * - `lm`: `{"text"}` language-modelling text (loss on every token);
 * - `mc`: `{"context", "choices", "label"}` multiple choice, scored by log-likelihood;
 * - `sft`: `{"prompt", "answer"}` supervised tuning with loss on answer tokens only.
 */
export type DatasetKind = 'lm' | 'mc' | 'sft';

export type DatasetFormat = 'jsonl' | 'csv' | 'txt';

/** 1-based line in the source file where the record starts (null when it came from code, not a file). */
export type SourceLine = number | null;

export interface TextRecord {
  text: string;
  line: SourceLine;
}

export interface ChoiceRecord {
  context: string;
  choices: string[];
  /** Index of the correct choice, 0-based. */
  label: number;
  line: SourceLine;
}

export interface PromptRecord {
  prompt: string;
  answer: string;
  line: SourceLine;
}

interface DatasetBase {
  /** File name used in every error message about this dataset. */
  file: string;
  format: DatasetFormat;
}

export interface TextDataset extends DatasetBase {
  kind: 'lm';
  records: TextRecord[];
}
export interface ChoiceDataset extends DatasetBase {
  kind: 'mc';
  records: ChoiceRecord[];
}
export interface PromptDataset extends DatasetBase {
  kind: 'sft';
  records: PromptRecord[];
}

export type Dataset = TextDataset | ChoiceDataset | PromptDataset;

/** Value of a target position the loss ignores (PyTorch's `ignore_index` convention). */
export const IGNORE_INDEX = -100;
