import { describe, expect, it } from 'vitest';
import type { WebGpuInfo } from './backend';
import { describeRun, gpuRunInfo, runSummary, shortCpuReason } from './run-info';

const info = (o: Partial<WebGpuInfo>): WebGpuInfo => ({
  vendor: 'nvidia',
  architecture: 'ada',
  device: '',
  description: 'NVIDIA GeForce RTX 4090',
  isFallbackAdapter: false,
  features: [],
  shaderF16: true,
  subgroups: true,
  subgroupMinSize: 32,
  subgroupMaxSize: 32,
  uses: { subgroupMatmul: true, f16Operands: 'native' },
  limits: {
    maxBufferSize: 1,
    maxStorageBufferBindingSize: 1,
    maxComputeWorkgroupStorageSize: 1,
    maxComputeInvocationsPerWorkgroup: 1,
    maxComputeWorkgroupsPerDimension: 1,
    maxStorageBuffersPerShaderStage: 1,
    minStorageBufferOffsetAlignment: 1,
  },
  ...o,
});

describe('the backend line (CLI start of a job, studio badge)', () => {
  it('WebGPU: adapter, software or not, and the f16 / subgroup variants the backend selected', () => {
    expect(describeRun({ kind: 'webgpu', gpu: gpuRunInfo(info({}), 'Dawn') })).toBe(
      'webgpu (Dawn, NVIDIA GeForce RTX 4090, f16: yes, subgroups: yes)',
    );
    // Offered but not selected: the line says what runs, not what the device has.
    const off = info({ uses: { subgroupMatmul: false, f16Operands: 'packed' } });
    expect(describeRun({ kind: 'webgpu', gpu: gpuRunInfo(off, 'Dawn') })).toBe(
      'webgpu (Dawn, NVIDIA GeForce RTX 4090, f16: no, subgroups: no)',
    );
    const sw = info({
      vendor: 'google',
      architecture: 'swiftshader',
      description: '',
      isFallbackAdapter: true,
      shaderF16: false,
      uses: { subgroupMatmul: true, f16Operands: 'packed' },
    });
    expect(describeRun({ kind: 'webgpu', gpu: gpuRunInfo(sw, 'browser') })).toBe(
      'webgpu (browser, google swiftshader, software adapter, f16: no, subgroups: yes)',
    );
  });

  it('CPU: threads (and why fewer), the kernel in words, and why not WebGPU', () => {
    expect(describeRun({ kind: 'cpu', cpu: { threads: 2, reason: null, kernel: 'wasm-relaxed-simd' } })).toBe(
      'cpu (2 threads, relaxed SIMD)',
    );
    expect(
      describeRun({
        kind: 'cpu',
        cpu: { threads: 1, reason: 'the page is not cross-origin isolated (COOP/COEP headers missing)', kernel: 'wasm-simd' },
        why: 'WebGPU unavailable: navigator.gpu is missing',
      }),
    ).toBe(
      'cpu (1 thread: the page is not cross-origin isolated (COOP/COEP headers missing), SIMD) — WebGPU unavailable: navigator.gpu is missing',
    );
    expect(describeRun({ kind: 'cpu' })).toBe('cpu (threads unknown)');
  });

  it("the badge's short form: threads and why one, or the f16 / subgroup variants", () => {
    expect(runSummary({ kind: 'cpu', cpu: { threads: 4, reason: null, kernel: 'wasm-relaxed-simd' } })).toBe('4 threads · relaxed SIMD');
    const isolated = 'SharedArrayBuffer is unavailable (the page is not cross-origin isolated: COOP/COEP headers missing)';
    expect(runSummary({ kind: 'cpu', cpu: { threads: 1, reason: isolated, kernel: 'wasm-simd' } })).toBe(
      '1 thread (not cross-origin isolated) · SIMD',
    );
    expect(shortCpuReason("Atomics.wait is not allowed on a page's main thread (the engine runs multi-threaded inside a worker)")).toBe(
      'Atomics.wait not allowed here',
    );
    expect(shortCpuReason('workers could not start (boom)')).toBe('workers could not start');
    expect(
      runSummary({ kind: 'webgpu', gpu: gpuRunInfo(info({ uses: { subgroupMatmul: true, f16Operands: 'packed' } }), 'browser') }),
    ).toBe('f16: no · subgroups: yes');
  });
});
