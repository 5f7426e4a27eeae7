/**
 * The studio worker reads a model's tensors into one reused buffer (workers/studio/scratch-source.ts): the
 * weights loaded through it are bit-identical to the plain source's, in F32, F16 and BF16 files, with a
 * stream that hands out its data in small pieces.
 */
import { describe, expect, it } from 'vitest';
import { ScratchReadSource, type RangeStream } from '../../workers/studio/scratch-source';
import { hfConfigFromSpec, loadHFModel, toHFWeights } from '../model/hf';
import { randomTestModel, smallSpec } from '../model/random-model';
import { serializeSafetensors, type WriteDType } from '../model/safetensors';
import { FileListSource } from '../model/source';

/** A byte stream over the blob's range that enqueues at most 1000 bytes at a time (as a file read does, in chunks). */
const chunkedByteStream: RangeStream = (blob, start, end) => {
  let bytes: Uint8Array | null = null;
  let off = 0;
  return new ReadableStream({
    type: 'bytes',
    async pull(c) {
      bytes ??= new Uint8Array(await blob.slice(start, end).arrayBuffer());
      if (off >= bytes.length) {
        c.close();
        c.byobRequest?.respond(0);
        return;
      }
      const req = c.byobRequest;
      const n = Math.min(1000, bytes.length - off, req?.view?.byteLength ?? 1000);
      if (req?.view) {
        new Uint8Array(req.view.buffer, req.view.byteOffset, n).set(bytes.subarray(off, off + n));
        req.respond(n);
      } else c.enqueue(bytes.slice(off, off + n));
      off += n;
    },
  });
};

describe('studio: tensors read into one reused buffer', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as WriteDType[]) {
    it(`${dtype}: the same weights as the plain source, bit for bit`, async () => {
      const spec = smallSpec('llama', { numLayers: 2, hiddenSize: 16, numHeads: 2, vocabSize: 300, maxPositions: 32 });
      const files = new Map<string, Blob>([
        ['config.json', new Blob([JSON.stringify(hfConfigFromSpec(spec))])],
        ['model.safetensors', new Blob([new Uint8Array(serializeSafetensors(toHFWeights(spec, randomTestModel(spec, 11)), { dtype }))])],
      ]);
      const want = await loadHFModel(new FileListSource(files, 'plain'));
      const src = new ScratchReadSource(files, 'scratch', chunkedByteStream, 0);
      const got = await loadHFModel(src);
      expect([...got.weights.keys()]).toEqual([...want.weights.keys()]);
      for (const [k, t] of want.weights) {
        const g = got.weights.get(k)!;
        expect(g.shape, k).toEqual(t.shape);
        expect(Buffer.from(new Float32Array(g.data).buffer).equals(Buffer.from(new Float32Array(t.data).buffer)), k).toBe(true);
      }
      // Not vacuous: the tensors did come through the reused buffer (a returned range is detached by the next read).
      const a = await src.readRange('model.safetensors', 100, 200);
      await src.readRange('model.safetensors', 300, 400);
      expect(a.byteLength).toBe(0);
    });
  }

  it('a plain (not byte) stream: the same bytes; the previous range is detached', async () => {
    const bytes = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) % 251);
    const files = new Map<string, Blob>([['w.bin', new Blob([bytes])]]);
    const plainStream: RangeStream = (blob, s, e) => blob.slice(s, e).stream().pipeThrough(new TransformStream());
    const src = new ScratchReadSource(files, 'x', plainStream, 0);
    const r = await src.readRange('w.bin', 10, 4010);
    expect(Buffer.from(r).equals(Buffer.from(bytes.subarray(10, 4010)))).toBe(true);
    expect(Buffer.from(await src.readRange('w.bin', 0, 100)).equals(Buffer.from(bytes.subarray(0, 100)))).toBe(true);
    expect(r.byteLength).toBe(0);
  });
});
