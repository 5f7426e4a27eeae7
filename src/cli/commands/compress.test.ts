import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../main';
import { randomTestModel, smallSpec, writeHFFolder } from '../../model/random-model';
import { REPO_ROOT } from './ot-shared';
import { readEmulatorPackage, unzipEmulatorPackage } from '../../ot/emulator/package';
import { paramCounts } from '../../model/params';
import { captureIO } from '../test-io';

let dir = '';
let model = '';
let support = '';
const words = ['red', 'blue', 'green', 'small', 'large', 'warm', 'cold', 'fast', 'the', 'house', 'river', 'stone'];
const textRows = (n: number, off: number): string =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      text: Array.from({ length: 12 }, (_, k) => words[(i * 7 + k * 5 + off) % words.length]).join(' ') + '.',
    }),
  ).join('\n') + '\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-compress-'));
  model = join(dir, 'model');
  const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
  await writeHFFolder(model, spec, randomTestModel(spec, 5));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(model, f));
  await mkdir(join(dir, 'data'));
  support = join(dir, 'data', 'support.jsonl');
  await writeFile(support, textRows(20, 0));
  await writeFile(join(dir, 'data', 'heldout.jsonl'), jsonlMc());
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function jsonlMc(): string {
  return (
    Array.from({ length: 8 }, (_, i) =>
      JSON.stringify({ context: `Word: ${words[i]}\nSame:`, choices: [` ${words[i]}`, ` ${words[i + 1]}`], label: i % 2 }),
    ).join('\n') + '\n'
  );
}

async function readFolder(p: string): Promise<Map<string, Uint8Array>> {
  const m = new Map<string, Uint8Array>();
  for (const f of ['emulator.json', 'emulator.safetensors']) m.set(f, new Uint8Array(await readFile(join(p, f))));
  return m;
}

describe('gradot compress', () => {
  it('builds a gradot package, reports params / losses / held-out shift as one JSON line, package readable', async () => {
    const c = captureIO();
    const out = join(dir, 'emu-gradot');
    const code = await main(
      [
        'compress',
        model,
        '--method',
        'gradot',
        '--keep',
        '0.5',
        '--adapters',
        '1:1',
        '--support',
        support,
        '--out',
        out,
        '--seq',
        '16',
        '--batch',
        '2',
        '--support-batches',
        '3',
        '--heldout-batches',
        '2',
        '--lambda-mode',
        'balanced',
        '--json',
      ],
      c.io,
      dir,
    );
    expect(c.out.length).toBe(1);
    expect(code, c.out[0]).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r).toMatchObject({
      ok: true,
      command: 'compress',
      method: 'gradot',
      keep: 0.5,
      split: { bottom: 1, top: 1 },
      lambdaMode: 'balanced',
    });
    expect(r.params.middleAfter).toBeLessThanOrEqual(r.params.middleTarget);
    expect(r.params.middleKept).toBeGreaterThan(0.45);
    expect(r.params.after).toBeLessThan(r.params.before);
    expect(r.layers.length).toBe(4);
    expect(r.layers[1].role).toBe('middle');
    expect(r.support.batches).toBe(3);
    expect(Number.isFinite(r.supportLoss.full) && Number.isFinite(r.supportLoss.emulator)).toBe(true);
    expect(r.heldout.batches).toBe(2);
    expect(r.heldout.from).toContain('held out of the support pass');
    expect(r.heldout.gradShift).toBeGreaterThan(0);
    expect(r.heldout.gradShift).toBeLessThan(2);
    expect(r.heldout.emulatorLoss).not.toBe(r.heldout.fullLoss);
    expect(r.seconds.support).toBeGreaterThan(0);
    expect(r.readings.budget).toMatch(/^budget\//);
    expect(c.err.some((l) => l.includes('support'))).toBe(true);
    const pkg = readEmulatorPackage(await readFolder(out));
    expect(pkg.meta.method).toBe('gradot');
    expect(paramCounts(pkg.meta.spec).total).toBe(r.params.after);
    expect(existsSync(join(out, 'tokenizer.json')) && existsSync(join(out, 'tokenizer_config.json'))).toBe(true);
    // The package opens as a model for the other commands (tokenizer included).
    const c2 = captureIO();
    expect(await main(['inspect', out, '--json'], c2.io, dir)).toBe(0);
    expect(JSON.parse(c2.out[0]!).kind).toBe('emulator');
  });

  it('svd with --heldout FILE (multiple choice, its text) and --zip; none gives zero shift', async () => {
    const c = captureIO();
    const zip = join(dir, 'emu-svd.zip');
    expect(
      await main(
        [
          'compress',
          model,
          '--method',
          'svd',
          '--keep',
          '0.6',
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
          '2',
          '--heldout',
          join(dir, 'data', 'heldout.jsonl'),
          '--json',
        ],
        c.io,
        dir,
      ),
      c.out[0],
    ).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.heldout.from).toContain('heldout.jsonl');
    expect(r.files).toEqual(expect.arrayContaining(['emulator.json', 'emulator.safetensors', 'tokenizer.json']));
    const pkg = readEmulatorPackage(unzipEmulatorPackage(new Uint8Array(await readFile(zip))));
    expect(pkg.meta.method).toBe('svd');
    const c2 = captureIO();
    expect(
      await main(
        [
          'compress',
          model,
          '--method',
          'none',
          '--keep',
          '1',
          '--adapters',
          '1:1',
          '--support',
          support,
          '--out',
          join(dir, 'emu-none'),
          '--seq',
          '16',
          '--batch',
          '2',
          '--support-batches',
          '2',
          '--json',
        ],
        c2.io,
        dir,
      ),
      c2.out[0],
    ).toBe(0);
    const n = JSON.parse(c2.out[0]!);
    expect(n.heldout.gradShift).toBeLessThan(1e-5);
    expect(n.supportLoss.emulator).toBeCloseTo(n.supportLoss.full, 5);
  });

  it('gradot --mlp drd --rank-allocation global: recorded readings, budget met', async () => {
    const c = captureIO();
    const out = join(dir, 'emu-drd');
    expect(
      await main(
        [
          'compress',
          model,
          '--method',
          'gradot',
          '--keep',
          '0.5',
          '--adapters',
          '1:1',
          '--support',
          support,
          '--out',
          out,
          '--mlp',
          'drd',
          '--rank-allocation',
          'global',
          '--lambda-attn',
          '0',
          '--lambda-mlp',
          '0',
          '--seq',
          '16',
          '--batch',
          '2',
          '--support-batches',
          '2',
          '--heldout-batches',
          '1',
          '--json',
        ],
        c.io,
        dir,
      ),
      c.out[0],
    ).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.readings.mlp).toMatch(/drd/);
    expect(r.readings.rankAllocation).toMatch(/global/);
    expect(r.layers[1].ranks.up).toBeGreaterThan(0);
    expect(r.params.middleAfter).toBeLessThanOrEqual(r.params.middleTarget);
    expect(readEmulatorPackage(await readFolder(out)).meta.budget.paramsAfter).toBe(r.params.middleAfter);
  });

  it('prints a human report without --json', async () => {
    const c = captureIO();
    expect(
      await main(
        [
          'compress',
          model,
          '--method',
          'drop',
          '--keep',
          '0.5',
          '--adapters',
          '1:1',
          '--support',
          support,
          '--out',
          join(dir, 'emu-drop'),
          '--seq',
          '16',
          '--batch',
          '2',
          '--support-batches',
          '1',
          '--heldout',
          'none',
        ],
        c.io,
        dir,
      ),
    ).toBe(0);
    const text = c.out.join('\n');
    expect(text).toContain('parameters:');
    expect(text).toContain('support loss');
    expect(text).toContain('held-out: none');
  });

  it('bad --keep, missing support file, unknown method: usage errors (exit 2) naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [['--method', 'gradot', '--keep', '1.5', '--support', support, '--out', 'x'], /--keep must be in \(0, 1\]/],
      [['--method', 'gradot', '--keep', 'half', '--support', support, '--out', 'x'], /--keep expects a number/],
      [['--method', 'gradot', '--support', support, '--out', 'x'], /--keep F is required/],
      [
        ['--method', 'gradot', '--keep', '0.5', '--support', join(dir, 'nope.jsonl'), '--out', 'x'],
        /--support .*nope\.jsonl: no such file/,
      ],
      [['--method', 'gradot', '--keep', '0.5', '--out', 'x'], /--support FILE is required/],
      [['--method', 'magic', '--keep', '0.5', '--support', support, '--out', 'x'], /unknown method 'magic'/],
      [
        ['--method', 'svd', '--keep', '0.5', '--support', support, '--out', 'x', '--mlp', 'drd'],
        /--mlp scp\|drd applies to --method gradot/,
      ],
    ];
    for (const [args, re] of cases) {
      const c = captureIO();
      expect(await main(['compress', model, ...args, '--json'], c.io, dir)).toBe(2);
      const r = JSON.parse(c.out[0]!);
      expect(r.ok).toBe(false);
      expect(r.error.name).toBe('UsageError');
      expect(r.error.message).toMatch(re);
    }
  });
});
