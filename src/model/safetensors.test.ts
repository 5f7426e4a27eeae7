import { describe, expect, it } from 'vitest';
import {
  floatToBF16,
  floatToHalf,
  halfToFloat,
  parseSafetensors,
  parseSafetensorsHeader,
  SafetensorsReader,
  serializeSafetensors,
} from './safetensors';
import { SafetensorsError } from './errors';
import { MemorySource } from './source';
import type { HostTensor, WeightMap } from './weights';

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 4;
  }
  return out;
}

function t(shape: number[], data: Float32Array): HostTensor {
  return { dtype: 'F32', shape, data };
}

/** Builds a file from a raw header object and a data section, bypassing the writer's validation. */
function rawFile(header: unknown, data: Uint8Array, headerLen?: number): Uint8Array {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectCode(fn: () => unknown, code: string, mention?: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as SafetensorsError).code).toBe(code);
    expect((e as Error).message).toContain('bad.safetensors');
    if (mention) expect((e as Error).message).toContain(mention);
    return;
  }
  throw new Error(`expected SafetensorsError ${code}`);
}

describe('safetensors round trip', () => {
  const weights: WeightMap = new Map([
    ['b.weight', t([3, 5], rand(15, 1))],
    ['a.bias', t([5], rand(5, 2))],
    ['scalar', t([], new Float32Array([1.5]))],
    ['empty', t([0, 4], new Float32Array(0))],
  ]);

  it('F32 is exact, with metadata, 8-byte aligned header padded with spaces', () => {
    const bytes = serializeSafetensors(weights, { metadata: { format: 'pt', z: '1' } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(headerText.slice(headerText.lastIndexOf('}') + 1))).toBe(true);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt', z: '1' });
    for (const [k, v] of weights) {
      const got = tensors.get(k)!;
      expect(got.shape).toEqual(v.shape);
      expect(got.dtype).toBe('F32');
      expect(Array.from(got.data)).toEqual(Array.from(v.data));
    }
    // data laid out in sorted name order
    const h = parseSafetensorsHeader(bytes);
    const order = [...h.entries.entries()].sort((a, b) => a[1].begin - b[1].begin).map(([k]) => k);
    expect(order).toEqual(['a.bias', 'b.weight', 'empty', 'scalar']);
  });

  it('is deterministic regardless of insertion order', () => {
    const reversed = new Map([...weights].reverse());
    expect(serializeSafetensors(reversed, { dtype: 'F16' })).toEqual(serializeSafetensors(weights, { dtype: 'F16' }));
  });

  it('F16 and BF16 round trips stay within half/bfloat precision', () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const { tensors } = parseSafetensors(serializeSafetensors(weights, { dtype }));
      const w = tensors.get('b.weight')!;
      expect(w.dtype).toBe(dtype);
      const src = weights.get('b.weight')!.data;
      const tol = dtype === 'F16' ? 2 ** -11 : 2 ** -8;
      for (let i = 0; i < src.length; i++) expect(Math.abs(w.data[i]! - src[i]!)).toBeLessThanOrEqual(Math.abs(src[i]!) * tol + 1e-7);
    }
  });

  it('parses from a pooled Node Buffer (non-zero byteOffset, shared ArrayBuffer)', () => {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const bytes = serializeSafetensors(weights, { dtype });
      const buf = Buffer.from(bytes);
      const { tensors } = parseSafetensors(buf);
      const want = parseSafetensors(new Uint8Array(bytes)).tensors;
      expect(Array.from(tensors.get('b.weight')!.data)).toEqual(Array.from(want.get('b.weight')!.data));
      expect(Array.from(tensors.get('a.bias')!.data)).toEqual(Array.from(want.get('a.bias')!.data));
    }
  });

  it('reads by range through a ModelSource', async () => {
    const bytes = serializeSafetensors(weights, { dtype: 'BF16' });
    const r = await SafetensorsReader.open(new MemorySource({ 'm.safetensors': bytes }), 'm.safetensors');
    expect(r.names.sort()).toEqual(['a.bias', 'b.weight', 'empty', 'scalar']);
    const full = parseSafetensors(bytes).tensors;
    expect(Array.from((await r.read('b.weight')).data)).toEqual(Array.from(full.get('b.weight')!.data));
  });

  it('decodes handwritten F16 bits: subnormals, inf, nan, -0', () => {
    const bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const want = [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 65504, Infinity, -Infinity, NaN, 0.333251953125];
    const data = new Uint8Array(bits.length * 2);
    bits.forEach((b, i) => new DataView(data.buffer).setUint16(2 * i, b, true));
    const file = rawFile({ x: { dtype: 'F16', shape: [bits.length], data_offsets: [0, data.length] } }, data);
    const got = parseSafetensors(file).tensors.get('x')!.data;
    want.forEach((w, i) => (Number.isNaN(w) ? expect(Number.isNaN(got[i]!)).toBe(true) : expect(Object.is(got[i], w)).toBe(true)));
  });
});

describe('f16 / bf16 conversion', () => {
  it('halfToFloat∘floatToHalf is the identity on every non-NaN half', () => {
    for (let h = 0; h < 65536; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) {
        expect(Number.isNaN(halfToFloat(floatToHalf(f)))).toBe(true);
        continue;
      }
      expect(floatToHalf(f)).toBe(h);
    }
  });

  it('rounds to nearest even, overflows to inf, underflows to 0', () => {
    // halfway between 1 and 1+2^-10 -> even (1); halfway between 1+2^-10 and 1+2^-9 -> 1+2^-9
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds up past max
    expect(floatToHalf(65519)).toBe(0x7bff);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(-1e6)).toBe(0xfc00);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // exactly half the smallest subnormal -> even (0)
    expect(floatToHalf(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal units -> 2
    expect(floatToHalf(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(floatToHalf(1e-10)).toBe(0);
    expect(floatToHalf(-1e-10)).toBe(0x8000);
    expect(floatToHalf(2 ** -14 - 2 ** -25)).toBe(0x0400); // carries out of subnormal into smallest normal
    expect(halfToFloat(floatToHalf(NaN))).toBeNaN();
  });

  it('matches a brute-force nearest search on random floats', () => {
    const xs = rand(2000, 7);
    for (const x0 of xs) {
      const x = Math.fround(x0 * 3e-3);
      const h = floatToHalf(x);
      const d = Math.abs(halfToFloat(h) - x);
      // neighbours are never strictly closer
      for (const nb of [h - 1, h + 1]) {
        if ((nb & 0x7fff) > 0x7bff || nb < 0) continue;
        if (((nb ^ h) & 0x8000) !== 0) continue;
        expect(Math.abs(halfToFloat(nb) - x)).toBeGreaterThanOrEqual(d);
      }
    }
  });

  it('bf16 rounds to nearest even and keeps NaN', () => {
    expect(floatToBF16(1)).toBe(0x3f80);
    expect(floatToBF16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(floatToBF16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    const nan = floatToBF16(NaN);
    expect((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0).toBe(true);
    expect(floatToBF16(Infinity)).toBe(0x7f80);
  });
});

describe('malformed files', () => {
  const good = serializeSafetensors(new Map([['w', t([2, 3], rand(6, 3))]]));
  const F = 'bad.safetensors';

  it('file shorter than 8 bytes', () => {
    expectCode(() => parseSafetensors(good.subarray(0, 5), F), 'truncated');
  });
  it('truncated inside the header', () => {
    expectCode(() => parseSafetensors(good.subarray(0, 20), F), 'truncated');
  });
  it('truncated inside the data', () => {
    expectCode(() => parseSafetensors(good.subarray(0, good.length - 4), F), 'offsets-out-of-range', 'w');
  });
  it('header length lying: larger than the file', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, BigInt(good.length), true);
    expectCode(() => parseSafetensors(bad, F), 'truncated');
  });
  it('header length lying: absurdly large', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, 2n ** 40n, true);
    expectCode(() => parseSafetensors(bad, F), 'header-too-large');
  });
  it('header length lying: shorter than the JSON', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, 10n, true);
    expectCode(() => parseSafetensors(bad, F), 'bad-header-json');
  });
  it('data_offsets past the end', () => {
    const f = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8));
    expectCode(() => parseSafetensors(f, F), 'offsets-out-of-range', 'w');
  });
  it('overlapping tensors', () => {
    const f = rawFile(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      new Uint8Array(12),
    );
    expectCode(() => parseSafetensors(f, F), 'overlapping');
  });
  it('unknown dtype Q4 (header) and unsupported F8_E4M3 (decode)', () => {
    const q4 = rawFile({ w: { dtype: 'Q4', shape: [4], data_offsets: [0, 2] } }, new Uint8Array(2));
    expectCode(() => parseSafetensors(q4, F), 'unknown-dtype', 'w');
    const f8 = rawFile({ w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4));
    // the header is still inspectable; decoding is what fails
    expect(parseSafetensorsHeader(f8, F).entries.get('w')!.dtype).toBe('F8_E4M3');
    expectCode(() => parseSafetensors(f8, F), 'unknown-dtype', 'F8_E4M3');
  });
  it('wrong byte count for shape', () => {
    const f = rawFile({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, new Uint8Array(24));
    expectCode(() => parseSafetensors(f, F), 'size-mismatch', 'w');
  });
  it('non-UTF-8 header', () => {
    const f = new Uint8Array(8 + 4);
    new DataView(f.buffer).setBigUint64(0, 4n, true);
    f.set([0x7b, 0xff, 0xfe, 0x7d], 8);
    expectCode(() => parseSafetensors(f, F), 'bad-header-json', 'UTF-8');
  });
  it('non-JSON header', () => {
    expectCode(() => parseSafetensors(rawFile('{"w": nope}', new Uint8Array(0)), F), 'bad-header-json');
    expectCode(() => parseSafetensors(rawFile('[1,2]', new Uint8Array(0)), F), 'bad-header-json');
  });
  it('malformed entry fields', () => {
    expectCode(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)), F),
      'bad-header',
      'w',
    );
    expectCode(() => parseSafetensors(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), F), 'bad-header');
  });
});
