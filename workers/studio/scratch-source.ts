/**
 * A model source for loading weights in the studio worker: each large range (a tensor's bytes) is read into
 * one reused buffer (the Blob's byte stream, read with a BYOB reader) instead of a fresh ArrayBuffer per
 * tensor. In Chromium's worker the per-tensor buffers of Blob.arrayBuffer() (and their decoding copies)
 * were not collected while a model loaded: the renderer climbed to 6.5 GiB reading the 0.92 GiB BF16
 * Qwen2.5-0.5B file (2 GiB in F32), and fell to 2.3 GiB when loading ended.
 *
 * The bytes returned by readRange are valid until the next readRange: the next read takes the buffer back
 * (a consumer that kept them sees a detached, empty array, never another tensor's bytes). Safetensors
 * decoding copies or converts them (decodeTensor), so loadHFModel keeps nothing of them. Ranges under
 * SCRATCH_MIN_BYTES, and streams without BYOB reads, go through the plain source.
 */
import { FileListSource, type ModelSource } from '../../src/model/source';

export const SCRATCH_MIN_BYTES = 1 << 20;

/** The bytes [start, end) of a Blob as a byte stream (a seam for tests). */
export type RangeStream = (blob: Blob, start: number, end: number) => ReadableStream<Uint8Array>;
const blobStream: RangeStream = (blob, start, end) => blob.slice(start, end).stream();

export class ScratchReadSource implements ModelSource {
  private readonly plain: FileListSource;
  private scratch: ArrayBuffer | null = null;
  /** Set when a stream refused a BYOB reader: every read goes through the plain source from then on. */
  private noByob = false;

  constructor(
    private readonly files: Map<string, Blob>,
    readonly label: string,
    private readonly streamOf: RangeStream = blobStream,
    private readonly minBytes = SCRATCH_MIN_BYTES,
  ) {
    this.plain = new FileListSource(files, label);
  }

  list(): Promise<string[]> {
    return this.plain.list();
  }
  has(name: string): Promise<boolean> {
    return this.plain.has(name);
  }
  size(name: string): Promise<number> {
    return this.plain.size(name);
  }
  readBytes(name: string): Promise<Uint8Array> {
    return this.plain.readBytes(name);
  }
  readText(name: string): Promise<string> {
    return this.plain.readText(name);
  }

  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const n = end - start;
    const blob = this.files.get(name);
    if (!blob || n < this.minBytes || this.noByob || start < 0 || end > blob.size) return this.plain.readRange(name, start, end);
    let reader: ReadableStreamBYOBReader;
    const stream = this.streamOf(blob, start, end);
    try {
      reader = stream.getReader({ mode: 'byob' });
    } catch {
      this.noByob = true;
      await stream.cancel().catch(() => undefined);
      return this.plain.readRange(name, start, end);
    }
    let buf = this.scratch && this.scratch.byteLength >= n ? this.scratch : new ArrayBuffer(n);
    this.scratch = null;
    let off = 0;
    try {
      while (off < n) {
        const { value, done } = await reader.read(new Uint8Array(buf, off, n - off));
        if (!value) throw new Error(`${name}: the read returned no buffer`);
        buf = value.buffer as ArrayBuffer;
        off += value.byteLength;
        if (done) break;
      }
    } finally {
      reader.releaseLock();
    }
    this.scratch = buf;
    if (off !== n) throw new Error(`${name}: expected ${n} bytes from ${start}, read ${off}`);
    return new Uint8Array(buf, 0, n);
  }
}
