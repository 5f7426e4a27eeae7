/**
 * An emulator package's zip as a Blob made of its parts (headers and the files' own bytes), never one
 * contiguous copy: byte for byte what zipEmulatorPackage (fflate's zipSync, stored, fixed timestamps) writes,
 * which the CLI writes and tests compare. At real sizes the contiguous zip is one more copy of the package
 * (0.65 GB for Qwen2.5-0.5B at keep 0.5) at the moment the build's other arrays may not be collected yet.
 * The records come from src/storage/zip-format.ts, as the CLI's streamed zip's do.
 *
 * emulator.safetensors may come as tensors still (the job's `streamWeights`, as for the CLI): each slice of a
 * tensor is converted to the package's dtype and made a Blob of its own at once, so the page never holds the
 * safetensors bytes whole, only one slice's; the browser keeps Blob data outside the page's heap. The
 * tensors can be dropped as they are written (`onWritten`).
 */
import { crc32 } from '../../src/storage/checkpoint-store';
import { dosTime, type ZipRecord, zipEnd, zipHeader, zipRecord } from '../../src/storage/zip-format';
import { encodeTensor, safetensorsHeader } from '../../src/model/safetensors';
import type { HostTensor } from '../../src/model/weights';
import type { PackageWeights } from '../../src/ot/emulator/package';

/** CRC-32 (IEEE), the zip's checksum: the checkpoint store's. */
export { crc32 } from '../../src/storage/checkpoint-store';

/** Elements converted per Blob part: 16 Mi elements (32 MB as BF16), as the CLI's streamed writer. */
export const BLOB_SLICE_ELEMENTS = 16 * 2 ** 20;

/** The package's zip, as zipEmulatorPackage writes it (names sorted, stored, `mtime` for every entry). */
export function zipPackageBlob(files: Map<string, Uint8Array>, mtime = new Date(Date.UTC(1980, 0, 1))): Blob {
  return zipEntriesBlob([...files], mtime);
}

/**
 * The same zip from the package's entries in any order, emulator.safetensors as bytes or as tensors
 * (PackageWeights, serialized here slice by slice: serializeSafetensors' bytes).
 */
export function zipEntriesBlob(
  entries: [string, Uint8Array | PackageWeights][],
  mtime = new Date(Date.UTC(1980, 0, 1)),
  sliceElements = BLOB_SLICE_ELEMENTS,
): Blob {
  const dos = dosTime(mtime);
  const parts: BlobPart[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, e] of sorted) {
    const { blob, size, crc } = e instanceof Uint8Array ? { blob: e, size: e.length, crc: crc32(e) } : safetensorsBlob(e, sliceElements);
    const r: ZipRecord = zipRecord(name, size, offset, crc);
    central.push(zipHeader(r, dos, true));
    const local = zipHeader(r, dos, false);
    parts.push(local as Uint8Array<ArrayBuffer>, blob as Uint8Array<ArrayBuffer> | Blob);
    offset += local.length + size;
  }
  const cdSize = central.reduce((a, h) => a + h.length, 0);
  parts.push(...(central as Uint8Array<ArrayBuffer>[]), zipEnd(sorted.length, cdSize, offset) as Uint8Array<ArrayBuffer>);
  return new Blob(parts, { type: 'application/zip' });
}

/** serializeSafetensors' bytes as a Blob of per-slice Blobs, with their CRC-32; drops its references as it goes. */
function safetensorsBlob(w: PackageWeights, sliceElements: number): { blob: Blob; size: number; crc: number } {
  const layout = safetensorsHeader(w.weights, w.dtype, w.metadata);
  const parts: Blob[] = [new Blob([layout.header as Uint8Array<ArrayBuffer>])];
  let crc = crc32(layout.header);
  const list: ([string, HostTensor] | undefined)[] = layout.entries;
  for (let i = 0; i < list.length; i++) {
    const [name, t] = list[i]!;
    list[i] = undefined;
    for (let a = 0; a < t.data.length; a += sliceElements) {
      const data = t.data.subarray(a, Math.min(t.data.length, a + sliceElements));
      const bytes = encodeTensor({ dtype: t.dtype, shape: [data.length], data }, w.dtype);
      crc = crc32(bytes, crc);
      parts.push(new Blob([bytes as Uint8Array<ArrayBuffer>]));
    }
    w.onWritten?.(name);
  }
  const blob = new Blob(parts);
  if (blob.size !== layout.byteLength) throw new Error(`safetensors: made ${blob.size} bytes, the header promises ${layout.byteLength}`);
  return { blob, size: blob.size, crc: crc >>> 0 };
}
