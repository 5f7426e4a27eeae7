/**
 * `gradot compress` streams emulator.safetensors to disk (src/storage/package-file.ts) instead of building
 * the package in memory. Here every CLI build also runs the job the old way (the package's bytes made in
 * memory, same inputs and seed) and the files on disk must equal those bytes: folder and --zip, on hub-shaped
 * BF16 (qwen2) and F32 (gpt2) checkpoints with fresh random weights.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as BuildEmulatorModule from '../../jobs/build-emulator';
import { makeHubModel } from '../../model/make-model';
import { EMULATOR_WEIGHTS, zipEmulatorPackage } from '../../ot/emulator/package';
import { main } from '../main';
import { captureIO } from '../test-io';

/** The in-memory package of the last CLI build (the job run again without streamWeights); `afterJob` runs
 *  between the job and the write (to break the output on purpose). */
const inMemory: { files: Map<string, Uint8Array> | null; afterJob?: (() => Promise<void>) | undefined } = { files: null };

vi.mock('../../jobs/build-emulator', async (importOriginal) => {
  const orig = await importOriginal<typeof BuildEmulatorModule>();
  return {
    ...orig,
    buildEmulatorJob: async (...args: Parameters<typeof orig.buildEmulatorJob>) => {
      const [input, o, ctl] = args;
      expect(o.streamWeights).toBe(true);
      inMemory.files = (await orig.buildEmulatorJob(input, { ...o, streamWeights: false }, {})).files;
      const built = await orig.buildEmulatorJob(input, o, ctl);
      await inMemory.afterJob?.();
      return built;
    },
  };
});

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-compress-stream-'));
  const seed = Math.floor(Math.random() * 2 ** 31);
  await makeHubModel('qwen2.5-0.5b', join(dir, 'qwen'), {
    seed,
    overrides: {
      num_hidden_layers: 4,
      hidden_size: 32,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      intermediate_size: 72,
      max_position_embeddings: 64,
      vocab_size: 700,
    },
  });
  await makeHubModel('gpt2', join(dir, 'gpt2'), {
    seed,
    overrides: { n_layer: 4, n_embd: 32, n_head: 4, n_positions: 64, n_ctx: 64, vocab_size: 600 },
  });
  await mkdir(join(dir, 'data'));
  const rows = Array.from({ length: 24 }, (_, i) =>
    JSON.stringify({ text: `Stone ${i} and the river ${Math.random().toString(36).slice(2, 8)} ran past the warm field again.` }),
  );
  await writeFile(join(dir, 'data', 'support.jsonl'), rows.join('\n') + '\n');
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function compress(model: string, out: string, zip: boolean): Promise<Record<string, unknown>> {
  const c = captureIO();
  const code = await main(
    [
      'compress',
      join(dir, model),
      '--method',
      'gradot',
      '--keep',
      '0.5',
      '--adapters',
      '1:1',
      '--support',
      join(dir, 'data', 'support.jsonl'),
      '--out',
      out,
      '--seq',
      '16',
      '--batch',
      '2',
      '--support-batches',
      '2',
      '--heldout-batches',
      '1',
      '--json',
      ...(zip ? ['--zip'] : []),
    ],
    c.io,
  );
  if (code !== 0) console.log(c.err.join('\n'), c.out.join('\n'));
  expect(code).toBe(0);
  return JSON.parse(c.out[0]!) as Record<string, unknown>;
}

describe('gradot compress writes the package streamed, byte-identical to the in-memory package', () => {
  for (const [model, dtype] of [
    ['qwen', 'BF16'],
    ['gpt2', 'F32'],
  ] as const) {
    it(`${model} (${dtype}): folder and --zip`, async () => {
      const out = join(dir, `${model}-emu`);
      const r = await compress(model, out, false);
      const files = inMemory.files!;
      expect(files.has(EMULATOR_WEIGHTS)).toBe(true);
      expect(r.files).toEqual([...files.keys()]);
      expect((await readdir(out)).sort()).toEqual([...files.keys()].sort());
      for (const [name, bytes] of files) expect(Buffer.compare(new Uint8Array(await readFile(join(out, name))), bytes), name).toBe(0);
      expect(r.packageBytes).toBe([...files.values()].reduce((a, b) => a + b.length, 0));
      const meta = JSON.parse(new TextDecoder().decode(files.get('emulator.json')!)) as { dtype: string };
      expect(meta.dtype).toBe(dtype);

      const zip = join(dir, `${model}-emu.zip`);
      const rz = await compress(model, zip, true);
      expect(Buffer.compare(new Uint8Array(await readFile(zip)), zipEmulatorPackage(inMemory.files!))).toBe(0);
      expect(rz.files).toEqual([...files.keys()].sort());
      // Same inputs and seed: the zip holds the folder's files.
      expect(Buffer.compare(zipEmulatorPackage(files), zipEmulatorPackage(inMemory.files!))).toBe(0);
    }, 120_000);
  }

  it('an output folder that turns into a file before the write: a named error, no package file, no temporary file', async () => {
    const out = join(dir, 'vanishing');
    inMemory.afterJob = async () => {
      await rm(out, { recursive: true, force: true });
      await writeFile(out, 'not a folder');
    };
    const zipDir = join(dir, 'zip-vanishing');
    try {
      const c = captureIO();
      const args = (o: string, zip: boolean) =>
        ['compress', join(dir, 'qwen'), '--method', 'svd', '--keep', '0.5', '--support', join(dir, 'data', 'support.jsonl')].concat(
          ['--out', o, '--adapters', '1:1', '--seq', '16', '--support-batches', '1', '--heldout', 'none'],
          zip ? ['--zip'] : [],
        );
      expect(await main(args(out, false), c.io)).not.toBe(0);
      expect(c.err.join('\n')).toMatch(
        /vanishing: cannot create the folder: it already exists|vanishing: cannot create the folder: a part of the path is a file/,
      );
      expect(await readFile(out, 'utf8')).toBe('not a folder');
      // --zip: the folder the zip goes in becomes a file.
      await mkdir(zipDir);
      inMemory.afterJob = async () => {
        await rm(zipDir, { recursive: true, force: true });
        await writeFile(zipDir, 'not a folder');
      };
      const c2 = captureIO();
      expect(await main(args(join(zipDir, 'emu.zip'), true), c2.io)).not.toBe(0);
      expect(c2.err.join('\n')).toMatch(/zip-vanishing.*: cannot/);
      expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    } finally {
      inMemory.afterJob = undefined;
    }
  }, 60_000);
});
