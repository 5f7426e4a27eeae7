/**
 * Evaluation as a job: a task file encoded once by the shared rules (BOS policy, padding, "the first N" =
 * the first N records, i.e. N questions for multiple choice), then scored on a decoder (the caller owns the
 * decoder so one can be scored before and after an adapter is applied).
 */
import type { TextTokenizer } from '../data/types';
import type { ChoiceExample } from '../data/batch';
import type { Decoder } from '../model/decoder';
import type { ModelSpec } from '../model/spec';
import { evaluate, type EncodedTask, type EvalMetrics } from '../ot/offsite/evaluate';
import { prepareEval } from '../ot/offsite/task-data';
import { defaultAddBos, padIdOf, type TaskFile } from './data';
import type { JobControl } from './types';

export interface EvalTaskOptions {
  /** Context in tokens (default: the model's). */
  contextLength?: number;
  /** Default: the BOS policy of src/jobs/data.ts. */
  addBos?: boolean;
  /** Only the first N records (questions for multiple choice); absent or 0 = all. */
  limit?: number;
}

/** Keeps the first `n` records of an encoded task (every choice of the first n questions). */
export function limitTask(task: EncodedTask, n: number): EncodedTask {
  const examples = task.kind === 'mc' ? (task.examples as ChoiceExample[]).filter((e) => e.example < n) : task.examples.slice(0, n);
  return { ...task, examples: examples as EncodedTask['examples'] };
}

export function prepareEvalTask(
  file: TaskFile,
  tok: TextTokenizer,
  spec: Pick<ModelSpec, 'family' | 'maxPositions'>,
  o: EvalTaskOptions = {},
): EncodedTask {
  const task = prepareEval(file, tok, {
    contextLength: o.contextLength ?? spec.maxPositions,
    addBos: o.addBos ?? defaultAddBos(spec, tok),
  });
  return o.limit && o.limit > 0 ? limitTask(task, o.limit) : task;
}

export interface EvalProgress {
  done: number;
  total: number;
}

export async function evaluateJob(
  dec: Decoder,
  task: EncodedTask,
  o: { tokenizer: Pick<TextTokenizer, 'eosId'>; batchSize?: number },
  ctl: JobControl<EvalProgress> = {},
): Promise<EvalMetrics> {
  return evaluate(dec, task, {
    padId: padIdOf(o.tokenizer),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    ...(ctl.signal ? { signal: ctl.signal } : {}),
    ...(ctl.onProgress ? { onProgress: (done: number, total: number) => ctl.onProgress!({ done, total }) } : {}),
  });
}
