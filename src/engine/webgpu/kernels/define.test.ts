import { describe, expect, it } from 'vitest';
import { defineKernel, KernelArgumentError, ro, rw } from './define';
import { adamwKernel, crossEntropyKernel, matmulKernel } from './index';

describe('defineKernel', () => {
  const k = defineKernel({
    name: 'demo',
    bindings: { A: ro(), Ids: ro('i32'), O: rw() },
    uniforms: { n: 'u32', alpha: 'f32', ignore: 'i32', z: 'u32', w: 'u32' },
    body: 'fn main() {}',
  });

  it('writes bindings in declaration order with the uniform last, and the struct from the fields', () => {
    expect(k.src).toContain('struct U { n: u32, alpha: f32, ignore: i32, z: u32, w: u32 }');
    expect(k.src).toContain('@group(0) @binding(0) var<storage, read> A: array<f32>;');
    expect(k.src).toContain('@group(0) @binding(1) var<storage, read> Ids: array<i32>;');
    expect(k.src).toContain('@group(0) @binding(2) var<storage, read_write> O: array<f32>;');
    expect(k.src).toContain('@group(0) @binding(3) var<uniform> u: U;');
    expect(k.bindings).toEqual(['A', 'Ids', 'O']);
  });

  it('packs uniforms by name, in struct order, padded to 16 bytes', () => {
    const ab = k.pack({ w: 9, ignore: -100, alpha: 0.5, z: 7, n: 3 });
    expect(ab.byteLength).toBe(32);
    const dv = new DataView(ab);
    expect(dv.getUint32(0, true)).toBe(3);
    expect(dv.getFloat32(4, true)).toBe(0.5);
    expect(dv.getInt32(8, true)).toBe(-100);
    expect(dv.getUint32(12, true)).toBe(7);
    expect(dv.getUint32(16, true)).toBe(9);
  });

  it('names the field when a value is missing or out of range', () => {
    expect(() => k.pack({ n: 3, alpha: 1, ignore: 0, z: 1 } as never)).toThrow(/uniform 'w' is undefined/);
    expect(() => k.pack({ n: -1, alpha: 1, ignore: 0, z: 1, w: 1 })).toThrow(KernelArgumentError);
    expect(() => k.pack({ n: 1.5, alpha: 1, ignore: 0, z: 1, w: 1 })).toThrow(/'n' = 1.5 is not a u32/);
  });

  it('real kernels: float fields land where the WGSL struct expects them', () => {
    const a = new DataView(
      adamwKernel.pack({
        n: 10,
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        wd: 0.01,
        bc1: 0.5,
        bc2: 0.25,
        gradScale: 2,
      }),
    );
    expect(adamwKernel.src).toContain(
      'struct U { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32, gradScale: f32 }',
    );
    expect(a.getUint32(0, true)).toBe(10);
    expect(a.getFloat32(4 * 8, true)).toBe(2);
    expect(new DataView(crossEntropyKernel.pack({ rows: 1, vocab: 2, ignore: -100 })).getInt32(8, true)).toBe(-100);
    expect(matmulKernel(false, false).uniforms).toEqual(['M', 'N', 'K', 'strideA', 'strideB', 'strideC', 'z0']);
  });
});
