/**
 * `gradot plug MODEL --adapter DIR --out DIR`: the model owner's step. Puts the tuned adapter blocks (or the
 * merged LoRA) into the full model and writes a Hugging Face folder (config.json written last, tokenizer
 * files copied).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { saveHFModel } from '../../model/hf';
import { nodeDirSource } from '../../model/source';
import { plugInJob } from '../../jobs/plug-in';
import { parseCommandArgs } from '../args';
import { UsageError, type Command } from '../command';
import { openModel } from '../open';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';
import { HF_MODEL_OUTPUT, checkOutputFolder, writeOutputFolder } from '../../faults/output-folder';

const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
];

export const command: Command = {
  name: 'plug',
  summary: 'plug tuned adapters back into the full model (writes an HF folder)',
  usage: 'gradot plug MODEL --adapter DIR --out DIR [--dtype F32|F16|BF16] [--force] ' + BACKEND_USAGE,
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      {
        adapter: { type: 'string' },
        out: { type: 'string' },
        dtype: { type: 'string' },
        force: { type: 'boolean' },
        ...BACKEND_OPTIONS,
      },
      { min: 1, max: 1 },
    );
    if (!o.adapter) throw new UsageError('--adapter DIR is required');
    if (!o.out) throw new UsageError('--out DIR is required');
    const dtype = ((o.dtype as string | undefined) ?? 'F32').toUpperCase();
    if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new UsageError('--dtype must be F32, F16 or BF16');
    const modelDir = resolve(ctx.cwd, positionals[0]!);
    const adapterDir = resolve(ctx.cwd, o.adapter as string);
    const out = resolve(ctx.cwd, o.out as string);
    const force = o.force === true;
    // Before any work: the output is not an input, holds nothing unrelated, and is writable.
    await checkOutputFolder(out, { inputs: [modelDir, adapterDir], kind: HF_MODEL_OUTPUT, force });
    const model = await openModel(modelDir, { tokenizer: false });
    if (model.kind !== 'hf') throw new UsageError('plug needs the full model (an HF folder), not an emulator package');
    // Family, block count and the weights hash it was trained against: another model is an error unless --force.
    // The backend merges LoRA factors into the base weights (block adapters are copied on the host).
    const be = await openCliBackend(o, ctx);
    const plugged = await plugInJob(model, nodeDirSource(adapterDir), { checkHash: true, force, backend: be.backend }).finally(() =>
      be.close(),
    );
    const { meta, warnings } = plugged;
    const files = saveHFModel(plugged.spec, plugged.weights, { dtype: dtype as 'F32' | 'F16' | 'BF16', baseConfig: model.config });
    for (const f of TOKENIZER_FILES) if (existsSync(join(modelDir, f))) files.set(f, new Uint8Array(await readFile(join(modelDir, f))));
    // Temp folder + rename; an earlier model's shards and index in `out` are removed; config.json last.
    await writeOutputFolder(out, files, HF_MODEL_OUTPUT);
    for (const w of warnings) ctx.err(`warning: ${w}`);
    return {
      json: {
        out,
        backend: be.run,
        method: meta.method,
        split: meta.split,
        blocks: meta.blocks,
        replaced: plugged.replaced.length,
        warnings,
        files: [...files.keys()],
      },
      text: `plugged ${meta.method} adapter (blocks ${meta.blocks.join(', ')}; ${plugged.replaced.length} tensors) into ${positionals[0]} -> ${out}`,
    };
  },
};
