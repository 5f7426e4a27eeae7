/**
 * safetensors written to a file tensor by tensor (Node only; the CLI's `gradot compress`).
 *
 * Why: `serializeSafetensors` builds the whole file in one array. At real sizes that array is one more copy
 * of the emulator (1.41 GB for TinyLlama-1.1B in BF16) at the moment the source model and the emulator's F32
 * weights are both still in memory, which made packaging the build's peak. Here the header comes from the
 * same `safetensorsHeader` and each tensor is converted in slices of at most SLICE_ELEMENTS and written, so
 * the bytes are exactly serializeSafetensors' and at most one slice's conversion exists at a time. The
 * caller may drop each tensor once it is written (`onWritten`), so the F32 emulator shrinks as it goes.
 *
 * A file is written as `NAME.tmp-PID` next to its final name, synced and renamed: a failure leaves no file
 * under the final name (and the temporary one is removed).
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { encodeTensor, safetensorsHeader, type WriteDType } from '../model/safetensors';
import type { HostTensor, WeightMap } from '../model/weights';
import { fsError } from '../faults/fs-errors';

/** Elements converted per write: 16 Mi elements = 32 MB of F16/BF16 (64 MB of F32, a view: no copy). */
export const SLICE_ELEMENTS = 16 * 2 ** 20;

/** Where streamed bytes go: a file at a running position, with an optional running CRC-32 (for a zip). */
export class FileSink {
  position: number;
  crc = 0;
  constructor(
    readonly fh: FileHandle,
    start = 0,
    readonly withCrc = false,
  ) {
    this.position = start;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.withCrc) this.crc = crc32(bytes, this.crc);
    let done = 0;
    // FileHandle.write may write less than asked; a short write is continued, never silently dropped.
    while (done < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.position);
      if (bytesWritten <= 0) throw new Error('write made no progress');
      done += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

export interface StreamSafetensorsOptions {
  /** dtype every tensor is written in (default F32), as serializeSafetensors' option. */
  dtype?: WriteDType;
  metadata?: Record<string, string>;
  /** Called once a tensor's bytes are written: the caller may drop its reference to that tensor. */
  onWritten?: (name: string) => void;
  /** Elements converted per write (default SLICE_ELEMENTS; tests use small ones to cross slice edges). */
  sliceElements?: number;
}

/** Size in bytes of the safetensors file `tensors` give (header included), without converting anything. */
export function safetensorsByteLength(tensors: WeightMap, o: Pick<StreamSafetensorsOptions, 'dtype' | 'metadata'> = {}): number {
  return safetensorsHeader(tensors, o.dtype ?? 'F32', o.metadata).byteLength;
}

/**
 * Writes serializeSafetensors(tensors, o)'s bytes to `sink`, tensor by tensor. The layout's own references
 * are dropped as it goes, so a tensor the caller also drops in `onWritten` can be collected at once.
 * Returns the number of bytes written.
 */
export async function streamSafetensors(sink: FileSink, tensors: WeightMap, o: StreamSafetensorsOptions = {}): Promise<number> {
  const dtype = o.dtype ?? 'F32';
  const slice = o.sliceElements ?? SLICE_ELEMENTS;
  if (!(Number.isInteger(slice) && slice > 0)) throw new Error(`streamSafetensors: sliceElements must be a positive integer, got ${slice}`);
  const layout = safetensorsHeader(tensors, dtype, o.metadata);
  const start = sink.position;
  await sink.write(layout.header);
  const entries: ([string, HostTensor] | undefined)[] = layout.entries;
  for (let i = 0; i < entries.length; i++) {
    const [name, t] = entries[i]!;
    entries[i] = undefined;
    for (let a = 0; a < t.data.length; a += slice) {
      const data = t.data.subarray(a, Math.min(t.data.length, a + slice));
      await sink.write(encodeTensor({ dtype: t.dtype, shape: [data.length], data }, dtype));
    }
    o.onWritten?.(name);
  }
  const written = sink.position - start;
  if (written !== layout.byteLength) throw new Error(`safetensors: wrote ${written} bytes, the header promises ${layout.byteLength}`);
  return written;
}

/**
 * Writes `path` through a temporary file next to it: `fill` gets the open file, then the file is synced and
 * renamed to `path`. On any failure the temporary file is removed and a Node file error becomes a
 * FileAccessError naming `path`; no file appears under `path`.
 */
export async function writeFileAtomically(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'w');
    await fill(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw fsError(e, path, 'write');
  }
}

/** serializeSafetensors(tensors, o) written to `path` without holding the file's bytes (see the module note). */
export async function writeSafetensorsFile(path: string, tensors: WeightMap, o: StreamSafetensorsOptions = {}): Promise<number> {
  let n = 0;
  await writeFileAtomically(path, async (fh) => {
    n = await streamSafetensors(new FileSink(fh), tensors, o);
  });
  return n;
}
