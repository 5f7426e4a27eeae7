/**
 * `gradot tune EMULATOR --train FILE [--valid FILE] --out DIR`: the data owner's step. Tunes the adapter
 * blocks (or LoRA on them) of an emulator package (or any HF model folder, with --adapters), checkpointing
 * into DIR/run; re-running the same command resumes from the last checkpoint (Ctrl-C is safe). When done,
 * DIR holds adapter.safetensors (+ PEFT files for LoRA), tune.json, and adapter.json written last.
 *
 * Every data problem (empty file, bad JSON line, missing field, non-UTF-8 bytes, an answer longer than the
 * context) is reported with file and line before anything is written.
 */
import { TUNE_DEFAULTS } from '../../jobs/tune-defaults';
import { join, resolve } from 'node:path';
import { nodeCheckpointStore } from '../../storage';
import { exportJob } from '../../jobs/export';
import { parseAdapters, type Split } from '../../ot/emulator/split';
import type { TuneResult } from '../../ot/offsite/tune';
import { prepareTuneData, tuneJob } from '../../jobs/tune';
import { parseCommandArgs } from '../args';
import { UsageError, type Command } from '../command';
import { openModel } from '../open';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';
import { ADAPTER_OUTPUT, checkOutputFolder, writeOutputFolder } from '../../faults/output-folder';
import { acquireRunLock } from '../../faults/run-lock';
import {
  TUNE_OPTIONS,
  TUNE_USAGE,
  bosFromOptions,
  cliTokenizer,
  contextLength,
  fmtEta,
  readTaskFile,
  throttled,
  tuneFromOptions,
} from './ot-shared';

export const command: Command = {
  name: 'tune',
  summary: 'fine-tune the adapters of an emulator package on local data (checkpoints, resumes)',
  usage: `gradot tune EMULATOR --train FILE [--valid FILE] --out DIR [--adapters L:R] [--force] ${TUNE_USAGE} ${BACKEND_USAGE}`,
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      {
        ...TUNE_OPTIONS,
        train: { type: 'string' },
        valid: { type: 'string' },
        out: { type: 'string' },
        adapters: { type: 'string' },
        force: { type: 'boolean' },
        ...BACKEND_OPTIONS,
      },
      { min: 1, max: 1 },
    );
    if (!o.train) throw new UsageError('--train FILE is required');
    if (!o.out) throw new UsageError('--out DIR is required');
    const out = resolve(ctx.cwd, o.out as string);
    // Before any work: not an input, nothing unrelated in it (its own run/ checkpoints are resumed), writable.
    await checkOutputFolder(out, {
      inputs: [
        resolve(ctx.cwd, positionals[0]!),
        ...[o.train, o.valid].filter((x): x is string => typeof x === 'string').map((x) => resolve(ctx.cwd, x)),
      ],
      kind: ADAPTER_OUTPUT,
      force: o.force === true,
    });
    const model = await openModel(resolve(ctx.cwd, positionals[0]!));
    let split: Split;
    if (model.meta) {
      split = model.meta.split;
      if (o.adapters && JSON.stringify(parseAdapters(o.adapters as string)) !== JSON.stringify(split)) {
        throw new UsageError(`the emulator was built with adapters ${split.bottom}:${split.top}; --adapters must match or be left out`);
      }
    } else split = parseAdapters((o.adapters as string | undefined) ?? '2:2');
    const tok = await cliTokenizer(model, o.tokenizer as string | undefined, ctx.cwd);
    const C = contextLength(model.spec, o.context as number | undefined);
    const addBos = bosFromOptions(o, model.spec, tok);
    const recipe = tuneFromOptions(o, TUNE_DEFAULTS[o.lora !== undefined ? 'lora' : 'full'], model.spec.family);
    // Data first: a bad file fails here, before any checkpoint or output exists.
    const data = prepareTuneData(
      {
        train: await readTaskFile(o.train as string, ctx.cwd),
        valid: o.valid ? await readTaskFile(o.valid as string, ctx.cwd, 'valid') : null,
      },
      tok,
      model.spec,
      { contextLength: C, addBos, validFraction: (o['valid-fraction'] as number | undefined) ?? 0.05, seed: recipe.seed ?? 0 },
    );
    const ac = new AbortController();
    const onSig = (): void => ac.abort(new Error('interrupted (SIGINT): the last checkpoint is kept; run the same command to resume'));
    process.once('SIGINT', onSig);
    const line = throttled(ctx.err);
    let r: TuneResult;
    // One run per folder: a second `tune` on the same --out is refused while this one lives.
    const lock = await acquireRunLock(join(out, 'run'));
    if (lock.tookOver) ctx.err(`tune: ${lock.tookOver}`);
    let be: Awaited<ReturnType<typeof openCliBackend>> | null = null;
    try {
      be = await openCliBackend(o, ctx);
      // On a lost GPU device the run resumes on the CPU backend from its last checkpoint.
      r = await be.job((backend) =>
        tuneJob(
          model,
          data,
          { split, recipe, backend, tokenizer: tok, store: nodeCheckpointStore(join(out, 'run')) },
          {
            signal: ac.signal,
            onProgress: (p) =>
              line(
                `tune ${p.phase} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)}` +
                  `${p.valLoss !== undefined ? ` val ${p.valLoss.toFixed(4)}` : ''} ${p.tokensPerSec.toFixed(0)} tok/s eta ${fmtEta(p.etaSeconds)}`,
                p.phase !== 'train',
              ),
          },
        ),
      );
    } finally {
      process.off('SIGINT', onSig);
      be?.close();
      await lock.release();
    }
    for (const n of r.notes ?? []) ctx.err(`tune: ${n}`);
    const { adapter, history, ...summary } = r;
    const files = await exportJob(
      adapter,
      { spec: model.spec, weights: model.weights, meta: model.meta ?? null, modelId: positionals[0]! },
      { tune: summary },
    );
    const ordered = new Map<string, Uint8Array>();
    for (const [k, v] of files) if (k !== 'adapter.json') ordered.set(k, v);
    ordered.set('tune.json', new TextEncoder().encode(JSON.stringify({ ...summary, history, data: data.stats }, null, 2) + '\n'));
    ordered.set('adapter.json', files.get('adapter.json')!);
    await writeOutputFolder(out, ordered, ADAPTER_OUTPUT); // stale files of an earlier export removed; adapter.json last
    const json = {
      out,
      method: r.method,
      split,
      steps: r.steps,
      epochs: r.epochs,
      trainLoss: r.trainLoss,
      bestStep: r.bestStep,
      bestValLoss: r.bestValLoss,
      weightsFrom: r.weightsFrom,
      trainableParams: r.trainableParams,
      tokensPerSec: r.tokensPerSec,
      seconds: r.seconds,
      resumedFrom: r.resumedFrom,
      backend: be!.run,
      files: [...ordered.keys()],
      data: {
        kind: data.kind,
        train: data.train.length,
        valid: data.valid.length,
        validFrom: data.stats.validFrom,
        truncated: data.stats.train.truncated,
      },
    };
    const text = [
      `tuned ${r.method === 'lora' ? `LoRA r=${adapter.lora!.r}` : 'adapter blocks'} ${split.bottom}:${split.top} for ${r.steps} steps` +
        (r.resumedFrom === 'done' ? ' (already finished)' : r.resumedFrom ? ` (resumed from step ${r.resumedFrom})` : ''),
      `train loss ${r.trainLoss.toFixed(4)}, best validation loss ${r.bestValLoss?.toFixed(4) ?? '—'} at step ${r.bestStep ?? '—'} (${r.weightsFrom} weights)`,
      `${r.tokensPerSec.toFixed(0)} tokens/s, ${r.seconds.toFixed(1)} s; wrote ${[...ordered.keys()].join(', ')} to ${out}`,
    ].join('\n');
    return { json, text };
  },
};
