/**
 * One pipeline: the CLI commands and the studio worker's API (workers/studio, called here in Node on the
 * CPU backend, exactly as the worker calls it) build byte-identical emulator packages from the same model,
 * support file and options, and give the same five-number protocol report.
 */
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main';
import { captureIO } from '../cli/test-io';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { randomTestModel, smallSpec, writeHFFolder } from '../model/random-model';
import { readEmulatorPackage, unzipEmulatorPackage } from '../ot/emulator/package';
import { api } from '../../workers/studio';
import type { CompressOptions, InputFile, ProtocolRequest } from './studio-api';

let dir = '';
let model = '';
let support = '';
let task = '';
const words = ['red', 'blue', 'green', 'small', 'large', 'warm', 'cold', 'fast', 'the', 'house', 'river', 'stone'];
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const mcRows = (n: number, off: number): unknown[] =>
  Array.from({ length: n }, (_, i) => {
    const k = (i + off) % 8;
    return { context: `Word: ${words[k]}\nSame:`, choices: [` ${words[k]}`, ` ${words[(k + 3) % 8]}`], label: (i + off) % 2 };
  });

/** A report without wall-clock fields and labels (model path, task and support file names differ). */
function comparable(r: unknown): unknown {
  const skip = /seconds|Seconds|tokensPerSec|^(model|modelId|file|task|support|createdAt)$/;
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object')
      return Object.fromEntries(
        Object.entries(x)
          .filter(([k]) => !skip.test(k))
          .map(([k, v]) => [k, walk(v)]),
      );
    return x;
  };
  return walk(r);
}

/** A folder as the studio receives it from a folder drop: paths under the folder's name, Blob data. */
async function inputFiles(folder: string, name: string): Promise<InputFile[]> {
  const out: InputFile[] = [];
  for (const f of (await readdir(folder)).sort()) out.push({ path: `${name}/${f}`, data: new Blob([await readFile(join(folder, f))]) });
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-one-pipeline-'));
  model = join(dir, 'model');
  const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 32 });
  await writeHFFolder(model, spec, randomTestModel(spec, 11));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(model, f));
  support = join(dir, 'support.jsonl');
  // Mixed record kinds would not parse; multiple choice exercises the "as text" encoding (context + answer).
  await writeFile(support, jsonl(mcRows(24, 2)));
  task = join(dir, 'task');
  await mkdir(task);
  await writeFile(join(task, 'train.jsonl'), jsonl(mcRows(12, 0)));
  await writeFile(join(task, 'valid.jsonl'), jsonl(mcRows(4, 5)));
  await writeFile(join(task, 'test.jsonl'), jsonl(mcRows(6, 1)));
  await api.openModel('model', await inputFiles(model, 'model'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CLI and studio worker: one pipeline', () => {
  for (const method of ['gradot', 'svd'] as const) {
    it(`${method}: byte-identical emulator packages`, async () => {
      const zip = join(dir, `cli-${method}.zip`);
      const c = captureIO();
      const code = await main(
        [
          'compress',
          model,
          '--method',
          method,
          '--keep',
          '0.5',
          '--adapters',
          '1:1',
          '--support',
          support,
          '--out',
          zip,
          '--zip',
          '--seq',
          '16',
          '--batch',
          '2',
          '--support-batches',
          '3',
          '--heldout',
          'none',
          '--lambda-attn',
          '0.5',
          '--lambda-mlp',
          '0.25',
          '--seed',
          '3',
          '--json',
        ],
        c.io,
        dir,
      );
      expect(code, c.out[0]).toBe(0);
      const cliZip = new Uint8Array(await readFile(zip));

      const opts: CompressOptions = {
        method,
        keep: 0.5,
        adapters: { bottom: 1, top: 1 },
        lambdaAttn: 0.5,
        lambdaMlp: 0.25,
        seed: 3,
        backend: 'cpu',
        support: { path: 'support.jsonl', data: new Blob([await readFile(support)]) },
        supportExamples: 6,
        supportSeqLen: 16,
        supportBatch: 2,
      };
      const r = await api.compress(opts, () => undefined);
      const studioZip = new Uint8Array(await new Blob([(await api.exportPackage(r.packageId)).bytes as Blob]).arrayBuffer());

      const a = unzipEmulatorPackage(cliZip);
      const b = unzipEmulatorPackage(studioZip);
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      expect(new TextDecoder().decode(b.get('emulator.json'))).toBe(new TextDecoder().decode(a.get('emulator.json')));
      for (const [k, v] of a) expect(Buffer.from(b.get(k)!).equals(Buffer.from(v)), k).toBe(true);
      expect(Buffer.from(studioZip).equals(Buffer.from(cliZip))).toBe(true);
      // Not vacuous: a real compression, and gradot's support pass ran on the 3 × 2 chunks.
      const meta = readEmulatorPackage(a).meta;
      expect(meta.method).toBe(method);
      expect(meta.budget.paramsAfter).toBeLessThan(meta.budget.paramsBefore);
      if (method === 'gradot') expect(meta.support?.batches).toBe(3);
      expect(r.middleAfter).toBe(meta.budget.paramsAfter);
    });
  }

  it('the same five-number report from `gradot ot` and the studio protocol', async () => {
    const c = captureIO();
    const code = await main(
      [
        'ot',
        model,
        '--method',
        'gradot',
        '--keep',
        '0.5',
        '--task',
        task,
        '--adapters',
        '1:1',
        '--epochs',
        '1',
        '--batch',
        '4',
        '--lr',
        '0.001',
        '--seed',
        '0',
        '--support-examples',
        '8',
        '--lambda-attn',
        '0.5',
        '--lambda-mlp',
        '0.25',
        '--out',
        join(dir, 'ot'),
        '--json',
      ],
      c.io,
      dir,
    );
    expect(code, c.out[0]).toBe(0);
    const cli = JSON.parse(c.out[0]!) as Record<string, number | null>;

    const req: ProtocolRequest = {
      setting: { method: 'gradot', keep: 0.5, lambdaAttn: 0.5, lambdaMlp: 0.25, adapters: { bottom: 1, top: 1 } },
      tune: {
        lr: 0.001,
        epochs: 1,
        batchSize: 4,
        gradAccum: 1,
        seqLen: 32,
        seed: 0,
        mode: 'full',
        lora: { rank: 4, alpha: 8, targets: ['q', 'v'] },
      },
      supportExamples: 8,
      fullFT: false,
    };
    const run = await api.runProtocol(req, await inputFiles(task, 'task'), () => undefined);
    const report = run.report as {
      fullZS: number;
      emulatorZS: number;
      emulatorFT: number;
      plugIn: number;
      delta: number;
      compressionRatio: number;
      support: string;
    };
    for (const k of ['fullZS', 'emulatorZS', 'emulatorFT', 'plugIn', 'delta', 'compressionRatio'] as const) {
      expect(cli[k], k).not.toBeNull();
      // The CLI's JSON rounds to 4 decimals; the studio keeps the report's full numbers.
      expect(Math.round(report[k] * 1e4) / 1e4, k).toBe(cli[k]);
    }
    expect(run.fullFT).toBeNull();
    // Beyond the headline numbers (coarse on 6 questions): every metric and the tuning curve agree too.
    const full = (JSON.parse(await readFile(join(dir, 'ot', 'report.json'), 'utf8')) as unknown[])[0];
    expect(comparable(run.report)).toEqual(comparable(full));
    expect(report.support).toMatch(/train\.jsonl \(default\)$/);
  });
});
