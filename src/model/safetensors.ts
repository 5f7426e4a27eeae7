/**
 * safetensors read/write (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}}`, then
 * the data section (offsets are relative to its start).
 *
 * Reading is split into header parsing and per-tensor decoding so large checkpoints can be read tensor by
 * tensor through `ModelSource.readRange` (see `SafetensorsReader`) instead of holding the whole file twice.
 * Writing follows the Rust implementation: header padded with spaces to a multiple of 8 bytes, tensors laid
 * out in sorted-name order so the output is byte-for-byte deterministic.
 */
import { SafetensorsError } from './errors';
import { LimitError } from '../faults/errors';
import { topLevelKeys } from '../faults/json-keys';
import { MAX_SAFETENSORS_ENTRIES } from '../faults/limits';
import type { HostDType, HostTensor, WeightMap } from './weights';
import { numel } from './weights';
import type { ModelSource } from './source';

/** Same cap as the Rust crate: protects against a corrupted length making us allocate gigabytes. */
export const MAX_HEADER_SIZE = 100_000_000;

/** Element sizes of every dtype the format defines; only F32/F16/BF16 are decodable here. */
const DTYPE_SIZES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensor entries in header (file) order. */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section (8 + header length). */
  dataStart: number;
  /** Total file size the header was validated against. */
  fileSize: number;
}

export interface ParsedSafetensors {
  tensors: WeightMap;
  metadata: Record<string, string>;
}

function isDecodable(dtype: string): dtype is HostDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * An aligned private copy. Not `bytes.slice()`: on a Node Buffer that returns a view into Node's shared
 * pool, whose `.buffer` is the whole pool.
 */
function copyBytes(bytes: Uint8Array): ArrayBuffer {
  const c = new Uint8Array(bytes.byteLength);
  c.set(bytes);
  return c.buffer;
}

function toU8(input: Uint8Array | ArrayBuffer): Uint8Array {
  return input instanceof Uint8Array ? input : new Uint8Array(input);
}

/** Header length from the first 8 bytes (throws 'truncated'/'header-too-large'). */
export function readHeaderLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new SafetensorsError('truncated', file, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError('header-too-large', file, `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit (corrupt file?)`);
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError('truncated', file, `header length ${len} claims more bytes than the file has (${fileSize} bytes)`);
  }
  return len;
}

/**
 * Parses and validates the header. `headerBytes` are exactly the N JSON bytes; `fileSize` is the size of the
 * whole file, used to check data offsets.
 */
export function parseHeaderJson(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLen = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError('bad-header-json', file, 'header is not valid UTF-8');
  }
  // Before JSON.parse: count entries (a header of millions of tiny entries costs gigabytes as objects)
  // and refuse a name listed twice (JSON.parse would keep the last one silently).
  const seen = new Set<string>();
  topLevelKeys(text, (key, index) => {
    if (index >= MAX_SAFETENSORS_ENTRIES + 1) {
      throw new LimitError(
        file,
        `safetensors entries = ${MAX_SAFETENSORS_ENTRIES}`,
        `the header lists more than ${MAX_SAFETENSORS_ENTRIES} entries`,
      );
    }
    if (seen.has(key)) throw new SafetensorsError('duplicate-name', file, 'the header lists this tensor name twice', key);
    seen.add(key);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError('bad-header-json', file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError('bad-header-json', file, 'header JSON is not an object');
  }
  const entries = new Map<string, SafetensorsEntry>();
  const metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new SafetensorsError('bad-header', file, '__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError('bad-header', file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object') {
      throw new SafetensorsError('bad-header', file, 'tensor entry is not an object', name);
    }
    const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof r.dtype !== 'string') throw new SafetensorsError('bad-header', file, 'missing dtype', name);
    const size = DTYPE_SIZES[r.dtype];
    if (size === undefined) throw new SafetensorsError('unknown-dtype', file, `unknown dtype '${r.dtype}'`, name);
    const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!Array.isArray(r.shape) || !r.shape.every(isNat)) {
      throw new SafetensorsError('bad-header', file, 'shape must be an array of non-negative integers', name);
    }
    const off = r.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !isNat(off[0]) || !isNat(off[1])) {
      throw new SafetensorsError('bad-header', file, 'data_offsets must be [begin, end]', name);
    }
    const [begin, end] = off as [number, number];
    if (end < begin || end > dataLen) {
      throw new SafetensorsError(
        'offsets-out-of-range',
        file,
        `data_offsets [${begin}, ${end}] fall outside the ${dataLen}-byte data section (truncated file?)`,
        name,
      );
    }
    const shape = r.shape as number[];
    const want = numel(shape) * size;
    if (end - begin !== want) {
      throw new SafetensorsError(
        'size-mismatch',
        file,
        `${r.dtype} [${shape.join(', ')}] needs ${want} bytes but data_offsets span ${end - begin}`,
        name,
      );
    }
    entries.set(name, { dtype: r.dtype, shape: [...shape], begin, end });
  }
  // Rust rejects gaps too; we only reject overlaps, because a gap cannot make us read wrong data.
  const sorted = [...entries.entries()].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    const [name, cur] = sorted[i]!;
    if (cur.begin < prev.end) {
      throw new SafetensorsError('overlapping', file, `data overlaps tensor '${prevName}'`, name);
    }
  }
  return { entries, metadata, dataStart, fileSize };
}

// ---------------------------------------------------------------------------------------------------------
// f16 / bf16 conversion

let HALF_TABLE: Float32Array | null = null;

/** Exact IEEE binary16 -> number (subnormals, ±inf, NaN). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) HALF_TABLE[h] = halfToFloat(h);
  }
  return HALF_TABLE;
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** number -> IEEE binary16 bits, round to nearest even; overflow -> ±inf; NaN stays NaN. */
export function floatToHalf(x: number): number {
  cvtF32[0] = x;
  return f32BitsToHalf(cvtU32[0]!);
}

/** f32 bit pattern -> binary16 bits (round to nearest even). */
export function f32BitsToHalf(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let hm = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry out of the subnormal range yields 0x400, the smallest normal: exactly right.
    if (rem > half || (rem === half && hm & 1)) hm++;
    return sign | hm;
  }
  const hm = mant >>> 13;
  const rem = mant & 0x1fff;
  let h = sign | (e << 10) | hm;
  // The carry may ripple into the exponent (and up to inf): that is the correct rounding.
  if (rem > 0x1000 || (rem === 0x1000 && hm & 1)) h++;
  return h;
}

/** number -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function floatToBF16(x: number): number {
  cvtF32[0] = x;
  return f32BitsToBF16(cvtU32[0]!);
}

export function f32BitsToBF16(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

function readU16(bytes: Uint8Array): Uint16Array {
  if (LITTLE_ENDIAN) return new Uint16Array(copyBytes(bytes));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint16Array(bytes.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

/** Decodes one tensor's bytes (exactly `end - begin` of them) to a HostTensor. */
export function decodeTensor(entry: SafetensorsEntry, bytes: Uint8Array, file: string, name: string): HostTensor {
  if (!isDecodable(entry.dtype)) {
    throw new SafetensorsError('unknown-dtype', file, `unsupported dtype '${entry.dtype}' (only F32, F16, BF16 can be loaded)`, name);
  }
  if (bytes.byteLength !== entry.end - entry.begin) {
    throw new SafetensorsError('truncated', file, `expected ${entry.end - entry.begin} bytes, read ${bytes.byteLength}`, name);
  }
  const n = numel(entry.shape);
  let data: Float32Array;
  if (entry.dtype === 'F32') {
    if (LITTLE_ENDIAN) data = new Float32Array(copyBytes(bytes));
    else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = dv.getFloat32(4 * i, true);
    }
  } else if (entry.dtype === 'F16') {
    const h = readU16(bytes);
    const table = halfTable();
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = table[h[i]!]!;
  } else {
    const h = readU16(bytes);
    data = new Float32Array(n);
    const u = new Uint32Array(data.buffer);
    for (let i = 0; i < n; i++) u[i] = h[i]! << 16;
  }
  return { dtype: entry.dtype, shape: [...entry.shape], data };
}

/** Parses a whole in-memory safetensors file. */
export function parseSafetensors(input: Uint8Array | ArrayBuffer, file = 'model.safetensors'): ParsedSafetensors {
  const bytes = toU8(input);
  const header = parseSafetensorsHeader(bytes, file);
  const tensors: WeightMap = new Map();
  for (const [name, e] of header.entries) {
    tensors.set(name, decodeTensor(e, bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end), file, name));
  }
  return { tensors, metadata: header.metadata };
}

/** Header only, from the whole file's bytes. */
export function parseSafetensorsHeader(input: Uint8Array | ArrayBuffer, file = 'model.safetensors'): SafetensorsHeader {
  const bytes = toU8(input);
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength, file);
  return parseHeaderJson(bytes.subarray(8, 8 + n), bytes.byteLength, file);
}

/**
 * Reads a safetensors file from a ModelSource by ranges: the header first, then each tensor on demand, so a
 * 500 MB checkpoint never sits in memory as both bytes and floats.
 */
export class SafetensorsReader {
  private constructor(
    readonly source: ModelSource,
    readonly file: string,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(source: ModelSource, file: string): Promise<SafetensorsReader> {
    const size = await source.size(file);
    const first = await source.readRange(file, 0, Math.min(8, size));
    const n = readHeaderLength(first, size, file);
    const headerBytes = await source.readRange(file, 8, 8 + n);
    return new SafetensorsReader(source, file, parseHeaderJson(headerBytes, size, file));
  }

  get names(): string[] {
    return [...this.header.entries.keys()];
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry | undefined {
    return this.header.entries.get(name);
  }

  async read(name: string): Promise<HostTensor> {
    const e = this.header.entries.get(name);
    if (!e) throw new SafetensorsError('bad-header', this.file, 'no such tensor', name);
    const s = this.header.dataStart;
    const bytes = await this.source.readRange(this.file, s + e.begin, s + e.end);
    return decodeTensor(e, bytes, this.file, name);
  }
}

// ---------------------------------------------------------------------------------------------------------
// writing

export type WriteDType = 'F32' | 'F16' | 'BF16';

export interface SerializeOptions {
  /** Dtype every tensor is written in (default F32). */
  dtype?: WriteDType;
  metadata?: Record<string, string>;
}

/**
 * One tensor's bytes in `dtype` (little-endian). F32 on a little-endian host is a view of the tensor's own
 * array, not a copy: a streamed writer hands it straight to the file, and `serializeSafetensors` copies it
 * into its output anyway.
 */
export function encodeTensor(t: HostTensor, dtype: WriteDType): Uint8Array {
  const n = t.data.length;
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) return new Uint8Array(t.data.buffer, t.data.byteOffset, 4 * n);
    const out = new Uint8Array(4 * n);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, t.data[i]!, true);
    return out;
  }
  const out = new Uint8Array(2 * n);
  const cvt = dtype === 'F16' ? f32BitsToHalf : f32BitsToBF16;
  const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, n);
  if (LITTLE_ENDIAN) {
    const o16 = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) o16[i] = cvt(bits[i]!);
  } else {
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, cvt(bits[i]!), true);
  }
  return out;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What a safetensors header needs of a tensor: its shape and its element count. */
export interface HeaderTensor {
  shape: readonly number[];
  data: { readonly length: number };
}

export interface SafetensorsLayout<T extends HeaderTensor = HeaderTensor> {
  /** The file's first bytes: the 8-byte little-endian header length, then the JSON padded with spaces to a
   *  multiple of 8 (so the data section, and every F32 tensor in it, starts 8-byte aligned). */
  header: Uint8Array;
  /** The tensors in data-section order (sorted by name). */
  entries: [string, T][];
  /** Size of the whole file: header plus every tensor's bytes in `dtype`. */
  byteLength: number;
}

/**
 * The one place a safetensors header is built (offsets, dtype, shape, sorted `__metadata__`, padding):
 * serializeSafetensors, the streamed file writer and the streamed weights hash all lay out the same bytes
 * from it, so a streamed file cannot drift from the in-memory one.
 */
export function safetensorsHeader<T extends HeaderTensor>(
  tensors: Iterable<readonly [string, T]>,
  dtype: WriteDType = 'F32',
  metadata?: Record<string, string>,
): SafetensorsLayout<T> {
  const size = DTYPE_SIZES[dtype]!;
  const list: [string, T][] = [...tensors].map(([name, t]) => [name, t] as [string, T]).sort((a, b) => byName(a[0], b[0]));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort(byName)) meta[k] = String(metadata[k]);
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new Error("serializeSafetensors: '__metadata__' is not a valid tensor name");
    // A name given twice would get one header entry but two data ranges: a corrupt file.
    if (Object.hasOwn(header, name)) throw new Error(`serializeSafetensors: ${name} is given twice`);
    if (numel(t.shape) !== t.data.length) {
      throw new Error(`serializeSafetensors: ${name} has ${t.data.length} elements but shape [${t.shape.join(', ')}]`);
    }
    const bytes = t.data.length * size;
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return { header: out, entries: list, byteLength: out.length + offset };
}

/** Serializes tensors (sorted by name) into one safetensors file. */
export function serializeSafetensors(tensors: WeightMap | Iterable<[string, HostTensor]>, opts: SerializeOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'F32';
  const layout = safetensorsHeader(tensors, dtype, opts.metadata);
  const out = new Uint8Array(layout.byteLength);
  out.set(layout.header);
  let pos = layout.header.length;
  for (const [, t] of layout.entries) {
    const b = encodeTensor(t, dtype);
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}
