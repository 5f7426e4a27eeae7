/**
 * The dropped model files as the worker reads them: each byte range through the Blob's byte stream into a
 * buffer of exactly that size that the reader fills in place (a BYOB reader), not `blob.slice().arrayBuffer()`.
 *
 * Why: in Chromium, `arrayBuffer()` on a file-backed Blob leaves several times the range's bytes in
 * transient buffers that the worker's collector takes late once the decoded model is large (its heap limit
 * grows with what is live). Loading the Qwen2.5-0.5B-shaped checkpoint (942 MiB BF16, 1.84 GiB as f32)
 * went to 5.5 GiB that way before the first collection; through the byte stream it stays at the weights
 * plus the page (and reads faster). Where a runtime has no BYOB reader for Blob streams, `arrayBuffer()`.
 */
import { ModelFormatError } from '../../src/model/errors';
import { FileListSource } from '../../src/model/source';

/** Bytes `[start, end)` of a Blob, in a fresh buffer of exactly that size. */
export async function readBlobRange(blob: Blob, start: number, end: number, name = 'blob'): Promise<Uint8Array> {
  const len = end - start;
  const part = blob.slice(start, end);
  let reader: ReadableStreamBYOBReader;
  try {
    reader = (part.stream() as ReadableStream<Uint8Array>).getReader({ mode: 'byob' });
  } catch {
    return new Uint8Array(await part.arrayBuffer());
  }
  // Each read hands the buffer to the stream and returns it (the same memory) with the bytes it wrote.
  let buf = new ArrayBuffer(len);
  let off = 0;
  while (off < len) {
    const { done, value } = await reader.read(new Uint8Array(buf, off, len - off));
    if (!value) break;
    buf = value.buffer as ArrayBuffer;
    off += value.byteLength;
    if (done) break;
  }
  reader.releaseLock();
  if (off !== len) throw new ModelFormatError(`read ${off} of the ${len} bytes at [${start}, ${end}): the file changed or ended`, name);
  return new Uint8Array(buf);
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
