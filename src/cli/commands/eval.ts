/**
 * `gradot eval MODEL_OR_EMULATOR [--adapter DIR] --task FILE|NAME`: accuracy (acc, acc_norm) for
 * multiple-choice files, answer-token loss / perplexity / exact match for prompt/answer files, perplexity
 * for text. A task NAME under public/data evaluates its test.jsonl. An adapter folder (from `gradot tune`)
 * is applied to the adapter blocks first; on an emulator its blocks are found by their source index.
 */
import { resolve } from 'node:path';
import { decoderFromWeights, weightsFromParams } from '../../model/decoder';
import { nodeDirSource } from '../../model/source';
import { loadAdapterFolder } from '../../ot/offsite/export';
import { applyAdapter } from '../../ot/offsite/plugin';
import { evaluateJob, prepareEvalTask } from '../../jobs/evaluate';
import { padIdOf } from '../../jobs/data';
import { parseCommandArgs } from '../args';
import { UsageError, type Command } from '../command';
import { openModel } from '../open';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';
import { bosFromOptions, cliTokenizer, contextLength, readTaskFile, resolveTaskFolder, throttled } from './ot-shared';
import { existsSync } from 'node:fs';

export const command: Command = {
  name: 'eval',
  summary: 'loss, perplexity, accuracy of a model or emulator (+ adapter) on a task',
  usage:
    'gradot eval MODEL_OR_EMULATOR [--adapter DIR] --task FILE|NAME [--runtime engine|ort] [--batch B] [--context C] [--limit N] [--tokenizer DIR] [--bos | --no-bos] ' +
    BACKEND_USAGE,
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      {
        adapter: { type: 'string' },
        task: { type: 'string' },
        batch: { type: 'number' },
        context: { type: 'number' },
        limit: { type: 'number' },
        runtime: { type: 'string', default: 'engine' },
        tokenizer: { type: 'string' },
        bos: { type: 'boolean' },
        'no-bos': { type: 'boolean' },
        ...BACKEND_OPTIONS,
      },
      { min: 1, max: 1 },
    );
    if (!o.task) throw new UsageError('--task FILE|NAME is required');
    const runtime = o.runtime as string;
    if (runtime !== 'engine' && runtime !== 'ort') throw new UsageError(`--runtime must be engine or ort, got '${runtime}'`);
    let taskPath = o.task as string;
    if (!existsSync(resolve(ctx.cwd, taskPath))) {
      const folder = resolveTaskFolder(taskPath, ctx.cwd);
      if (!folder?.test) throw new UsageError(`--task ${taskPath}: no such file, and no task folder with test.jsonl under public/data`);
      taskPath = folder.test;
    } else {
      const folder = resolveTaskFolder(taskPath, ctx.cwd);
      if (folder?.test) taskPath = folder.test;
    }
    const model = await openModel(resolve(ctx.cwd, positionals[0]!));
    const tok = await cliTokenizer(model, o.tokenizer as string | undefined, ctx.cwd);
    const task = prepareEvalTask(await readTaskFile(taskPath, ctx.cwd), tok, model.spec, {
      contextLength: contextLength(model.spec, o.context as number | undefined),
      addBos: bosFromOptions(o, model.spec, tok),
      ...(o.limit !== undefined ? { limit: o.limit as number } : {}),
    });
    const be = await openCliBackend(o, ctx);
    const dec = decoderFromWeights(be.backend, model.spec, model.weights);
    let adapterInfo: Record<string, unknown> | null = null;
    try {
      if (o.adapter) {
        const { meta, adapter } = await loadAdapterFolder(nodeDirSource(resolve(ctx.cwd, o.adapter as string)), model.spec);
        await applyAdapter(dec, adapter);
        adapterInfo = { path: o.adapter, method: meta.method, split: meta.split, blocks: meta.blocks, baseModel: meta.baseModel.modelId };
      }
      const line = throttled(ctx.err);
      const batchSize = (o.batch as number | undefined) ?? 8;
      const evalOpts = { batchSize, padId: padIdOf(tok), onProgress: (d: number, t: number) => line(`eval batch ${d}/${t}`) };
      // --runtime ort exports the (adapter-applied) weights to ONNX and scores through onnxruntime-node,
      // the path a deployment uses; the metrics code is shared, so the two runtimes are directly comparable.
      const m =
        runtime === 'ort'
          ? await (await import('../../onnx/evaluate')).evaluateWithOrt(model.spec, await weightsFromParams(dec.params), task, evalOpts)
          : await evaluateJob(dec, task, { tokenizer: tok, batchSize }, { onProgress: (p) => evalOpts.onProgress(p.done, p.total) });
      const text =
        m.kind === 'mc'
          ? `${task.file}: acc ${(100 * m.acc!).toFixed(2)}% ± ${(100 * m.accStderr!).toFixed(2)}, acc_norm ${(100 * m.accNorm!).toFixed(2)}% ± ${(100 * m.accNormStderr!).toFixed(2)} over ${m.n} questions`
          : `${task.file}: loss ${m.loss!.toFixed(4)}, perplexity ${m.perplexity!.toFixed(3)} over ${m.tokens} tokens${m.exactMatch !== undefined ? `, exact match ${(100 * m.exactMatch).toFixed(1)}%` : ''}`;
      return {
        json: { model: positionals[0], modelKind: model.kind, adapter: adapterInfo, runtime, backend: be.run, ...m },
        text: `${text} [${runtime}]`,
      };
    } finally {
      dec.free();
      be.close();
    }
  },
};
