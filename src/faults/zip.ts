/**
 * Bounded .zip reading. fflate's `unzipSync` inflates whatever the archive holds, so a 3 MB archive can
 * expand to gigabytes before anything looks at it. Here the central directory is read first and every
 * limit (entry count, per-entry and total uncompressed size, compression ratio) is checked against the
 * sizes it declares BEFORE anything is inflated; then each entry is inflated in small chunks with a running
 * counter, so an entry that inflates past its declared size (a lying directory) is stopped at that size.
 * Peak memory is the archive plus the declared sizes of what it holds (both bounded), plus one chunk.
 */
import { Inflate } from 'fflate';
import { LimitError, ZipError } from './errors';
import { ZIP_LIMITS, formatBytes, type ZipLimits } from './limits';

export interface ZipEntryInfo {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  flags: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOC64 = 0x07064b50;
const SIG_CEN = 0x02014b50;
const SIG_LOC = 0x04034b50;
/** Compressed bytes handed to the inflater at a time: bounds one push's output to ~1 MiB x ratio. */
const CHUNK = 16 << 10;

function u64(dv: DataView, o: number): number {
  const v = dv.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  return Number(v);
}

/** Entries of the central directory (directories included), without inflating anything. */
export function readZipDirectory(zip: Uint8Array, file: string, limits: ZipLimits = { ...ZIP_LIMITS }): ZipEntryInfo[] {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const n = zip.byteLength;
  let eocd = -1;
  for (let i = n - 22; i >= Math.max(0, n - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError(file, 'not a valid .zip (no end-of-central-directory record)');
  let count = dv.getUint16(eocd + 10, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === SIG_LOC64) {
    const at = u64(dv, eocd - 12);
    if (at + 56 > n || dv.getUint32(at, true) !== SIG_EOCD64) throw new ZipError(file, 'broken ZIP64 end record');
    count = u64(dv, at + 32);
    cdSize = u64(dv, at + 40);
    cdOffset = u64(dv, at + 48);
  }
  if (count > limits.maxEntries) {
    throw new LimitError(file, `zip.maxEntries = ${limits.maxEntries}`, `the archive lists ${count} entries`);
  }
  if (cdOffset + cdSize > n) throw new ZipError(file, 'central directory lies outside the file (truncated download?)');
  const out: ZipEntryInfo[] = [];
  const seen = new Set<string>();
  let p = cdOffset;
  let total = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > n || dv.getUint32(p, true) !== SIG_CEN) throw new ZipError(file, `central directory entry ${k} is corrupt`);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localOffset = dv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen > n) throw new ZipError(file, `central directory entry ${k} is truncated`);
    const name = new TextDecoder().decode(zip.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field: 64-bit values for the 32-bit fields that hold 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff && q + 8 <= e + 4 + len) (size = u64(dv, q)), (q += 8);
        if (compressedSize === 0xffffffff && q + 8 <= e + 4 + len) (compressedSize = u64(dv, q)), (q += 8);
        if (localOffset === 0xffffffff && q + 8 <= e + 4 + len) localOffset = u64(dv, q);
      }
      e += 4 + len;
    }
    p = eEnd + commentLen;
    if (seen.has(name)) throw new ZipError(file, 'the archive holds this name twice', name);
    seen.add(name);
    if (name.endsWith('/')) continue;
    if (size > limits.maxEntryBytes) {
      throw new LimitError(
        file,
        `zip.maxEntryBytes = ${formatBytes(limits.maxEntryBytes)}`,
        `entry ${name} expands to ${formatBytes(size)}`,
      );
    }
    total += size;
    if (total > limits.maxTotalBytes) {
      throw new LimitError(
        file,
        `zip.maxTotalBytes = ${formatBytes(limits.maxTotalBytes)}`,
        `the entries expand to more than ${formatBytes(total)} in all`,
      );
    }
    if (size > limits.ratioExemptBytes && size > limits.maxRatio * Math.max(1, compressedSize)) {
      throw new LimitError(
        file,
        `zip.maxRatio = ${limits.maxRatio}`,
        `entry ${name} expands ${formatBytes(compressedSize)} to ${formatBytes(size)} (ratio ${Math.round(size / Math.max(1, compressedSize))}; a zip bomb?)`,
      );
    }
    out.push({ name, method, compressedSize, size, localOffset, flags });
  }
  return out;
}

/** Inflates one entry into exactly its declared size; more output than declared is an error, stopped there. */
function extract(zip: Uint8Array, e: ZipEntryInfo, file: string): Uint8Array {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const o = e.localOffset;
  if (o + 30 > zip.byteLength || dv.getUint32(o, true) !== SIG_LOC) throw new ZipError(file, 'local header is corrupt', e.name);
  if (e.flags & 1) throw new ZipError(file, 'encrypted entries are not supported', e.name);
  const start = o + 30 + dv.getUint16(o + 26, true) + dv.getUint16(o + 28, true);
  const end = start + e.compressedSize;
  if (end > zip.byteLength) throw new ZipError(file, 'entry data runs past the end of the file (truncated?)', e.name);
  const src = zip.subarray(start, end);
  if (e.method === 0) {
    if (e.compressedSize !== e.size) throw new ZipError(file, 'stored entry whose sizes differ', e.name);
    return src.slice();
  }
  if (e.method !== 8) throw new ZipError(file, `compression method ${e.method} is not supported (only stored and deflate)`, e.name);
  const out = new Uint8Array(e.size);
  let got = 0;
  const inf = new Inflate((chunk) => {
    if (got + chunk.length > e.size) {
      throw new LimitError(
        file,
        'declared entry size',
        `entry ${e.name} inflates past the ${formatBytes(e.size)} its directory declares (stopped there)`,
      );
    }
    out.set(chunk, got);
    got += chunk.length;
  });
  try {
    for (let i = 0; i < src.length; i += CHUNK) inf.push(src.subarray(i, Math.min(src.length, i + CHUNK)), i + CHUNK >= src.length);
    if (src.length === 0) inf.push(new Uint8Array(0), true);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    throw new ZipError(file, `corrupt deflate data (${(err as Error).message})`, e.name);
  }
  if (got !== e.size) throw new ZipError(file, `inflates to ${got} bytes, its directory declares ${e.size}`, e.name);
  return out;
}

/**
 * The files of a .zip (directories left out), with every limit checked before and while inflating.
 * LimitError names the limit; ZipError says what is malformed.
 */
export function unzipBounded(zip: Uint8Array, file: string, limits: Partial<ZipLimits> = {}): Map<string, Uint8Array> {
  const lim: ZipLimits = { ...ZIP_LIMITS, ...limits };
  const entries = readZipDirectory(zip, file, lim);
  const out = new Map<string, Uint8Array>();
  for (const e of entries) out.set(e.name, extract(zip, e, file));
  return out;
}
