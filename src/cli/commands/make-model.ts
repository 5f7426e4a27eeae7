/**
 * `gradot make-model FAMILY OUT_DIR [--seed S]`: a random-initialised checkpoint with the exact config.json
 * fields, tensor names, shapes and dtypes of a hub model (gpt2, opt-125m, qwen2.5-0.5b, smollm2-360m,
 * tinyllama-1.1b; the hub repo id works too) and a byte-level BPE tokenizer of the model's vocabulary size,
 * for tests and benchmarks at real sizes without a download (src/model/hub-models.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { HUB_FAMILIES, HUB_MODELS, hubFamily } from '../../model/hub-models';
import { makeHubModel } from '../../model/make-model';
import { formatBytes, formatCount, parseCommandArgs } from '../args';
import { UsageError, type Command } from '../command';

export const command: Command = {
  name: 'make-model',
  summary: 'write a hub-shaped random checkpoint (config, safetensors, tokenizer) for tests and benchmarks',
  usage: `gradot make-model ${HUB_FAMILIES.join('|')} OUT_DIR [--seed S] [--force]`,
  async run(argv, ctx) {
    const { positionals, options: o } = parseCommandArgs(
      argv,
      { seed: { type: 'number' }, force: { type: 'boolean' } },
      { min: 2, max: 2 },
    );
    const family = hubFamily(positionals[0]!);
    if (!family) throw new UsageError(`unknown family '${positionals[0]}' (${HUB_FAMILIES.join(', ')}, or the hub repo id)`);
    const seed = (o.seed as number | undefined) ?? 0;
    if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed expects a non-negative integer, got ${seed}`);
    const dir = resolve(ctx.cwd, positionals[1]!);
    if (existsSync(resolve(dir, 'model.safetensors')) && !o.force)
      throw new UsageError(`${dir} already holds a model.safetensors (pass --force to replace it)`);
    const t0 = performance.now();
    let last = 0;
    const made = await makeHubModel(family, dir, {
      seed,
      onProgress: (done, total) => {
        const now = performance.now();
        if (now - last < 2000 && done < total) return;
        last = now;
        const s = (now - t0) / 1000;
        const eta = done > 0 ? (s * (total - done)) / done : 0;
        ctx.err(`make-model: ${formatBytes(done)} / ${formatBytes(total)} (${s.toFixed(1)}s, ETA ${eta.toFixed(0)}s)`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const def = HUB_MODELS[family];
    const json = {
      family,
      repo: def.repo,
      dir,
      dtype: def.dtype,
      params: made.params,
      bytes: made.bytes,
      files: made.files,
      seed,
      seconds,
    };
    const text = `${def.repo}-shaped random model (${def.dtype}, ${formatCount(made.params)} params, ${formatBytes(made.bytes)}) -> ${dir} in ${seconds.toFixed(1)}s`;
    return { json, text };
  },
};
