/**
 * A model source for loading weights in the studio worker: each large range (a tensor's bytes) is read from
 * the Blob's stream, chunk by chunk, into one reused buffer instead of a fresh ArrayBuffer per tensor. In
 * Chromium's worker the per-tensor buffers of Blob.arrayBuffer() were not collected while a model loaded:
 * the renderer climbed to 6.5 GiB reading the 0.92 GiB BF16 Qwen2.5-0.5B file (2 GiB in F32), and fell to
 * 2.3 GiB when loading ended.
 *
 * The bytes returned by readRange are valid until the next readRange: the next read moves the buffer (a
 * consumer that kept them sees a detached, empty array, never another tensor's bytes). Safetensors decoding
 * copies or converts them (decodeTensor), so loadHFModel keeps nothing of them. Ranges under
 * SCRATCH_MIN_BYTES go through the plain source.
 */
import { FileListSource, type ModelSource } from '../../src/model/source';

export const SCRATCH_MIN_BYTES = 1 << 20;

/** The bytes [start, end) of a Blob as a byte stream (a seam for tests). */
export type RangeStream = (blob: Blob, start: number, end: number) => ReadableStream<Uint8Array>;
const blobStream: RangeStream = (blob, start, end) => blob.slice(start, end).stream();

export class ScratchReadSource implements ModelSource {
  private readonly plain: FileListSource;
  private scratch: ArrayBuffer | null = null;

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
    if (!blob || n < this.minBytes || start < 0 || end > blob.size) return this.plain.readRange(name, start, end);
    // The last range's bytes are detached (moved, not copied), so a consumer that kept them sees an empty
    // array, never this range's bytes.
    const buf: ArrayBuffer =
      this.scratch && this.scratch.byteLength >= n ? structuredClone(this.scratch, { transfer: [this.scratch] }) : new ArrayBuffer(n);
    this.scratch = null;
    const out = new Uint8Array(buf, 0, n);
    const reader = this.streamOf(blob, start, end).getReader();
    let off = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (off + value.byteLength > n) throw new Error(`${name}: more than the ${n} bytes asked for from ${start}`);
        out.set(value, off);
        off += value.byteLength;
      }
    } finally {
      reader.releaseLock();
    }
    this.scratch = buf;
    if (off !== n) throw new Error(`${name}: expected ${n} bytes from ${start}, read ${off}`);
    return out;
  }
}
