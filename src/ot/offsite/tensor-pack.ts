/**
 * A minimal exact container for checkpoint tensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, offset}}, then raw little-endian data. Unlike our safetensors writer it keeps F64
 * (the f64 CPU backend's moments) as well as F32, so a resumed run continues from the very same bits.
 */
import type { FloatArray } from '../../engine/backend';

export interface PackedTensor {
  shape: number[];
  data: FloatArray;
}

export function packTensors(tensors: Iterable<[string, PackedTensor]>): Uint8Array {
  const list = [...tensors];
  const header: Record<string, { dtype: 'F32' | 'F64'; shape: number[]; offset: number; length: number }> = {};
  let off = 0;
  for (const [name, t] of list) {
    const dtype = t.data instanceof Float64Array ? 'F64' : 'F32';
    const n = t.data.length;
    if (t.shape.reduce((a, b) => a * b, 1) !== n) throw new Error(`packTensors: ${name} has ${n} values for shape [${t.shape.join(', ')}]`);
    // Align every tensor to 8 bytes so it can be viewed in place.
    off = Math.ceil(off / 8) * 8;
    header[name] = { dtype, shape: t.shape, offset: off, length: n };
    off += n * (dtype === 'F64' ? 8 : 4);
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const j = new Uint8Array(json.length + pad).fill(0x20);
    j.set(json);
    json = j;
  }
  const out = new Uint8Array(8 + json.length + off);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  const base = 8 + json.length;
  for (const [name, t] of list) {
    const h = header[name]!;
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, base + h.offset);
  }
  return out;
}

export function unpackTensors(bytes: Uint8Array, file = 'tensors'): Map<string, PackedTensor> {
  if (bytes.length < 8) throw new Error(`${file}: truncated`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hl = Number(dv.getBigUint64(0, true));
  if (8 + hl > bytes.length) throw new Error(`${file}: header runs past the end`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hl))) as Record<
    string,
    { dtype: 'F32' | 'F64'; shape: number[]; offset: number; length: number }
  >;
  const base = 8 + hl;
  const out = new Map<string, PackedTensor>();
  for (const [name, h] of Object.entries(header)) {
    const size = h.dtype === 'F64' ? 8 : 4;
    const start = base + h.offset;
    const end = start + h.length * size;
    if (end > bytes.length) throw new Error(`${file}: ${name} runs past the end`);
    // Copy into a fresh aligned buffer (the input may sit at any byte offset).
    const buf = bytes.slice(start, end).buffer;
    out.set(name, { shape: h.shape, data: h.dtype === 'F64' ? new Float64Array(buf) : new Float32Array(buf) });
  }
  return out;
}
