/**
 * Task evaluation through onnxruntime: the model state exported to ONNX and scored batch by batch with
 * src/ot/metrics' drivers, returning src/ot/evaluate's EvalMetrics so a caller (e.g. `gradot eval
 * --runtime ort`) can swap runtimes with one call. Works with onnxruntime-node and onnxruntime-web (pass
 * the module; default: onnxruntime-node).
 */
import type { ChoiceExample } from '../data/batch';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { EncodedTask, EvalMetrics } from '../ot/offsite/evaluate';
import { evaluateMultipleChoice, evaluatePerplexity } from '../ot/offsite/metrics';
import { exportOnnxFiles } from './export';
import { loadOrt, OrtDecoder, ortInfoFromSpec, type OrtModule } from './runtime';
import type { InferenceSession } from 'onnxruntime-common';

export interface OrtEvalOptions {
  batchSize?: number;
  padId?: number;
  /** Prompt/answer: also compute greedy exact match. Default true. */
  exactMatch?: boolean;
  ort?: OrtModule;
  sessionOptions?: InferenceSession.SessionOptions;
  onProgress?: (done: number, total: number) => void;
}

export async function evaluateWithOrt(
  spec: ModelSpec,
  weights: WeightMap,
  task: EncodedTask,
  opts: OrtEvalOptions = {},
): Promise<EvalMetrics> {
  const t0 = performance.now();
  if (task.examples.length === 0) throw new Error(`${task.file}: nothing to evaluate`);
  const batchSize = opts.batchSize ?? 8;
  const ort = opts.ort ?? (await loadOrt('node'));
  const files = exportOnnxFiles(spec, weights);
  const externalData = files.data.map((d) => ({ path: d.name, data: d.bytes }));
  const dec = await OrtDecoder.create(ort, files.model, ortInfoFromSpec(spec), {
    ...opts.sessionOptions,
    ...(externalData.length ? { externalData } : {}),
  });
  try {
    const score = dec.scorer();
    const bo = { batchSize, padId: opts.padId, onProgress: opts.onProgress };
    if (task.kind === 'mc') {
      const m = await evaluateMultipleChoice(task.examples as ChoiceExample[], score, bo);
      return {
        kind: 'mc',
        file: task.file,
        n: m.n,
        acc: m.acc,
        accStderr: m.accStderr,
        accNorm: m.accNorm,
        accNormStderr: m.accNormStderr,
        seconds: (performance.now() - t0) / 1000,
      };
    }
    const m = await evaluatePerplexity(task.examples, score, bo);
    const em = task.kind === 'sft' && (opts.exactMatch ?? true) && m.exactMatch ? { exactMatch: m.exactMatch.mean } : {};
    return {
      kind: task.kind,
      file: task.file,
      n: task.examples.length,
      loss: m.nll,
      perplexity: m.perplexity,
      tokens: m.tokens,
      ...em,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await dec.release();
  }
}
