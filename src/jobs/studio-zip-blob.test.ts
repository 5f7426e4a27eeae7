/**
 * The studio keeps a built package's zip as a Blob of parts (workers/studio/zip-blob.ts): the same bytes as
 * zipEmulatorPackage, on random files (an empty one, a non-ASCII name, sizes that are not multiples of 4),
 * and its CRC-32 against known values; with emulator.safetensors given as tensors (made slice by slice), the
 * bytes of serializeSafetensors zipped the same way.
 */
import { describe, expect, it } from 'vitest';
import { crc32, zipEntriesBlob, zipPackageBlob } from '../../workers/studio/zip-blob';
import { serializeSafetensors, type WriteDType } from '../model/safetensors';
import type { WeightMap } from '../model/weights';
import { type PackageWeights, unzipEmulatorPackage, zipEmulatorPackage } from '../ot/emulator/package';

describe('zip of a package as a Blob of parts', () => {
  it('CRC-32 of known inputs', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    // Continued over parts, as zlib's crc32(data, value).
    const b = Uint8Array.from({ length: 1001 }, (_, i) => (i * 131 + 7) & 255);
    expect(crc32(b.subarray(600), crc32(b.subarray(0, 600)))).toBe(crc32(b));
  });

  it('is byte for byte zipEmulatorPackage', async () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
    const files = new Map<string, Uint8Array>([
      ['emulator.safetensors', Uint8Array.from({ length: 100_003 }, rnd)],
      ['emulator.json', new TextEncoder().encode('{"format":"x"}\n')],
      ['tokenizer.json', Uint8Array.from({ length: 4097 }, rnd)],
      ['empty.txt', new Uint8Array(0)],
      ['notes-é.txt', Uint8Array.from({ length: 33 }, rnd)],
    ]);
    const want = zipEmulatorPackage(files);
    const got = new Uint8Array(await zipPackageBlob(files).arrayBuffer());
    expect(got.length).toBe(want.length);
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
    const back = unzipEmulatorPackage(got);
    for (const [k, v] of files) expect(Buffer.from(back.get(k)!).equals(Buffer.from(v)), k).toBe(true);
  });

  it('with emulator.safetensors as tensors: the zip of serializeSafetensors, slices across tensor ends', async () => {
    const rand = (n: number) => Float32Array.from({ length: n }, () => (Math.random() - 0.5) * 8);
    const json = new TextEncoder().encode(`{"seed":${Math.random()}}\n`);
    const tok = Uint8Array.from({ length: 3001 }, () => (Math.random() * 256) | 0);
    for (const dtype of ['BF16', 'F32', 'F16'] as WriteDType[]) {
      const weights: WeightMap = new Map([
        ['b.weight', { dtype: 'F32', shape: [37, 11], data: rand(407) }],
        ['a.weight', { dtype: 'F32', shape: [5], data: rand(5) }],
        ['c.bias', { dtype: 'F32', shape: [64], data: rand(64) }],
      ]);
      const metadata = { format: 'pt', gradot: 'test/v1' };
      const want = zipEmulatorPackage(
        new Map([
          ['emulator.json', json],
          ['emulator.safetensors', serializeSafetensors(weights, { dtype, metadata })],
          ['tokenizer.json', tok],
        ]),
      );
      const written: string[] = [];
      const w: PackageWeights = { kind: 'safetensors', weights, dtype, metadata, onWritten: (n) => written.push(n) };
      // Writing order as the job gives it, slices of 16 elements (a tensor spans several, ends mid-slice).
      const blob = zipEntriesBlob(
        [
          ['emulator.json', json],
          ['emulator.safetensors', w],
          ['tokenizer.json', tok],
        ],
        undefined,
        16,
      );
      const got = new Uint8Array(await blob.arrayBuffer());
      expect(got.length, dtype).toBe(want.length);
      expect(Buffer.from(got).equals(Buffer.from(want)), dtype).toBe(true);
      expect(written).toEqual(['a.weight', 'b.weight', 'c.bias']);
    }
  });
});
