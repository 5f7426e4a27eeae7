/**
 * The studio worker reads model files by ranges through the Blob's byte stream (workers/studio/blob-source.ts):
 * the same bytes as `blob.slice().arrayBuffer()`, the same errors as FileListSource.
 */
import { describe, expect, it } from 'vitest';
import { BlobSource, readBlobRange } from '../../workers/studio/blob-source';
import { FileListSource } from '../model/source';

/** Random bytes (a fresh seed per run: the reads must match whatever the content). */
function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
}

describe('BlobSource: ranged reads through the byte stream', () => {
  it('every range equals the same range read with arrayBuffer(), across chunk boundaries', async () => {
    // Several MiB so a range spans many of the stream's chunks; parts so the Blob is not one buffer.
    const a = randomBytes(3 * 2 ** 20 + 17);
    const b = randomBytes(2 ** 20 + 5);
    const blob = new Blob([a, b]);
    const ranges: [number, number][] = [
      [0, 0],
      [0, 8],
      [3, 3 + 2 ** 20],
      [a.length - 100, a.length + 100],
      [123_457, blob.size],
      [0, blob.size],
    ];
    for (const [s, e] of ranges) {
      const got = await readBlobRange(blob, s, e);
      const want = new Uint8Array(await blob.slice(s, e).arrayBuffer());
      expect(got.byteLength, `[${s}, ${e})`).toBe(e - s);
      expect(got.byteOffset).toBe(0);
      expect(Buffer.from(got).equals(Buffer.from(want)), `[${s}, ${e})`).toBe(true);
    }
  });

  it('reads as FileListSource does, and refuses what it refuses with the same errors', async () => {
    const bytes = randomBytes(70_001);
    const files = new Map([['model.safetensors', new Blob([bytes])]]);
    const ours = new BlobSource(files, 'picked');
    const theirs = new FileListSource(files, 'picked');
    const r = await ours.readRange('model.safetensors', 1000, 65_000);
    expect(Buffer.from(r).equals(Buffer.from(await theirs.readRange('model.safetensors', 1000, 65_000)))).toBe(true);
    await expect(ours.readRange('model.safetensors', 10, 70_002)).rejects.toThrow(/outside the 70001-byte file/);
    await expect(ours.readRange('other.safetensors', 0, 1)).rejects.toThrow(/file not found in picked/);
  });
});
