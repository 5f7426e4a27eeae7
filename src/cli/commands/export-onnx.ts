/**
 * `gradot export-onnx MODEL --out DIR [--adapter DIR] [--verify]`: any model state we hold (an HF folder,
 * an emulator package folder/.zip, or either with a tuned adapter plugged in) as a transformers.js folder:
 * config.json, generation_config.json, tokenizer files, onnx/model.onnx (decoder with KV cache).
 * Weights go to onnx/model.onnx_data* when past protobuf's 2 GiB limit (or with --external-data).
 * `--verify` runs the graph in onnxruntime-node on a random batch and reports the max relative logit
 * difference from our engine.
 */
import { ONNX_OUTPUT, checkOutputFolder, writeOutputFolder } from '../../faults/output-folder';
import { resolve } from 'node:path';
import { formatBytes, parseCommandArgs } from '../args';
import { UsageError, type Command, type CommandResult } from '../command';
import { openModel, openSource, type OpenedModel } from '../open';
import { isCompressed } from '../../model/hf';
import type { ModelSource } from '../../model/source';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';

/** Copied verbatim from the source folder (generation_config.json replaces the one built from config.json). */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
];

export async function tokenizerFilesOf(src: ModelSource): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of TOKENIZER_FILES) if (await src.has(f)) out.set(f, await src.readBytes(f));
  return out;
}

export type ModelState = 'full' | 'emulator' | 'plug-in' | 'emulator+adapter';

/** Opens MODEL (and plugs ADAPTER in when given): the state to export or evaluate. */
export async function openModelState(
  modelPath: string,
  adapterPath?: string,
): Promise<{
  opened: OpenedModel;
  spec: ModelSpec;
  weights: WeightMap;
  state: ModelState;
  tokenizerFiles: Map<string, Uint8Array>;
}> {
  const opened = await openModel(modelPath);
  const tokenizerFiles = await tokenizerFilesOf(await openSource(modelPath));
  let { spec, weights } = opened;
  let state: ModelState = opened.kind === 'emulator' || isCompressed(spec) ? 'emulator' : 'full';
  if (adapterPath) {
    const { loadAdapter } = await import('../../ot/offsite/export');
    const { plugIn } = await import('../../ot/offsite/plugin');
    const { adapter } = await loadAdapter(await openSource(adapterPath), spec);
    ({ spec, weights } = await plugIn({ spec, weights }, adapter));
    state = state === 'full' ? 'plug-in' : 'emulator+adapter';
  }
  return { opened, spec, weights, state, tokenizerFiles };
}

export const command: Command = {
  name: 'export-onnx',
  summary: 'export a model, emulator or plug-in model to ONNX in the transformers.js folder layout',
  usage: 'gradot export-onnx MODEL --out DIR [--adapter DIR] [--verify] [--external-data] [--force] [--json]',
  async run(argv, ctx): Promise<CommandResult> {
    const { positionals, options } = parseCommandArgs(
      argv,
      {
        out: { type: 'string' },
        adapter: { type: 'string' },
        verify: { type: 'boolean', default: false },
        'external-data': { type: 'boolean', default: false },
        force: { type: 'boolean' },
      },
      { min: 1, max: 1 },
    );
    if (!options.out) throw new UsageError('--out DIR is required');
    const modelPath = resolve(ctx.cwd, positionals[0]!);
    const out = resolve(ctx.cwd, String(options.out));
    const inputs = [modelPath, ...(options.adapter ? [resolve(ctx.cwd, String(options.adapter))] : [])];
    await checkOutputFolder(out, { inputs, kind: ONNX_OUTPUT, force: options.force === true }); // before any work
    const { exportTransformersJsFolder } = await import('../../onnx/export');
    const t0 = performance.now();
    const m = await openModelState(modelPath, options.adapter ? resolve(ctx.cwd, String(options.adapter)) : undefined);
    if (m.tokenizerFiles.size === 0)
      ctx.err(`export-onnx: warning: no tokenizer files in ${modelPath}; transformers.js will need them beside config.json`);
    const files = exportTransformersJsFolder(m.spec, m.weights, {
      baseConfig: m.opened.config ?? {},
      extraFiles: m.tokenizerFiles,
      docString: `gradot ${m.state} model exported from ${modelPath}`,
      metadata: { 'gradot.state': m.state },
      externalData: options['external-data'] ? true : 'auto',
    });
    let bytes = 0;
    for (const b of files.values()) bytes += b.byteLength;
    await writeOutputFolder(out, files, ONNX_OUTPUT); // temp + rename; a stale onnx/ of an earlier export is replaced
    const json: Record<string, unknown> = {
      out,
      state: m.state,
      modelType: m.spec.modelType,
      layers: m.spec.layers.length,
      files: [...files.keys()].sort(),
      bytes,
      onnxBytes: files.get('onnx/model.onnx')!.byteLength,
      seconds: (performance.now() - t0) / 1000,
    };
    let verifyText = '';
    if (options.verify) {
      const { loadOrt, OrtDecoder, ortInfoFromSpec } = await import('../../onnx/runtime');
      const { engineLogits, maxRelErr, randomIds } = await import('../../onnx/testing');
      const B = 2;
      const T = Math.min(16, m.spec.maxPositions);
      const ids = randomIds(B * T, m.spec.vocabSize, 1);
      const externalData = [...files]
        .filter(([k]) => k.startsWith('onnx/model.onnx_data'))
        .map(([k, data]) => ({ path: k.slice('onnx/'.length), data }));
      const dec = await OrtDecoder.create(await loadOrt('node'), files.get('onnx/model.onnx')!, ortInfoFromSpec(m.spec), { externalData });
      const err = maxRelErr(await dec.logits(ids, B, T), await engineLogits(m.spec, m.weights, ids, B, T));
      await dec.release();
      json.verify = { batch: B, seq: T, maxRelErr: err, ok: err < 1e-4 };
      verifyText = `\nverify: onnxruntime-node vs engine logits on ${B}x${T} random tokens: max rel err ${err.toExponential(2)} ${err < 1e-4 ? 'ok' : 'MISMATCH'}`;
    }
    const text = `exported ${m.state} ${m.spec.modelType} (${m.spec.layers.length} layers) to ${out}: ${[...files.keys()].sort().join(', ')} (${formatBytes(bytes)})${verifyText}`;
    return { json, text, exitCode: json.verify && !(json.verify as { ok: boolean }).ok ? 1 : 0 };
  },
};
