/**
 * Host-side weights: what a checkpoint decodes to before it is uploaded to a backend. Data is always
 * Float32Array (F16/BF16 are widened on load) so every consumer handles one element type; `dtype` keeps the
 * on-disk type for reporting and for choosing an export dtype.
 */

export type HostDType = 'F32' | 'F16' | 'BF16';

export interface HostTensor {
  dtype: HostDType;
  shape: number[];
  data: Float32Array;
}

export type WeightMap = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function hostTensor(shape: number[], data?: Float32Array, dtype: HostDType = 'F32'): HostTensor {
  const n = numel(shape);
  const d = data ?? new Float32Array(n);
  if (d.length !== n) throw new Error(`hostTensor: data length ${d.length} does not match shape [${shape.join(', ')}]`);
  return { dtype, shape: [...shape], data: d };
}

/** Row-major 2-D transpose ([r, c] -> [c, r]). */
export function transpose2d(t: HostTensor): HostTensor {
  if (t.shape.length !== 2) throw new Error(`transpose2d: expected a 2-D tensor, got [${t.shape.join(', ')}]`);
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  const src = t.data;
  for (let i = 0; i < r; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) out[j * r + i] = src[row + j]!;
  }
  return { dtype: t.dtype, shape: [c, r], data: out };
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
