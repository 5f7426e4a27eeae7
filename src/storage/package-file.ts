/**
 * An emulator package written to disk file by file, with emulator.safetensors streamed from the emulator's
 * weights (Node only; the CLI's `gradot compress`). Two layouts, byte for byte what the in-memory path
 * writes: a folder (each file as `writeFiles` writes it) or one stored .zip (what `zipEmulatorPackage`,
 * fflate's zipSync at level 0 with fixed timestamps, returns). Neither ever holds the safetensors bytes:
 * see safetensors-file.ts for why.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PackageWeights } from '../ot/emulator/package';
import { withFile } from '../faults/fs-errors';
import { FileSink, safetensorsByteLength, streamSafetensors, writeFileAtomically } from './safetensors-file';
import { dosTime, type ZipRecord, zipEnd, zipHeader, zipRecord } from './zip-format';

/** A file's bytes, or emulator.safetensors still as tensors (streamed when written). */
export type PackageEntry = Uint8Array | PackageWeights;

/** Bytes the entry takes on disk. */
export function entryByteLength(e: PackageEntry): number {
  return e instanceof Uint8Array ? e.length : safetensorsByteLength(e.weights, e);
}

async function writeEntry(sink: FileSink, e: PackageEntry): Promise<void> {
  if (e instanceof Uint8Array) await sink.write(e);
  else
    await streamSafetensors(sink, e.weights, { dtype: e.dtype, metadata: e.metadata, ...(e.onWritten ? { onWritten: e.onWritten } : {}) });
}

/** Each entry as `dir/NAME` (temporary file, then renamed), in the given order. Returns the names. */
export async function writePackageFolder(dir: string, entries: [string, PackageEntry][]): Promise<string[]> {
  await withFile(dir, 'create the folder', () => mkdir(dir, { recursive: true }));
  for (const [name, e] of entries) {
    const p = join(dir, name);
    await withFile(dirname(p), 'create the folder', () => mkdir(dirname(p), { recursive: true }));
    await writeFileAtomically(p, (fh) => writeEntry(new FileSink(fh), e));
  }
  return entries.map(([name]) => name);
}

/**
 * One stored .zip at `path` (temporary file, then renamed): entries sorted by name, `mtime` on each, as
 * zipEmulatorPackage. Each local header is written with a zero CRC first and rewritten in place once its
 * data (and so its CRC) has gone by, so nothing is read twice.
 */
export async function writePackageZip(
  path: string,
  entries: [string, PackageEntry][],
  mtime = new Date(Date.UTC(1980, 0, 1)),
): Promise<void> {
  const dos = dosTime(mtime);
  const enc = new TextEncoder();
  const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let total = 0;
  for (const [name, e] of sorted) total += 76 + 2 * enc.encode(name).length + entryByteLength(e);
  // No ZIP64: sizes and offsets are 32-bit fields (fflate would wrap them silently).
  if (total + 22 > 0xffffffff) throw new Error(`zip: ${path} would be ${total + 22} bytes, over the 4 GiB a zip without ZIP64 can hold`);
  await withFile(dirname(path), 'create the folder', () => mkdir(dirname(path), { recursive: true }));
  await writeFileAtomically(path, async (fh) => {
    const records: ZipRecord[] = [];
    let pos = 0;
    for (const [name, e] of sorted) {
      const r = zipRecord(name, entryByteLength(e), pos);
      const headerLength = 30 + r.name.length;
      const sink = new FileSink(fh, pos + headerLength, true);
      await writeEntry(sink, e);
      if (sink.position - pos - headerLength !== r.size)
        throw new Error(`zip: ${name}: wrote ${sink.position - pos - headerLength} bytes, expected ${r.size}`);
      r.crc = sink.crc >>> 0;
      await new FileSink(fh, pos).write(zipHeader(r, dos, false));
      records.push(r);
      pos = sink.position;
    }
    const cdStart = pos;
    const tail = new FileSink(fh, pos);
    for (const r of records) await tail.write(zipHeader(r, dos, true));
    await tail.write(zipEnd(records.length, tail.position - cdStart, cdStart));
  });
}
