// `gradot export-onnx` and `gradot ort-eval` end to end on small HF folders (a dense LLaMA-family model
// with the demo tokenizer, and a compressed GPT-2 with rank-factored linears and a pruned MLP).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main';
import { randomModel, smallSpec, writeHFFolder } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import { captureIO } from '../cli/test-io';

const DEMO = join(__dirname, '../../public/models/demo');
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-onnx-cli-'));
  const spec = smallSpec('llama', { numLayers: 2, vocabSize: 4096, maxPositions: 64 });
  await writeHFFolder(join(dir, 'llama'), spec, randomModel(spec, 1, { std: 0.1 }), {
    baseConfig: { eos_token_id: 4095, bos_token_id: 4095 },
    extraFiles: {
      'tokenizer.json': readFileSync(join(DEMO, 'tokenizer.json')),
      'tokenizer_config.json': readFileSync(join(DEMO, 'tokenizer_config.json')),
    },
  });
  const cspec: ModelSpec = {
    ...smallSpec('gpt2', { numLayers: 4 }),
    layers: [
      { source: 0, ranks: {}, mlpWidth: 128 },
      { source: 2, ranks: { q: 4, v: 2, up: 8 }, mlpWidth: 64 },
      { source: 3, ranks: {}, mlpWidth: 128 },
    ],
  };
  await writeHFFolder(join(dir, 'compressed'), cspec, randomModel(cspec, 2, { std: 0.1 }));
  const lines = [
    { context: 'The cat sat on the', choices: [' mat', ' moon', ' idea'], label: 0 },
    { context: 'Water is', choices: [' wet', ' dry'], label: 0 },
    { context: 'One, two,', choices: [' three', ' blue', ' sky'], label: 0 },
  ];
  writeFileSync(join(dir, 'mc.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gradot export-onnx / ort-eval', () => {
  it('exports a dense model with its tokenizer and verifies it', async () => {
    const c = captureIO();
    const code = await main(['export-onnx', join(dir, 'llama'), '--out', join(dir, 'out-llama'), '--verify', '--json'], c.io);
    expect(code).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.state).toBe('full');
    expect(r.files).toEqual(['config.json', 'generation_config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
    expect(r.verify.maxRelErr).toBeLessThan(1e-4);
    const gen = JSON.parse(await readFile(join(dir, 'out-llama', 'generation_config.json'), 'utf8'));
    expect(gen.eos_token_id).toBe(4095);
  });

  it('exports a compressed model (factored linears, pruned MLP, dropped block) and verifies it', async () => {
    const c = captureIO();
    expect(await main(['export-onnx', join(dir, 'compressed'), '--out', join(dir, 'out-c'), '--verify', '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.state).toBe('emulator');
    expect(r.layers).toBe(3);
    expect(r.verify.maxRelErr).toBeLessThan(1e-4);
  });

  it('ort-eval gives the engine its multiple-choice numbers', async () => {
    const c = captureIO();
    expect(
      await main(['ort-eval', join(dir, 'llama'), '--task', join(dir, 'mc.jsonl'), '--compare', '--batch-size', '4', '--json'], c.io),
    ).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.kind).toBe('mc');
    expect(r.n).toBe(3);
    expect(r.acc).toBe(r.engine.acc);
    expect(r.accNorm).toBe(r.engine.accNorm);
  });
});
