/**
 * An emulator package's zip as a Blob made of its parts (headers and the files' own bytes), never one
 * contiguous copy: byte for byte what zipEmulatorPackage (fflate's zipSync, stored, fixed timestamps) writes,
 * which the CLI writes and tests compare. At real sizes the contiguous zip is one more copy of the package
 * (0.65 GB for Qwen2.5-0.5B at keep 0.5) at the moment the build's other arrays may not be collected yet.
 * The records come from src/storage/zip-format.ts, as the CLI's streamed zip's do.
 */
import { crc32 } from '../../src/storage/checkpoint-store';
import { dosTime, zipEnd, zipHeader, zipRecord } from '../../src/storage/zip-format';

/** CRC-32 (IEEE), the zip's checksum: the checkpoint store's. */
export { crc32 } from '../../src/storage/checkpoint-store';

/** The package's zip, as zipEmulatorPackage writes it (names sorted, stored, `mtime` for every entry). */
export function zipPackageBlob(files: Map<string, Uint8Array>, mtime = new Date(Date.UTC(1980, 0, 1))): Blob {
  const dos = dosTime(mtime);
  const parts: BlobPart[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const names = [...files.keys()].sort();
  for (const name of names) {
    const data = files.get(name)!;
    const r = zipRecord(name, data.length, offset, crc32(data));
    central.push(zipHeader(r, dos, true));
    const local = zipHeader(r, dos, false);
    parts.push(local as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((a, h) => a + h.length, 0);
  parts.push(...(central as Uint8Array<ArrayBuffer>[]), zipEnd(names.length, cdSize, offset) as Uint8Array<ArrayBuffer>);
  return new Blob(parts, { type: 'application/zip' });
}
