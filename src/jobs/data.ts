/**
 * Data policies every job shares, so the CLI and the studio encode the same file the same way:
 * - BOS: LLaMA-family models start every sequence with the tokenizer's beginning-of-text token, when the
 *   tokenizer has one (the demo model was pretrained and evaluated that way); other families never do.
 * - Padding: batches are right-padded with the end-of-text id (or 0). Padded positions carry no target and
 *   attention is causal, so the pad id never changes a number; one rule keeps batches byte-identical.
 * - Support data (the gradient pass and the support loss of an emulator build) is language-modelling text:
 *   every record as text (prompt+answer, context+correct choice), packed into full `seqLen`-token chunks,
 *   so every position has a target and no compute goes to padding.
 */
import { encodeText, makeBatches, type Example } from '../data/batch';
import type { Dataset, TextDataset, TextTokenizer } from '../data/types';
import type { SupportBatch } from '../ot/emulator/support';
import { readTaskFile, type TaskFile } from '../ot/offsite/task-data';

export type { TaskFile } from '../ot/offsite/task-data';

/** Tokenizer files that travel with an emulator package, so the data owner can encode without the model. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'];

/** BOS first for LLaMA-family models whose tokenizer has one. */
export function defaultAddBos(spec: { family: string }, tok: Pick<TextTokenizer, 'bosId'>): boolean {
  return spec.family === 'llama' && tok.bosId !== null;
}

/** The id right padding uses (see the file comment: it never changes a number). */
export function padIdOf(tok: Pick<TextTokenizer, 'eosId'>): number {
  return tok.eosId ?? 0;
}

/** Any dataset as language-modelling text (prompt+answer, context+correct choice). */
export function datasetText(ds: Dataset): TextDataset {
  if (ds.kind === 'lm') return ds;
  const records =
    ds.kind === 'sft'
      ? ds.records.map((r) => ({ text: r.prompt + r.answer, line: r.line }))
      : ds.records.map((r) => ({ text: r.context + r.choices[r.label]!, line: r.line }));
  return { kind: 'lm', file: ds.file, format: ds.format, records };
}

/** A support (or held-out) file as full `seqLen`-token chunks of its text; DatasetError names the file. */
export function supportChunks(file: TaskFile, tok: TextTokenizer, o: { seqLen: number; addBos: boolean }): Example[] {
  return encodeText(datasetText(readTaskFile(file)), tok, { contextLength: o.seqLen, addBos: o.addBos, dropRemainder: true }).examples;
}

/** Chunks -> the support pass's batches (in order, `batch` chunks each, the last one possibly smaller). */
export function supportBatches(chunks: readonly Example[], batch: number, padId: number): SupportBatch[] {
  return makeBatches(chunks, { batchSize: batch, padId }).map((b) => ({ ids: b.ids, targets: b.targets, B: b.batchSize, T: b.seqLen }));
}
