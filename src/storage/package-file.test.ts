import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors } from '../model/safetensors';
import type { WeightMap } from '../model/weights';
import { zipEmulatorPackage, type PackageWeights } from '../ot/emulator/package';
import { entryByteLength, writePackageFolder, writePackageZip, type PackageEntry } from './package-file';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-pkg-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
  return b;
}

function randomWeights(): WeightMap {
  const w: WeightMap = new Map();
  for (const [name, shape] of [
    ['layers.0.w', [5, 3]],
    ['embed', [17, 4]],
    ['head.bias', [7]],
  ] as [string, number[]][]) {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { dtype: 'BF16', shape, data: new Float32Array(n).map(() => Math.random() * 4 - 2) });
  }
  return w;
}

/** A package's entries as the job gives them with streamWeights, and the in-memory files of the same package. */
function packageOf(): { entries: [string, PackageEntry][]; files: Map<string, Uint8Array> } {
  const weights = randomWeights();
  const streamed: PackageWeights = { kind: 'safetensors', weights, dtype: 'BF16', metadata: { format: 'pt', gradot: 'x/v1' } };
  const json = new TextEncoder().encode(`{"r": ${Math.random()}}\n`);
  const tok = randomBytes(1000 + Math.floor(Math.random() * 100));
  const odd = randomBytes(3);
  const files = new Map<string, Uint8Array>([
    ['emulator.json', json],
    ['emulator.safetensors', serializeSafetensors(weights, { dtype: 'BF16', metadata: streamed.metadata })],
    ['tokenizer.json', tok],
    ['ünicode-näme.txt', odd],
  ]);
  const entries: [string, PackageEntry][] = [
    ['emulator.json', json],
    ['emulator.safetensors', streamed],
    ['tokenizer.json', tok],
    ['ünicode-näme.txt', odd],
  ];
  return { entries, files };
}

describe('package files streamed to disk: the in-memory package, byte for byte', () => {
  it('zip: what zipEmulatorPackage (fflate zipSync, stored) returns', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const { entries, files } = packageOf();
      const path = join(dir, `p${trial}.zip`);
      await writePackageZip(path, entries);
      const got = new Uint8Array(await readFile(path));
      expect(Buffer.compare(got, zipEmulatorPackage(files))).toBe(0);
      expect(entries.reduce((a, [, e]) => a + entryByteLength(e), 0)).toBe([...files.values()].reduce((a, b) => a + b.length, 0));
    }
  });

  it('folder: each file as its bytes, in the given order; emulator tensors dropped as written', async () => {
    const { entries, files } = packageOf();
    const streamed = entries[1]![1] as PackageWeights;
    const dropped: string[] = [];
    entries[1]![1] = { ...streamed, onWritten: (n) => (dropped.push(n), streamed.weights.delete(n)) };
    const out = join(dir, 'folder');
    expect(await writePackageFolder(out, entries)).toEqual([...files.keys()]);
    for (const [name, bytes] of files) expect(Buffer.compare(new Uint8Array(await readFile(join(out, name))), bytes), name).toBe(0);
    expect((await readdir(out)).sort()).toEqual([...files.keys()].sort());
    expect(dropped).toEqual(['embed', 'head.bias', 'layers.0.w']);
    expect(streamed.weights.size).toBe(0);
  });

  it('zip into a folder that cannot be made: a named error, no zip', async () => {
    const { entries } = packageOf();
    const path = join(dir, 'p0.zip', 'inside.zip'); // p0.zip is a file (first test)
    await expect(writePackageZip(path, entries)).rejects.toThrow(/inside\.zip|p0\.zip/);
  });
});
