// Node-side checks of the WebGPU backend's pure helpers (the kernels themselves run in Chromium: e2e/).
import { describe, expect, it } from 'vitest';
import { bucketBytes, type WebGpuInfo } from './backend';
import { describeWebGpuFeatures } from './select';
import { layerNormKernel, matmulKernel } from './kernels/index';

describe('bucketBytes (buffer pool size classes)', () => {
  it('covers the request, is 256-byte aligned and wastes at most 25% above 1 KiB', () => {
    for (let b = 1; b < 5_000_000; b = Math.ceil(b * 1.37) + 1) {
      const c = bucketBytes(b);
      expect(c).toBeGreaterThanOrEqual(b);
      expect(c % 256).toBe(0);
      if (b > 1024) expect(c / b).toBeLessThanOrEqual(1.25);
    }
  });
  it('maps nearby sizes to the same class so freed buffers are reused', () => {
    expect(bucketBytes(4000)).toBe(bucketBytes(4090));
    expect(bucketBytes(1)).toBe(256);
  });
});

describe('kernel sources', () => {
  it('bake compile-time variants into distinct sources (pipeline cache keys)', () => {
    const variants = new Set([
      matmulKernel(false, false).src,
      matmulKernel(true, false).src,
      matmulKernel(false, true).src,
      matmulKernel(true, true).src,
    ]);
    expect(variants.size).toBe(4);
    expect(layerNormKernel(false).src).not.toBe(layerNormKernel(true).src);
    // Memoised: the same variant is the same object, so its source string is built once.
    expect(matmulKernel(true, false)).toBe(matmulKernel(true, false));
  });
});

describe('describeWebGpuFeatures (backend badge)', () => {
  const base = {
    vendor: 'v',
    architecture: 'a',
    device: '',
    description: '',
    isFallbackAdapter: false,
    features: [],
    limits: {} as WebGpuInfo['limits'],
  };
  it('says what is available and what is used', () => {
    const on: WebGpuInfo = {
      ...base,
      shaderF16: true,
      subgroups: true,
      subgroupMinSize: 32,
      subgroupMaxSize: 32,
      uses: { subgroupMatmul: true, f16Operands: 'native' },
    };
    expect(describeWebGpuFeatures(on)).toBe(
      'subgroups: used (matmul, size 32-32); shader-f16: available, f16 matmul operands read natively',
    );
    const off: WebGpuInfo = {
      ...base,
      shaderF16: false,
      subgroups: false,
      subgroupMinSize: 0,
      subgroupMaxSize: 0,
      uses: { subgroupMatmul: false, f16Operands: 'packed' },
    };
    expect(describeWebGpuFeatures(off)).toBe(
      'subgroups: not available; shader-f16: not available (f16 matmul operands read as packed words)',
    );
  });
});
