/**
 * The dropped model files as the worker reads them: each byte range through the Blob's byte stream, its
 * chunks copied one after another into a buffer of exactly the range's size, not `blob.slice().arrayBuffer()`.
 *
 * Why the stream: in Chromium, `arrayBuffer()` on a file-backed Blob leaves several times the range's bytes
 * in transient buffers that the worker's collector takes late once the decoded model is large (its heap
 * limit grows with what is live). Loading the Qwen2.5-0.5B-shaped checkpoint (942 MiB BF16, 1.84 GiB as
 * f32) went to 5.5 GiB that way before the first collection; a stream's chunks are at most a few MiB each.
 *
 * Why a default reader and not a BYOB one (reading into the buffer in place): in Chromium (156) a BYOB read
 * of a Blob's stream may never resolve: a picked file's reads stopped after a dozen ranges in
 * e2e/blob-source.spec.ts, and an in-memory Blob's on the first read whose view passed 64 KiB (64 KiB views
 * stalled too, later). A studio job then waited forever on "loading weights". A default reader's read
 * resolves with whatever chunk the stream has, so it cannot wait for a view to fill.
 */
import { ModelFormatError } from '../../src/model/errors';
import { FileListSource } from '../../src/model/source';

/** Bytes `[start, end)` of a Blob, in a fresh buffer of exactly that size. */
export async function readBlobRange(blob: Blob, start: number, end: number, name = 'blob'): Promise<Uint8Array> {
  const len = end - start;
  const out = new Uint8Array(len);
  if (len === 0) return out;
  const reader = blob.slice(start, end).stream().getReader();
  let off = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (off + value.byteLength > len)
        throw new ModelFormatError(`more than the ${len} bytes at [${start}, ${end}): the file changed`, name);
      out.set(value, off);
      off += value.byteLength;
    }
  } catch (e) {
    // The stream is left cancelled, not locked with a read pending, whatever failed.
    await reader.cancel().catch(() => undefined);
    throw e;
  } finally {
    reader.releaseLock();
  }
  if (off !== len) throw new ModelFormatError(`read ${off} of the ${len} bytes at [${start}, ${end}): the file changed or ended`, name);
  return out;
}

/** A whole Blob's bytes (a package's weights, a zip), read as readBlobRange reads a range. */
export function readBlob(blob: Blob, name?: string): Promise<Uint8Array> {
  return readBlobRange(blob, 0, blob.size, name);
}

/** FileListSource whose ranged reads (safetensors tensors) go through readBlobRange. */
export class BlobSource extends FileListSource {
  constructor(
    private readonly blobs: Map<string, Blob>,
    label: string,
  ) {
    super(blobs, label);
  }

  override async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const f = this.blobs.get(name);
    // Missing files and bad ranges: FileListSource's own errors.
    if (!f || !(start >= 0 && end >= start && end <= f.size)) return super.readRange(name, start, end);
    return readBlobRange(f, start, end, name);
  }
}
