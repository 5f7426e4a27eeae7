// The studio worker's ranged Blob reads (workers/studio/blob-source.ts) in Chromium, for
// e2e/blob-source.spec.ts: many ranges of a picked file, of an in-memory Blob and of a Blob made of parts
// of both, each read with readBlobRange and compared with `slice().arrayBuffer()`. A read that does not
// finish within READ_TIMEOUT_MS is reported with its range (Chromium's BYOB reads of Blob streams stalled).
import { readBlobRange } from '../../workers/studio/blob-source';

const READ_TIMEOUT_MS = 20_000;

export interface RangeReport {
  blob: string;
  ranges: number;
  bytes: number;
  /** The first failure: a stalled read, a wrong length or wrong bytes. */
  error?: string;
}

declare global {
  interface Window {
    __blobReady?: boolean;
    __readRanges?: () => Promise<RangeReport[]>;
  }
}

/** Ranges of a blob of `size` bytes: empty, tiny, around the 64 KiB views that stalled, strided, whole. */
function rangesOf(size: number): [number, number][] {
  const r: [number, number][] = [
    [0, 0],
    [5, 6],
    [0, 65_536],
    [1, 65_538],
    [size - 131_072, size],
    [0, size],
  ];
  for (const len of [300_000, 131_072, 4 << 20, 1_000_003])
    for (let s = 7; s + len <= size && r.length < 400; s += len + 13) r.push([s, s + len]);
  return r;
}

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65_536)));
  return b;
}

async function check(label: string, blob: Blob): Promise<RangeReport> {
  const rep: RangeReport = { blob: label, ranges: 0, bytes: 0 };
  for (const [s, e] of rangesOf(blob.size)) {
    const timeout = new Promise<'stalled'>((res) => setTimeout(() => res('stalled'), READ_TIMEOUT_MS));
    const got = await Promise.race([readBlobRange(blob, s, e, label), timeout]);
    if (got === 'stalled') return { ...rep, error: `read of [${s}, ${e}) did not finish in ${READ_TIMEOUT_MS} ms` };
    const want = new Uint8Array(await blob.slice(s, e).arrayBuffer());
    if (got.byteLength !== want.byteLength || got.byteOffset !== 0) return { ...rep, error: `[${s}, ${e}): ${got.byteLength} bytes` };
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return { ...rep, error: `[${s}, ${e}): byte ${i} differs` };
    rep.ranges++;
    rep.bytes += want.byteLength;
  }
  return rep;
}

window.__readRanges = async () => {
  const file = (document.getElementById('file') as HTMLInputElement).files?.[0];
  if (!file) throw new Error('pick a file first');
  const mem = new Blob([randomBytes(12 * 2 ** 20 + 11)]);
  const parts = new Blob([file.slice(3, 5 * 2 ** 20), mem.slice(17, 3 * 2 ** 20), randomBytes(200_001), file.slice(9 * 2 ** 20)]);
  return [await check('picked file', file), await check('in-memory Blob', mem), await check('Blob of parts', parts)];
};
window.__blobReady = true;
(document.getElementById('log') as HTMLElement).textContent = 'ready';
