/**
 * The CLI under faults: outputs that would destroy inputs, adapters for another model, non-finite numbers,
 * Node file errors, limits on tuning options. Every case must end in a named error (or a safe result),
 * never in exit 0 with garbage or a raw Node message.
 */
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main';
import { randomTestModel, smallSpec, writeHFFolder } from '../model/random-model';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { captureIO } from '../cli/test-io';
import { parseSafetensors } from '../model/safetensors';
import type { WeightMap } from '../model/weights';
import { acquireRunLock } from './run-lock';

let dir = '';
let model = '';
let train = '';
let valid = '';
let test = '';
const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const words = ['red', 'blue', 'green', 'small', 'large', 'warm', 'cold', 'fast'];
const mcRows = (n: number, off: number): unknown[] =>
  Array.from({ length: n }, (_, i) => {
    const k = (i + off) % words.length;
    return {
      context: `Word: ${words[k]}\nSame:`,
      choices: [` ${words[k]}`, ` ${words[(k + 3) % words.length]}`],
      label: (i + off) % 2 === 0 ? 0 : 1,
    };
  });

async function hfModel(path: string, weights: WeightMap, opts: { maxShardBytes?: number } = {}): Promise<void> {
  await writeHFFolder(path, spec, weights, opts);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(path, f));
}

async function run(
  args: string[],
): Promise<{ code: number; r: { ok: boolean; error?: { name: string; message: string }; [k: string]: unknown }; err: string[] }> {
  const c = captureIO();
  const code = await main([...args, '--json'], c.io, dir);
  return { code, r: JSON.parse(c.out[0]!), err: c.err };
}

let adapter = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-faults-'));
  model = join(dir, 'model');
  await hfModel(model, randomTestModel(spec, 3));
  train = join(dir, 'train.jsonl');
  valid = join(dir, 'valid.jsonl');
  test = join(dir, 'test.jsonl');
  await writeFile(train, jsonl(mcRows(12, 0)));
  await writeFile(valid, jsonl(mcRows(4, 5)));
  await writeFile(test, jsonl(mcRows(6, 1)));
  adapter = join(dir, 'adapter');
  const t = await run([
    'tune',
    model,
    '--train',
    train,
    '--valid',
    valid,
    '--adapters',
    '1:1',
    '--steps',
    '2',
    '--batch',
    '4',
    '--lr',
    '1e-2',
    '--lora',
    '2',
    '--lora-targets',
    'q,v,down',
    '--out',
    adapter,
  ]);
  expect(t.code, JSON.stringify(t.r)).toBe(0);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('outputs never destroy inputs', () => {
  it('plug --out equal to the source model folder is refused before any work; the weights are untouched', async () => {
    const before = await readFile(join(model, 'model.safetensors'));
    const { code, r } = await run(['plug', model, '--adapter', adapter, '--out', model]);
    expect(code).toBe(1);
    expect(r.error!.name).toBe('OutputFolderError');
    expect(r.error!.message).toMatch(/is an input of this command/);
    expect(await readFile(join(model, 'model.safetensors'))).toEqual(before);
    // --force does not make an input writable.
    expect((await run(['plug', model, '--adapter', adapter, '--out', model, '--force'])).r.error!.name).toBe('OutputFolderError');
    // Nor does a different spelling of the same folder.
    expect((await run(['plug', `${model}/../model/`, '--adapter', adapter, '--out', model])).r.error!.name).toBe('OutputFolderError');
  });

  it('plug --out into a folder holding a SHARDED model replaces it: no stale shards or index, new weights load', async () => {
    const out = join(dir, 'was-sharded');
    await hfModel(out, randomTestModel(spec, 99), { maxShardBytes: 20_000 });
    expect((await readdir(out)).some((f) => /^model-\d+-of-\d+\.safetensors$/.test(f))).toBe(true);
    const { code, r } = await run(['plug', model, '--adapter', adapter, '--out', out]);
    expect(code, JSON.stringify(r)).toBe(0);
    const files = (await readdir(out)).sort();
    expect(files.filter((f) => f.startsWith('model'))).toEqual(['model.safetensors']);
    expect(files.some((f) => f.includes('.tmp-'))).toBe(false);
    // The folder loads the NEW weights: equal to a plug into a fresh folder.
    const fresh = join(dir, 'fresh-plug');
    expect((await run(['plug', model, '--adapter', adapter, '--out', fresh])).code).toBe(0);
    expect(await readFile(join(out, 'model.safetensors'))).toEqual(await readFile(join(fresh, 'model.safetensors')));
    const e1 = await run(['eval', out, '--task', test]);
    const e2 = await run(['eval', fresh, '--task', test]);
    expect(e1.r.acc).toBe(e2.r.acc);
  });

  it('an output folder holding unrelated files is refused unless --force, which leaves them alone', async () => {
    const out = join(dir, 'photos');
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'holiday.jpg'), 'not a model');
    const a = await run(['plug', model, '--adapter', adapter, '--out', out]);
    expect(a.code).toBe(1);
    expect(a.r.error!.message).toMatch(/holds files this command did not write \(holiday\.jpg\).*--force/);
    expect(existsSync(join(out, 'config.json'))).toBe(false);
    const b = await run(['plug', model, '--adapter', adapter, '--out', out, '--force']);
    expect(b.code).toBe(0);
    expect(await readFile(join(out, 'holiday.jpg'), 'utf8')).toBe('not a model');
    expect(existsSync(join(out, 'config.json'))).toBe(true);
  });

  it('--out /proc/x and an output under a regular file fail fast with a named error, before any work', async () => {
    const t0 = performance.now();
    const a = await run(['plug', model, '--adapter', adapter, '--out', '/proc/x']);
    expect(a.code).toBe(1);
    expect(a.r.error!.message).toMatch(/\/proc\/x: \/proc is a kernel pseudo-file-system/);
    const b = await run(['tune', model, '--train', train, '--adapters', '1:1', '--steps', '1', '--out', join(train, 'sub')]);
    expect(b.code).toBe(1);
    expect(b.r.error!.name).toBe('FileAccessError');
    expect(b.r.error!.message).toMatch(/train\.jsonl\/sub: cannot use as output folder: a part of the path is a file, not a folder/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('compress, export-onnx and ot refuse the model folder as their output (config.json would be overwritten)', async () => {
    const cfg = await readFile(join(model, 'config.json'));
    const { code, r } = await run([
      'compress',
      model,
      '--method',
      'drop',
      '--keep',
      '0.5',
      '--adapters',
      '1:1',
      '--support',
      train,
      '--out',
      model,
    ]);
    expect(code).toBe(1);
    expect(r.error!.name).toBe('OutputFolderError');
    const x = await run(['export-onnx', model, '--out', model]);
    expect(x.code).toBe(1);
    expect(x.r.error!.name).toBe('OutputFolderError');
    const t = await run(['ot', model, '--method', 'drop', '--keep', '0.5', '--task', dir, '--steps', '1', '--out', model]);
    expect(t.code).toBe(1);
    expect(t.r.error!.name).toBe('OutputFolderError');
    expect(await readFile(join(model, 'config.json'))).toEqual(cfg);
  });
});

describe('adapters made for another model', () => {
  it('a hash mismatch is an error unless --force (then a warning)', async () => {
    const other = join(dir, 'other-model');
    await hfModel(other, randomTestModel(spec, 4));
    // An emulator-trained adapter records the source hash; fake one trained against `other`.
    const meta = JSON.parse(await readFile(join(adapter, 'adapter.json'), 'utf8'));
    const forged = join(dir, 'adapter-other');
    await mkdir(forged, { recursive: true });
    for (const f of await readdir(adapter)) if (f !== 'run') await copyFile(join(adapter, f), join(forged, f));
    meta.baseModel.sha256 = 'ab'.repeat(32);
    await writeFile(join(forged, 'adapter.json'), JSON.stringify(meta));
    const a = await run(['plug', model, '--adapter', forged, '--out', join(dir, 'p-other')]);
    expect(a.code).toBe(1);
    expect(a.r.error!.message).toMatch(/trained against weights with hash abababababab…, this model's is .*--force/);
    expect(existsSync(join(dir, 'p-other'))).toBe(false);
    const b = await run(['plug', model, '--adapter', forged, '--out', join(dir, 'p-other'), '--force']);
    expect(b.code).toBe(0);
    expect((b.r.warnings as string[])[0]).toMatch(/hash/);
  });

  it('a shape mismatch (adapter of a wider model) is a named error', async () => {
    const wide = smallSpec('llama', { numLayers: 4, hiddenSize: 32, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
    const wideModel = join(dir, 'wide');
    await writeHFFolder(wideModel, wide, randomTestModel(wide, 5));
    const { code, r } = await run(['plug', wideModel, '--adapter', adapter, '--out', join(dir, 'p-wide')]);
    expect(code).toBe(1);
    expect(r.error!.name).toMatch(/ShapeMismatchError|ModelFormatError/);
    expect(r.error!.message).toMatch(/adapter_model\.safetensors|adapter\.safetensors/);
  });
});

describe('PEFT folders', () => {
  let peft = '';
  beforeAll(async () => {
    peft = join(dir, 'peft-only');
    await mkdir(peft, { recursive: true });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) await copyFile(join(adapter, f), join(peft, f));
  });

  it('a PEFT-only folder is accepted by plug and eval, with the same result as the GradOT adapter', async () => {
    const e1 = await run(['eval', model, '--adapter', adapter, '--task', test]);
    const e2 = await run(['eval', model, '--adapter', peft, '--task', test]);
    expect(e2.code, JSON.stringify(e2.r)).toBe(0);
    expect(e2.r.acc).toBe(e1.r.acc);
    const p = await run(['plug', model, '--adapter', peft, '--out', join(dir, 'p-peft')]);
    expect(p.code, JSON.stringify(p.r)).toBe(0);
    const ref = await run(['plug', model, '--adapter', adapter, '--out', join(dir, 'p-ref')]);
    expect(ref.code).toBe(0);
    const a = parseSafetensors(await readFile(join(dir, 'p-peft', 'model.safetensors'))).tensors;
    const b = parseSafetensors(await readFile(join(dir, 'p-ref', 'model.safetensors'))).tensors;
    for (const [k, t] of b) expect(Array.from(a.get(k)!.data), k).toEqual(Array.from(t.data));
  });

  const edits: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    [
      'unknown target module',
      (c) => (c.target_modules = ['q_proj', 'not_a_module']),
      /adapter_config\.json: target module 'not_a_module' does not exist/,
    ],
    ['rank differs from the tensors', (c) => (c.r = 3), /adapter_model\.safetensors \[.*lora_A\.weight\]: shape mismatch: expected \[3, /],
    ['layer out of range', (c) => (c.layers_to_transform = [0, 9]), /layers_to_transform names layer 9, but the model has layers 0\.\.3/],
    ['not LoRA', (c) => (c.peft_type = 'IA3'), /peft_type "IA3" is not LORA/],
    ['DoRA', (c) => (c.use_dora = true), /use_dora/],
  ];
  for (const [what, edit, msg] of edits) {
    it(`is validated: ${what}`, async () => {
      const bad = join(dir, `peft-bad-${what.replace(/\W+/g, '-')}`);
      await mkdir(bad, { recursive: true });
      await copyFile(join(peft, 'adapter_model.safetensors'), join(bad, 'adapter_model.safetensors'));
      const cfg = JSON.parse(await readFile(join(peft, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      edit(cfg);
      await writeFile(join(bad, 'adapter_config.json'), JSON.stringify(cfg));
      const { code, r } = await run(['eval', model, '--adapter', bad, '--task', test]);
      expect(code).toBe(1);
      expect(r.error!.message).toMatch(msg);
    });
  }
});

describe('non-finite numbers stop jobs loudly', () => {
  it('tune --lr 1e30 stops at the first non-finite loss with a named error; best stays finite and is named', async () => {
    const out = join(dir, 'tune-nan');
    const { code, r } = await run([
      'tune',
      model,
      '--train',
      train,
      '--valid',
      valid,
      '--adapters',
      '1:1',
      '--steps',
      '6',
      '--eval-every',
      '1',
      '--batch',
      '4',
      '--lr',
      '1e30',
      '--warmup',
      '2',
      '--clip',
      '0',
      '--out',
      out,
    ]);
    expect(code).toBe(1);
    expect(r.error!.name).toBe('NonFiniteError');
    // Warm-up makes step 1 a zero-lr step (finite, the best); step 2 at lr 5e29 breaks the weights.
    expect(r.error!.message).toMatch(
      /tune: the (training loss|gradient norm|validation loss) is (NaN|Infinity|-Infinity) (at step \d+; training stopped before applying it|of the weights after step 2; training stopped)/,
    );
    expect(r.error!.message).toMatch(/best checkpoint \(step 1, validation loss \d+\.\d+\) is kept as best/);
    expect(existsSync(join(out, 'adapter.json'))).toBe(false);
    const man = JSON.parse(await readFile(join(out, 'run', 'manifest.json'), 'utf8'));
    const best = man.checkpoints.find((c: { id: string }) => c.id === 'best');
    expect(Number.isFinite(best.meta.valLoss)).toBe(true);
  });

  it('compress refuses a model with NaN weights; eval reports NaN logits as an error, not 0%', async () => {
    const w = randomTestModel(spec, 3);
    w.get('layers.1.mlp.up.weight')!.data[7] = NaN;
    const nan = join(dir, 'nan-model');
    await hfModel(nan, w);
    const c = await run([
      'compress',
      nan,
      '--method',
      'svd',
      '--keep',
      '0.5',
      '--adapters',
      '1:1',
      '--support',
      train,
      '--out',
      join(dir, 'nan-emu'),
    ]);
    expect(c.code).toBe(1);
    expect(c.r.error!.name).toBe('NonFiniteError');
    expect(c.r.error!.message).toMatch(/\[layers\.1\.mlp\.up\.weight\]: 1 of \d+ values are not finite \(first: NaN at index 7\)/);
    expect(existsSync(join(dir, 'nan-emu', 'emulator.json'))).toBe(false);
    const e = await run(['eval', nan, '--task', test]);
    expect(e.code).toBe(1);
    expect(e.r.error!.name).toBe('NonFiniteError');
    expect(e.r.error!.message).toMatch(/logits are not finite/);
  });
});

describe('tuning options are bounded', () => {
  it('--lora 100000 is refused before allocating, naming the width', async () => {
    const t0 = performance.now();
    const rss0 = process.memoryUsage().rss;
    const { code, r } = await run([
      'tune',
      model,
      '--train',
      train,
      '--adapters',
      '1:1',
      '--steps',
      '1',
      '--lora',
      '100000',
      '--out',
      join(dir, 'big-lora'),
    ]);
    expect(code).toBe(1);
    expect(r.error!.message).toMatch(/LoRA rank 100000 exceeds the width of layers\.0\.attn\.q \(min\(in 16, out 16\) = 16\)/);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 << 20);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('--checkpoint-every 0 is rejected (it meant never) and the flag is in --help', async () => {
    const { code, r } = await run([
      'tune',
      model,
      '--train',
      train,
      '--adapters',
      '1:1',
      '--steps',
      '1',
      '--checkpoint-every',
      '0',
      '--out',
      join(dir, 'ce0'),
    ]);
    expect(code).toBe(2);
    expect(r.error!.message).toMatch(/--checkpoint-every expects a positive number of steps, got 0/);
    const e = await run([
      'tune',
      model,
      '--train',
      train,
      '--adapters',
      '1:1',
      '--steps',
      '1',
      '--eval-every',
      '0',
      '--out',
      join(dir, 'ee0'),
    ]);
    expect(e.code).toBe(2);
    expect(e.r.error!.message).toMatch(/--eval-every expects a positive number of steps, got 0/);
    const c = captureIO();
    expect(await main(['tune', '--help'], c.io, dir)).toBe(0);
    expect(c.out.join('\n')).toMatch(/--checkpoint-every N/);
  });
});

describe('one tuning run per folder', () => {
  it('a second `tune` on a folder another live run holds is refused, naming the holder', async () => {
    const out = join(dir, 'locked');
    const lock = await acquireRunLock(join(out, 'run'));
    try {
      const { code, r } = await run(['tune', model, '--train', train, '--adapters', '1:1', '--steps', '1', '--out', out]);
      expect(code).toBe(1);
      expect(r.error!.name).toBe('RunLockedError');
      expect(r.error!.message).toMatch(/is in use by another run \(pid \d+ on /);
    } finally {
      await lock.release();
    }
    expect((await run(['tune', model, '--train', train, '--adapters', '1:1', '--steps', '1', '--batch', '4', '--out', out])).code).toBe(0);
  });
});

describe('data files of several GB', () => {
  it('are refused before reading, with their size named (a 3 GiB sparse file costs no disk)', async () => {
    const big = join(dir, 'huge.jsonl');
    await writeFile(big, '');
    await truncate(big, 3 * 2 ** 30);
    const t0 = performance.now();
    const rss0 = process.memoryUsage().rss;
    const { code, r } = await run(['tune', model, '--train', big, '--adapters', '1:1', '--steps', '1', '--out', join(dir, 'o-huge')]);
    expect(code).toBe(1);
    expect(r.error!.name).toBe('DatasetError');
    expect(r.error!.message).toMatch(/huge\.jsonl: file is 3\.00 GiB, more than 1\.00 GiB \(the limit for one dataset file\)/);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(100 << 20);
  });
});

describe('Node file errors are named and say which file', () => {
  it('a folder given as a data file, and a missing file', async () => {
    const a = await run(['eval', model, '--task', join(dir, 'nope.jsonl')]);
    expect(a.code).not.toBe(0);
    expect(a.r.error!.message).toMatch(/nope\.jsonl/);
    const sub = join(dir, 'a-folder.jsonl');
    await mkdir(sub, { recursive: true });
    const b = await run(['tune', model, '--train', sub, '--adapters', '1:1', '--steps', '1', '--out', join(dir, 'o-eisdir')]);
    expect(b.code).toBe(1);
    expect(b.r.error!.message).toMatch(/a-folder\.jsonl.*(it is a folder, not a file|EISDIR)/);
  });
});
