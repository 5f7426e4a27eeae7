import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from './errors';
import { FileListSource, MemorySource, nodeDirSource, type ModelSource } from './source';

const enc = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

async function exercise(src: ModelSource): Promise<void> {
  expect(await src.list()).toEqual(['a.txt', 'sub/b.bin']);
  expect(await src.has('a.txt')).toBe(true);
  expect(await src.has('nope')).toBe(false);
  expect(await src.size('sub/b.bin')).toBe(6);
  expect(await src.readText('a.txt')).toBe('héllo');
  expect(Array.from(await src.readBytes('sub/b.bin'))).toEqual([0, 1, 2, 3, 4, 5]);
  expect(Array.from(await src.readRange('sub/b.bin', 2, 5))).toEqual([2, 3, 4]);
  expect(Array.from(await src.readRange('sub/b.bin', 6, 6))).toEqual([]);
  await expect(src.readRange('sub/b.bin', 4, 7)).rejects.toThrow(ModelFormatError);
  await expect(src.readBytes('nope')).rejects.toThrow(/nope/);
  await expect(src.size('nope')).rejects.toThrow(ModelFormatError);
}

describe('ModelSource implementations behave the same', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradot-src-'));
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'a.txt'), 'héllo');
    await writeFile(join(dir, 'sub', 'b.bin'), new Uint8Array([0, 1, 2, 3, 4, 5]));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('MemorySource', async () => {
    await exercise(new MemorySource({ 'a.txt': 'héllo', 'sub/b.bin': new Uint8Array([0, 1, 2, 3, 4, 5]) }));
  });

  it('FileListSource from Blobs and from Files with webkitRelativePath', async () => {
    await exercise(
      new FileListSource(
        new Map<string, Blob>([
          ['a.txt', new Blob([enc('héllo')])],
          ['sub/b.bin', new Blob([new Uint8Array([0, 1, 2, 3, 4, 5])])],
        ]),
      ),
    );
    const a = new File([enc('héllo')], 'a.txt');
    const b = new File([new Uint8Array([0, 1, 2, 3, 4, 5])], 'b.bin');
    Object.defineProperty(a, 'webkitRelativePath', { value: 'model/a.txt' });
    Object.defineProperty(b, 'webkitRelativePath', { value: 'model/sub/b.bin' });
    await exercise(new FileListSource([a, b]));
  });

  it('NodeDirSource (recursive list, ranged reads, no escaping the folder)', async () => {
    const src = nodeDirSource(dir);
    await exercise(src);
    await expect(src.readBytes('../x')).rejects.toThrow(/escapes/);
    await expect(nodeDirSource(join(dir, 'missing')).list()).rejects.toThrow(ModelFormatError);
  });
});
