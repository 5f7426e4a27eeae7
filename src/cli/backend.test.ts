import { afterEach, describe, expect, it } from 'vitest';
import { DawnUnavailableError, setDawnSpecifierForTests } from '../engine/webgpu/node';
import { WebGpuUnavailableError } from '../engine/webgpu/backend';
import { backendKind, openCliBackend } from './backend';
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
    expect(b.run).toMatchObject({ kind: 'cpu', why: expect.stringMatching(/^WebGPU unavailable: WebGPU in Node needs the optional package 'webgpu'/) });
    expect(err[0]).toMatch(/^backend: cpu \(.+\) — WebGPU unavailable: /);
  });
});
