import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../data/errors';
import { readDataset, readDatasetBlob, readDatasetChunks } from '../data/read';
import { readDatasetFile } from './data-file';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-data-faults-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function caught(fn: () => unknown): DatasetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('did not throw');
}

/** Splits bytes into chunks of pseudo-random sizes 1..max (so multi-byte characters and newlines straddle chunks). */
function chunked(b: Uint8Array, seed: number, max = 7): Uint8Array[] {
  const out: Uint8Array[] = [];
  let s = seed;
  for (let i = 0; i < b.length; ) {
    s = (s * 1103515245 + 12345) >>> 0;
    const n = 1 + (s % max);
    out.push(b.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('streaming datasets', () => {
  const text = [
    '{"prompt": "naïve café — 日本語 ", "answer": " 🙂 ok"}',
    '',
    '{"prompt": "second\\nline", "answer": " é"}\r',
    '{"prompt": "third", "answer": " x"}',
  ].join('\n');

  it('chunked reading gives exactly the records of a whole-buffer read, whatever the chunking', async () => {
    const whole = readDataset(enc(text), 'mixed.jsonl');
    for (const seed of [1, 2, 3]) {
      const progress: number[] = [];
      const ds = await readDatasetChunks(chunked(enc(text), seed), 'mixed.jsonl', { onProgress: (b) => progress.push(b) });
      expect(ds).toEqual(whole);
      expect(progress[progress.length - 1]).toBe(enc(text).length);
      expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    }
    const txt = 'para one\nstill one\n\npara two\r\n';
    expect(await readDatasetChunks(chunked(enc(txt), 5), 't.txt')).toEqual(readDataset(enc(txt), 't.txt'));
    expect(await readDatasetBlob(new Blob([enc(text) as Uint8Array<ArrayBuffer>]), 'mixed.jsonl')).toEqual(whole);
  });

  it('invalid UTF-8 in a chunked read names the right line and file offset', async () => {
    const b = new Uint8Array([...enc('{"text": "a"}\n{"text": "caf'), 0xe9, ...enc('"}\n')]);
    await expect(readDatasetChunks(chunked(b, 9, 3), 'latin1.jsonl')).rejects.toThrow(
      /^latin1\.jsonl line 2: text is not valid UTF-8 \(byte 0xe9 at offset 27\)/,
    );
  });

  it('an over-long line is refused with a message that says so, as soon as it passes the limit', () => {
    // 20 MiB on one line (the default limit is 16 MiB): refused, not parsed for minutes.
    const big = new Uint8Array(20 << 20).fill(0x61);
    big.set(enc('{"text": "'), 0);
    const t0 = performance.now();
    const e = caught(() => readDataset(big, 'oneline.jsonl'));
    expect(e.code).toBe('line-too-long');
    expect(e.message).toMatch(
      /^oneline\.jsonl line 1: the line is longer than 16\.0 MiB \(the limit for one line\); JSON Lines needs one record per line/,
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    // Later lines are numbered right, with a small limit.
    const e2 = caught(() =>
      readDataset(enc('{"text":"a"}\n{"text":"' + 'b'.repeat(200) + '"}\n'), 'x.jsonl', { limits: { maxLineBytes: 100 } }),
    );
    expect(e2.line).toBe(2);
  });

  it('a file over the size limit is refused by size before reading (size named), or while streaming when the size is unknown', async () => {
    const p = join(dir, 'big.jsonl');
    await writeFile(p, '{"text": "abc"}\n'.repeat(200));
    let reads = 0;
    await expect(readDatasetFile(p, 'big.jsonl', { limits: { maxFileBytes: 1000 }, onProgress: () => reads++ })).rejects.toThrow(
      /^big\.jsonl: file is 3\.1 KiB, more than 1000 bytes \(the limit for one dataset file\)/,
    );
    expect(reads).toBe(0);
    const chunks = chunked(enc('{"text": "abc"}\n'.repeat(200)), 4, 64);
    await expect(readDatasetChunks(chunks, 'stream.jsonl', { limits: { maxFileBytes: 1000 } })).rejects.toThrow(
      /stream\.jsonl: file is .*more than 1000 bytes/,
    );
    // CSV has its own, smaller limit (it is parsed as one text).
    const e = caught(() => readDataset(enc('text\n' + 'a,'.repeat(0) + 'x\n'.repeat(100)), 'c.csv', { limits: { maxCsvBytes: 50 } }));
    expect(e.code).toBe('too-large');
    expect(e.message).toMatch(/limit for CSV/);
  });

  it('reads from disk in chunks with progress, and names a folder or a missing file', async () => {
    const p = join(dir, 'ok.jsonl');
    await writeFile(p, '{"text": "hello"}\n'.repeat(1000));
    const seen: [number, number | null][] = [];
    const ds = await readDatasetFile(p, 'ok.jsonl', { onProgress: (b, t) => seen.push([b, t]) });
    expect(ds.records).toHaveLength(1000);
    expect(seen[seen.length - 1]).toEqual([18000, 18000]);
    await expect(readDatasetFile(dir, 'a-folder')).rejects.toThrow(/a-folder: cannot read the data file: it is a folder, not a file/);
    await expect(readDatasetFile(join(dir, 'nope.jsonl'), 'nope.jsonl')).rejects.toThrow(
      /nope\.jsonl: cannot read the data file: no such file or folder/,
    );
  });
});

describe('Node file errors become named errors with their file', () => {
  it('ENOSPC (writing to /dev/full), EACCES/EISDIR/ENOENT codes, and a missing path argument', async () => {
    const { writeFile: wf } = await import('node:fs/promises');
    const { withFile, fsError } = await import('./fs-errors');
    const { FileAccessError } = await import('./errors');
    const e = await withFile('/dev/full', 'write the adapter', () => wf('/dev/full', new Uint8Array(1 << 16))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FileAccessError);
    expect(String(e)).toMatch(/\/dev\/full: cannot write the adapter: no space left on the device/);
    for (const [code, words] of [
      ['EACCES', 'permission denied'],
      ['EISDIR', 'it is a folder, not a file'],
      ['ENOENT', 'no such file or folder'],
      ['EROFS', 'the file system is read-only'],
    ] as const) {
      const raw = Object.assign(new Error(`${code}: raw`), { code, path: '/x/y' });
      expect(String(fsError(raw, undefined, 'read'))).toMatch(new RegExp(`/x/y: cannot read: ${words}`));
    }
    const argErr = Object.assign(new TypeError('The "paths[1]" argument must be of type string. Received undefined'), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    expect(String(fsError(argErr, '--adapter', 'open'))).toMatch(/--adapter: cannot open: a file or folder argument is missing/);
    const other = new Error('not a file error');
    expect(fsError(other, 'x', 'y')).toBe(other);
  });
});
