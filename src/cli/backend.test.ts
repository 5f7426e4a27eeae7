import { mkdir, mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { randomTestModel, smallSpec, writeHFFolder } from '../model/random-model';
import { REPO_ROOT } from './commands/ot-shared';
import { main } from './main';
import { captureIO } from './test-io';
import { DawnUnavailableError, setDawnSpecifierForTests } from '../engine/webgpu/node';
import { WebGpuUnavailableError } from '../engine/webgpu/backend';
import { backendKind, openCliBackend, runWithCpuFallback } from './backend';
import { CpuBackend } from '../engine/cpu/backend';
import type { Backend } from '../engine/backend';
import { UsageError } from './command';

afterEach(() => setDawnSpecifierForTests('webgpu'));

describe('--backend', () => {
  it('takes cpu, webgpu or auto; else GRADOT_BACKEND; else cpu', () => {
    expect(backendKind({}, {})).toBe('cpu');
    expect(backendKind({}, { GRADOT_BACKEND: 'auto' })).toBe('auto');
    expect(backendKind({ backend: 'webgpu' }, { GRADOT_BACKEND: 'cpu' })).toBe('webgpu');
    expect(() => backendKind({ backend: 'gpu' }, {})).toThrow(UsageError);
    expect(() => backendKind({}, { GRADOT_BACKEND: 'cuda' })).toThrow(/GRADOT_BACKEND must be cpu, webgpu or auto \(got 'cuda'\)/);
  });

  it('cpu: prints the line with the thread count and kernel', async () => {
    const err: string[] = [];
    const b = await openCliBackend({ backend: 'cpu' }, { err: (l) => err.push(l) });
    expect(b.backend.name).toBe('cpu-f32');
    expect(b.run.kind).toBe('cpu');
    expect(err).toEqual([`backend: ${b.line}`]);
    expect(b.line).toMatch(/^cpu \(\d+ threads?(: .+)?, (relaxed SIMD|SIMD|plain JS)\)$/);
    b.close();
  });

  it('a missing Dawn package is a named error under webgpu, and a stated fallback under auto', async () => {
    setDawnSpecifierForTests('gradot-test-no-such-dawn-package');
    const e = await openCliBackend({ backend: 'webgpu' }, { err: () => undefined }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DawnUnavailableError);
    expect(e).toBeInstanceOf(WebGpuUnavailableError);
    expect((e as Error).name).toBe('DawnUnavailableError');
    expect((e as Error).message).toMatch(/optional package 'webgpu' \(Dawn\).*npm install webgpu.*--backend cpu/);
    const err: string[] = [];
    const b = await openCliBackend({ backend: 'auto' }, { err: (l) => err.push(l) });
    expect(b.run).toMatchObject({
      kind: 'cpu',
      why: expect.stringMatching(/^WebGPU unavailable: WebGPU in Node needs the optional package 'webgpu'/),
    });
    expect(err[0]).toMatch(/^backend: cpu \(.+\) — WebGPU unavailable: /);
  });

  it('every compute command reaches the one backend choice (a missing Dawn fails each with the named error)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradot-backend-flag-'));
    try {
      const model = join(dir, 'model');
      const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 32 });
      await writeHFFolder(model, spec, randomTestModel(spec, 3));
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(model, f));
      await mkdir(join(dir, 'task'));
      const rows =
        Array.from({ length: 6 }, (_, i) => JSON.stringify({ context: `Word ${i}:`, choices: [' red', ' blue'], label: i % 2 })).join(
          '\n',
        ) + '\n';
      for (const f of ['train.jsonl', 'test.jsonl']) await writeFile(join(dir, 'task', f), rows);
      await mkdir(join(dir, 'adapter'));
      setDawnSpecifierForTests('gradot-test-no-such-dawn-package');
      const runs: [string, string[]][] = [
        [
          'compress',
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
            'task/train.jsonl',
            '--out',
            'emu',
            '--seq',
            '8',
            '--batch',
            '1',
            '--support-batches',
            '1',
          ],
        ],
        ['tune', ['tune', model, '--adapters', '1:1', '--train', 'task/train.jsonl', '--out', 'tuned', '--steps', '1', '--context', '8']],
        ['eval', ['eval', model, '--task', 'task/test.jsonl', '--context', '8']],
        ['plug', ['plug', model, '--adapter', 'adapter', '--out', 'plugged']],
        ['ot', ['ot', model, '--method', 'none', '--keep', '1', '--adapters', '1:1', '--task', 'task', '--steps', '1', '--context', '8']],
        ['bench', ['bench', '--only', 'train']],
      ];
      for (const [name, argv] of runs) {
        const c = captureIO();
        const code = await main([...argv, '--backend', 'webgpu', '--json'], c.io, dir);
        const r = JSON.parse(c.out[0] ?? '{}') as { ok?: boolean; error?: { name: string } };
        expect(code, `${name}: ${c.out.join('\n')}`).toBe(1);
        expect(r.error?.name, `${name}: ${c.out.join('\n')}`).toBe('DawnUnavailableError');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a job whose GPU device is lost runs again on the CPU backend, saying so; other errors stay errors', async () => {
    const gpu = { name: 'webgpu', lost: false } as unknown as Backend & { lost: boolean };
    const err: string[] = [];
    const seen: string[] = [];
    const r = await runWithCpuFallback(
      gpu,
      async (be) => {
        seen.push(be.name);
        if (be === gpu) {
          gpu.lost = true;
          throw new Error('device lost mid-step');
        }
        return 42;
      },
      { err: (l) => err.push(l) },
      () => new CpuBackend(),
      10,
    );
    expect(r).toBe(42);
    expect(seen).toEqual(['webgpu', 'cpu-f32']);
    expect(err).toEqual(['warning: WebGPU device lost: continuing on the CPU backend from the last checkpoint']);
    const healthy = { name: 'webgpu', lost: false } as unknown as Backend;
    await expect(
      runWithCpuFallback(
        healthy,
        async () => {
          throw new Error('bad data');
        },
        { err: () => undefined },
        () => new CpuBackend(),
        10,
      ),
    ).rejects.toThrow('bad data');
  });
});
