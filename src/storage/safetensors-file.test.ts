import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAccessError } from '../faults/errors';
import { parseSafetensors, safetensorsHeader, serializeSafetensors, type WriteDType } from '../model/safetensors';
import type { HostDType, WeightMap } from '../model/weights';
import { writeSafetensorsFile } from './safetensors-file';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-st-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Fresh random values (never zeros), with a few F16/BF16 edge values: ties, subnormals, overflow, NaN. */
function randomWeights(dtype: HostDType): WeightMap {
  const shapes: Record<string, number[]> = {
    'b.odd': [3, 5, 7],
    'a.vec': [13],
    'c.scalar-like': [1],
    'z.empty': [0, 4],
    'm.rows': [9, 1, 11],
    'Upper.first': [2, 3],
  };
  const w: WeightMap = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (Math.random() - 0.5) * 10 ** (Math.random() * 8 - 4);
    w.set(name, { dtype, shape, data });
  }
  const e = w.get('b.odd')!.data;
  e.set([1 + 2 ** -11, 65520, 1e-8, -0, Infinity, NaN, 1 + 2 ** -8, 3e38], 0);
  return w;
}

const META = { format: 'pt', zeta: 'last key', alpha: 'ünï' };

describe('writeSafetensorsFile: the bytes of serializeSafetensors, streamed', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as WriteDType[]) {
    it(`${dtype}: odd shapes, metadata, slices crossing tensor edges`, async () => {
      const w = randomWeights(dtype === 'F32' ? 'F32' : dtype);
      const ref = serializeSafetensors(w, { dtype, metadata: META });
      for (const slice of [1, 7, 64, undefined]) {
        const path = join(dir, `m-${dtype}-${slice}.safetensors`);
        const n = await writeSafetensorsFile(path, w, { dtype, metadata: META, ...(slice ? { sliceElements: slice } : {}) });
        const got = new Uint8Array(await readFile(path));
        expect(n).toBe(ref.length);
        expect(Buffer.compare(got, ref)).toBe(0);
      }
      // The shared header is exactly the file's prefix, and the file parses back.
      const { header } = safetensorsHeader(w, dtype, META);
      expect(Buffer.compare(ref.subarray(0, header.length), header)).toBe(0);
      expect(header.length % 8).toBe(0);
      const back = parseSafetensors(ref);
      expect(back.metadata).toEqual(META);
      expect([...back.tensors.keys()]).toEqual([...w.keys()].sort());
    });
  }

  it('without metadata, and the source map emptied as it goes: same bytes, tensors reported in file order', async () => {
    const w = randomWeights('F32');
    const ref = serializeSafetensors(w, { dtype: 'BF16' });
    const path = join(dir, 'drop.safetensors');
    const order: string[] = [];
    await writeSafetensorsFile(path, w, {
      dtype: 'BF16',
      onWritten: (name) => {
        order.push(name);
        w.delete(name);
      },
    });
    expect(Buffer.compare(new Uint8Array(await readFile(path)), ref)).toBe(0);
    expect(order).toEqual(safetensorsHeader(randomWeights('F32'), 'BF16').entries.map(([n]) => n));
    expect(w.size).toBe(0);
  });

  it('a folder that does not exist: FileAccessError naming the file, no file left', async () => {
    const path = join(dir, 'missing', 'emulator.safetensors');
    const err = await writeSafetensorsFile(path, randomWeights('F32')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileAccessError);
    expect((err as FileAccessError).path).toBe(path);
    expect((err as Error).message).toMatch(/missing\/emulator\.safetensors: cannot write: no such file or folder/);
    expect(existsSync(path)).toBe(false);
  });

  it('a path through a file (not a folder): FileAccessError', async () => {
    await writeFile(join(dir, 'plain'), 'x');
    const path = join(dir, 'plain', 'emulator.safetensors');
    const err = await writeSafetensorsFile(path, randomWeights('F32')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileAccessError);
    expect((err as FileAccessError).code).toBe('ENOTDIR');
  });

  it('a failure half way: no file under the final name, no temporary file, the earlier file untouched', async () => {
    const sub = await mkdtemp(join(dir, 'half-'));
    const path = join(sub, 'emulator.safetensors');
    await writeFile(path, 'previous');
    let k = 0;
    const err = await writeSafetensorsFile(path, randomWeights('F32'), {
      dtype: 'F16',
      onWritten: () => {
        if (++k === 3) throw new Error('stopped after three tensors');
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('stopped after three tensors');
    expect(await readFile(path, 'utf8')).toBe('previous');
    expect(await readdir(sub)).toEqual(['emulator.safetensors']);
  });

  it('bad input is refused before anything is written', async () => {
    const w = randomWeights('F32');
    w.set('bad', { dtype: 'F32', shape: [2, 2], data: new Float32Array(3).fill(0.5) });
    const path = join(dir, 'bad.safetensors');
    await expect(writeSafetensorsFile(path, w)).rejects.toThrow(/bad has 3 elements but shape \[2, 2\]/);
    expect(existsSync(path)).toBe(false);
    expect(() =>
      safetensorsHeader(
        [
          ['x', { shape: [1], data: [1] }],
          ['x', { shape: [1], data: [2] }],
        ],
        'F32',
      ),
    ).toThrow(/x is given twice/);
  });
});
