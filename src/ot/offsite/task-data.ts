/**
 * Task files -> tuning and evaluation examples, with every data problem raised BEFORE any training starts
 * (DatasetError names the file and line: empty file, a line that is not JSON, a missing field, bytes that are
 * not UTF-8, an answer or choice longer than the context). Over-long prompts/contexts are cut from the
 * left (src/data's documented policy) and counted in the stats.
 *
 * Training on a multiple-choice task uses each record as prompt = context, answer = the correct choice,
 * loss on the answer only (OT's recipe for its lm-eval tasks) and no EOS, so training and scoring look at
 * the same tokens.
 */
import { encodeDataset, encodePromptAnswer, type Encoded, type Example } from '../../data/batch';
import { readDataset, type ReadOptions } from '../../data/read';
import { splitDataset } from '../../data/split';
import type { Dataset, PromptDataset, TextTokenizer } from '../../data/types';
import { encodeTask, type EncodedTask } from './evaluate';

export interface TaskFile {
  /** Name used in error messages (a path or a file name). */
  name: string;
  bytes: Uint8Array;
  /** Already read (streamed from disk, no whole-file copy): used instead of `bytes`. */
  dataset?: Dataset;
}

export interface PrepareOptions {
  contextLength: number;
  addBos?: boolean;
  /** Held-out share of train when no validation file is given (default 0.05, OT's; 0 = no validation). */
  validFraction?: number;
  seed?: number;
  read?: ReadOptions;
}

export interface PreparedTraining {
  kind: Dataset['kind'];
  train: Example[];
  valid: Example[];
  stats: { train: Encoded['stats']; valid: Encoded['stats'] | null; validFrom: 'file' | 'split' | 'none' };
}

export function readTaskFile(f: TaskFile, opts: ReadOptions = {}): Dataset {
  if (f.dataset) {
    if (Object.keys(opts).length > 0) throw new Error(`${f.name}: read options need the file's bytes, not an already-read dataset`);
    return f.dataset;
  }
  return readDataset(f.bytes, f.name, opts);
}

/** Multiple choice -> prompt/answer on the correct choice (identity for the other kinds). */
export function asTrainingSet(ds: Dataset): Dataset {
  if (ds.kind !== 'mc') return ds;
  const out: PromptDataset = {
    kind: 'sft',
    file: ds.file,
    format: ds.format,
    records: ds.records.map((r) => ({ prompt: r.context, answer: r.choices[r.label]!, line: r.line })),
  };
  return out;
}

function encodeForTraining(ds: Dataset, tok: TextTokenizer, o: PrepareOptions, fromMc: boolean): Encoded {
  const eo = { contextLength: o.contextLength, addBos: o.addBos };
  if (fromMc) return encodePromptAnswer(ds as PromptDataset, tok, { ...eo, appendEos: false });
  return encodeDataset(ds, tok, eo);
}

/** Reads, checks and encodes train (+ valid) files; throws DatasetError on the first bad record. */
export function prepareTraining(train: TaskFile, valid: TaskFile | null, tok: TextTokenizer, o: PrepareOptions): PreparedTraining {
  const tr = readTaskFile(train, o.read);
  const va = valid ? readTaskFile(valid, o.read) : null;
  if (va && va.kind !== tr.kind) throw new Error(`${valid!.name} holds ${va.kind} records but ${train.name} holds ${tr.kind}`);
  const fromMc = tr.kind === 'mc';
  let trainDs = asTrainingSet(tr);
  let validDs = va ? asTrainingSet(va) : null;
  let validFrom: 'file' | 'split' | 'none' = va ? 'file' : 'none';
  const frac = o.validFraction ?? 0.05;
  if (!validDs && frac > 0 && trainDs.records.length >= 2) {
    const s = splitDataset(trainDs, frac, o.seed ?? 0);
    trainDs = s.train;
    validDs = s.valid;
    validFrom = 'split';
  }
  const te = encodeForTraining(trainDs, tok, o, fromMc);
  const ve = validDs ? encodeForTraining(validDs, tok, o, fromMc) : null;
  return { kind: tr.kind, train: te.examples, valid: ve?.examples ?? [], stats: { train: te.stats, valid: ve?.stats ?? null, validFrom } };
}

/** Reads, checks and encodes an evaluation file. */
export function prepareEval(f: TaskFile, tok: TextTokenizer, o: Pick<PrepareOptions, 'contextLength' | 'addBos' | 'read'>): EncodedTask {
  return encodeTask(readTaskFile(f, o.read), tok, { contextLength: o.contextLength, addBos: o.addBos });
}
