/**
 * `gradot ort-eval MODEL --task FILE [--adapter DIR] [--batch-size N] [--context N] [--compare]`: evaluates a
 * model state through its ONNX export in onnxruntime-node (what a deployment with onnxruntime-web or
 * transformers.js computes), with the same task encoding and metric drivers as our engine's evaluation
 * (src/ot/task-data prepareEval + src/ot/metrics). `--compare` also runs our engine and reports both.
 * Stands in for `gradot eval --runtime ort` until an eval command exists.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseCommandArgs } from '../args';
import { UsageError, type Command, type CommandResult } from '../command';
import { openModelState } from './export-onnx';

export const command: Command = {
  name: 'ort-eval',
  summary: 'evaluate a model / emulator / plug-in through its ONNX export in onnxruntime (acc, loss, perplexity)',
  usage: 'gradot ort-eval MODEL --task FILE [--adapter DIR] [--batch-size 8] [--context 256] [--ort-threads N] [--compare] [--json]',
  async run(argv, ctx): Promise<CommandResult> {
    const { positionals, options } = parseCommandArgs(
      argv,
      {
        task: { type: 'string' },
        adapter: { type: 'string' },
        'batch-size': { type: 'number', default: 8 },
        context: { type: 'number' },
        'ort-threads': { type: 'number' },
        compare: { type: 'boolean', default: false },
      },
      { min: 1, max: 1 },
    );
    if (!options.task) throw new UsageError('--task FILE is required');
    const modelPath = resolve(ctx.cwd, positionals[0]!);
    const taskPath = resolve(ctx.cwd, String(options.task));
    const batchSize = Number(options['batch-size']);
    const m = await openModelState(modelPath, options.adapter ? resolve(ctx.cwd, String(options.adapter)) : undefined);
    if (!m.opened.tokenizer) throw new Error(`no tokenizer files in ${modelPath}`);
    const { withoutSpecialTokens } = await import('../../data/tokenizer');
    const { prepareEvalTask } = await import('../../jobs/evaluate');
    const { padIdOf } = await import('../../jobs/data');
    const { evaluateWithOrt } = await import('../../onnx/evaluate');
    const contextLength = Math.min(options.context !== undefined ? Number(options.context) : m.spec.maxPositions, m.spec.maxPositions);
    // The same encoding as `gradot eval` (BOS policy included), so the two runtimes score the same tokens.
    const tok = withoutSpecialTokens(m.opened.tokenizer);
    const task = prepareEvalTask({ name: taskPath, bytes: new Uint8Array(await readFile(taskPath)) }, tok, m.spec, { contextLength });
    const padId = padIdOf(tok);
    const threads = options['ort-threads'] !== undefined ? { intraOpNumThreads: Number(options['ort-threads']) } : {};
    const r = await evaluateWithOrt(m.spec, m.weights, task, {
      batchSize,
      padId,
      sessionOptions: threads,
      onProgress: (d, n) => ctx.err(`ort-eval: batch ${d}/${n}`),
    });
    const { kind: _kind, file: _file, ...metrics } = r;
    const json: Record<string, unknown> = { runtime: 'onnxruntime-node', state: m.state, task: taskPath, kind: task.kind, ...metrics };
    const fmt = (o: Record<string, unknown>): string =>
      Object.entries(o)
        .filter(([k]) => !['task', 'kind', 'runtime', 'state'].includes(k))
        .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(4)) : v}`)
        .join(', ');
    let text = `ort-eval (${m.state}, onnxruntime-node) on ${taskPath} [${task.kind}]: ${fmt(json)}`;
    if (options.compare) {
      const { CpuBackend } = await import('../../engine/cpu/backend');
      const { decoderFromWeights } = await import('../../model/decoder');
      const { evaluate } = await import('../../ot/offsite/evaluate');
      const engine = decoderFromWeights(new CpuBackend({ dtype: 'f32' }), m.spec, m.weights);
      const e = await evaluate(engine, task, { batchSize, padId });
      engine.free();
      json.engine = e;
      text += `\nengine (cpu-f32): ${fmt(e as unknown as Record<string, unknown>)}`;
    }
    return { json, text };
  },
};
