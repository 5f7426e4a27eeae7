import { spawnSync } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { zipSync } from 'fflate';
import { serializeSafetensors } from '../model/safetensors';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from './main';
import { paramCounts } from '../model/params';
import { randomModel, smallSpec, writeHFFolder } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import { captureIO } from './test-io';

let dir = '';
let dense = '';
let compressed = '';
const spec = smallSpec('llama', { numLayers: 3 });
const cspec: ModelSpec = {
  ...smallSpec('gpt2', { numLayers: 4 }),
  layers: [
    { source: 0, ranks: {}, mlpWidth: 128 },
    { source: 2, ranks: { q: 4, v: 2, up: 8 }, mlpWidth: 64 },
    { source: 3, ranks: {}, mlpWidth: 128 },
  ],
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-cli-'));
  dense = join(dir, 'dense');
  compressed = join(dir, 'compressed');
  await writeHFFolder(dense, spec, randomModel(spec, 1), { dtype: 'BF16' });
  await writeHFFolder(compressed, cspec, randomModel(cspec, 2));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gradot inspect', () => {
  it('--json prints one line with architecture and parameter counts', async () => {
    const c = captureIO();
    expect(await main(['inspect', dense, '--json'], c.io)).toBe(0);
    expect(c.out.length).toBe(1);
    const r = JSON.parse(c.out[0]!);
    expect(r).toMatchObject({
      ok: true,
      command: 'inspect',
      family: 'llama',
      modelType: 'llama',
      layers: 3,
      hidden: 32,
      heads: 4,
      kvHeads: 2,
      kind: 'hf',
      headDim: 8,
      intermediate: 64,
      vocab: 64,
      tied: false,
      compressed: false,
      dtypes: ['BF16'],
      tokenizer: null,
      positions: { kind: 'rope', max: 32, offset: 0, ropeTheta: 10000 },
    });
    const p = paramCounts(spec);
    expect(r.params.total).toBe(p.total);
    expect(r.params.blocks[1].attention).toBe(32 * 32 * 2 + 16 * 32 * 2);
    expect(r.params.blocks[1].mlp).toBe(3 * 64 * 32);
    expect(r.params.embeddings).toBe(64 * 32);
    expect(r.params.lmHead).toBe(64 * 32);
    expect(r.fileBytes).toBeGreaterThan(2 * p.total);
    expect(r.files[0].name).toBe('model.safetensors');
  });

  it('reports ranks, widths and source blocks of a compressed model', async () => {
    const c = captureIO();
    expect(await main(['--json', 'inspect', compressed], c.io)).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.compressed).toBe(true);
    expect(r.layers).toBe(3);
    expect(r.params.blocks.map((b: { source: number }) => b.source)).toEqual([0, 2, 3]);
    expect(r.params.blocks[1]).toMatchObject({ mlpWidth: 64, ranks: { q: 4, v: 2, up: 8 } });
    expect(r.params.total).toBe(paramCounts(cspec).total);
  });

  it('human-readable table without --json', async () => {
    const c = captureIO();
    expect(await main(['inspect', compressed], c.io)).toBe(0);
    const text = c.out.join('\n');
    expect(text).toMatch(/model\s+gpt2 \(family gpt2\), compressed/);
    expect(text).toMatch(/block\s+attention\s+mlp\s+total\s+source\s+mlp width\s+ranks/);
    expect(text).toContain('q:4 v:2 up:8');
  });

  it('reports the tokenizer and warns when its ids exceed the model vocab', async () => {
    const words = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`w${i}`, i]));
    const tj = {
      version: '1.0',
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab: words, unk_token: 'w0' },
    };
    const d = join(dir, 'tok');
    const s = smallSpec('opt');
    await writeHFFolder(d, s, randomModel(s, 3), {
      extraFiles: { 'tokenizer.json': JSON.stringify(tj), 'tokenizer_config.json': JSON.stringify({ eos_token: 'w2' }) },
    });
    const c = captureIO();
    expect(await main(['inspect', d, '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.tokenizer).toEqual({ files: 'tokenizer.json', vocabSize: 70, bosId: null, eosId: 2 });
    expect(r.warnings).toEqual(["tokenizer has 70 ids but the model's vocab_size is 64"]);
    expect(c.err).toEqual(["warning: tokenizer has 70 ids but the model's vocab_size is 64"]);
  });

  it('inspects a GradOT emulator package folder and .zip', async () => {
    const meta = {
      format: 'gradot-emulator',
      version: 1,
      source: { modelId: 'tiny-gpt2', sha256: 'x', numLayers: 4, params: 99999 },
      split: { bottom: 1, top: 1 },
      method: 'gradot',
      keep: 0.5,
      lambdaAttn: 1,
      lambdaMlp: 2,
      readings: {},
      budget: { paramsBefore: 1000, paramsTarget: 500, paramsAfter: 490, granularity: 1, kappa: null, keptBlocks: [2] },
      layers: [],
      support: null,
      spec: cspec,
      timings: {},
    };
    const files = {
      'emulator.json': new TextEncoder().encode(JSON.stringify(meta)),
      'emulator.safetensors': serializeSafetensors(randomModel(cspec, 7)),
    };
    const d = join(dir, 'emu');
    await mkdir(d);
    for (const [k, v] of Object.entries(files)) await writeFile(join(d, k), v);
    await writeFile(join(dir, 'emu.zip'), zipSync(files));
    for (const p of [d, join(dir, 'emu.zip')]) {
      const c = captureIO();
      expect(await main(['inspect', p, '--json'], c.io)).toBe(0);
      const r = JSON.parse(c.out[0]!);
      expect(r).toMatchObject({
        kind: 'emulator',
        layers: 3,
        compressed: true,
        dtypes: ['F32'],
        emulator: { modelId: 'tiny-gpt2', method: 'gradot', keptBlocks: [2], split: { bottom: 1, top: 1 } },
      });
      expect(r.params.total).toBe(paramCounts(cspec).total);
    }
    const c = captureIO();
    expect(await main(['inspect', d], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/method\s+gradot, keep 0.5, adapters 1:1/);
    // a package whose weights do not match its spec is rejected with the tensor named
    const bad = randomModel(cspec, 7);
    bad.delete('layers.1.attn.q.weight_a');
    await writeFile(join(d, 'emulator.safetensors'), serializeSafetensors(bad));
    const e = captureIO();
    expect(await main(['inspect', d, '--json'], e.io)).toBe(1);
    expect(JSON.parse(e.out[0]!).error).toMatchObject({ name: 'ModelFormatError', tensor: 'layers.1.attn.q.weight_a' });
  });

  it('--tensors lists HF names with their canonical targets', async () => {
    const c = captureIO();
    expect(await main(['inspect', compressed, '--tensors', '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out[0]!);
    const fused = r.tensorList.find((t: { name: string }) => t.name === 'transformer.h.0.attn.c_attn.weight');
    expect(fused).toEqual({
      name: 'transformer.h.0.attn.c_attn.weight',
      canonical: ['layers.0.attn.q.weight', 'layers.0.attn.k.weight', 'layers.0.attn.v.weight'],
      dtype: 'F32',
      shape: [32, 96],
      file: 'model.safetensors',
    });
    expect(r.tensorList.length).toBe(r.tensors);
    const t = captureIO();
    expect(await main(['inspect', compressed, '--tensors'], t.io)).toBe(0);
    expect(t.out.join('\n')).toMatch(/transformer\.h\.1\.attn\.c_attn\.q\.weight_a\s+layers\.1\.attn\.q\.weight_a\s+F32\s+\[32, 4\]/);
  });

  it('errors: missing folder (exit 1, JSON error), missing argument (exit 2), unknown command', async () => {
    let c = captureIO();
    expect(await main(['inspect', join(dir, 'nope'), '--json'], c.io)).toBe(1);
    expect(JSON.parse(c.out[0]!)).toMatchObject({ ok: false, error: { name: 'ModelFormatError' } });
    c = captureIO();
    expect(await main(['inspect'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('usage: gradot inspect');
    c = captureIO();
    expect(await main(['frobnicate', '--json'], c.io)).toBe(2);
    expect(JSON.parse(c.out[0]!).error.message).toContain("unknown command 'frobnicate'");
    c = captureIO();
    expect(await main(['inspect', dense, '--bogus'], c.io)).toBe(2);
  });

  it('bin/gradot.mjs runs the TypeScript CLI through tsx', () => {
    const r = spawnSync(process.execPath, [join(__dirname, '..', '..', 'bin', 'gradot.mjs'), 'inspect', dense, '--json'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0]!).layers).toBe(3);
  });
});
