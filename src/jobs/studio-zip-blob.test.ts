/**
 * The studio keeps a built package's zip as a Blob of parts (workers/studio/zip-blob.ts): the same bytes as
 * zipEmulatorPackage, on random files (an empty one, a non-ASCII name, sizes that are not multiples of 4),
 * and its CRC-32 against known values.
 */
import { describe, expect, it } from 'vitest';
import { crc32, zipPackageBlob } from '../../workers/studio/zip-blob';
import { unzipEmulatorPackage, zipEmulatorPackage } from '../ot/emulator/package';

describe('zip of a package as a Blob of parts', () => {
  it('CRC-32 of known inputs', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
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
});
