import { describe, expect, it } from 'vitest';
import { Deflate, zipSync } from 'fflate';
import { LimitError, ZipError } from './errors';
import { readZipDirectory, unzipBounded } from './zip';
import { unzipEmulatorPackage } from '../ot/emulator/package';

/** Raw deflate of `n` zero bytes, built chunk by chunk so the input never exists in memory. */
function deflatedZeros(n: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const d = new Deflate({ level: 1 }, (c) => parts.push(c));
  const chunk = new Uint8Array(1 << 20);
  for (let left = n; left > 0; left -= chunk.length) d.push(left > chunk.length ? chunk : chunk.subarray(0, left), left <= chunk.length);
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), (o += p.length);
  return out;
}

/** A one-entry deflate .zip whose headers declare `declared` uncompressed bytes (the truth may differ). */
function zipWithDeflate(name: string, data: Uint8Array, declared: number): Uint8Array {
  const nb = new TextEncoder().encode(name);
  const loc = new Uint8Array(30 + nb.length);
  const ldv = new DataView(loc.buffer);
  ldv.setUint32(0, 0x04034b50, true);
  ldv.setUint16(4, 20, true);
  ldv.setUint16(8, 8, true);
  ldv.setUint32(18, data.length, true);
  ldv.setUint32(22, declared, true);
  ldv.setUint16(26, nb.length, true);
  loc.set(nb, 30);
  const cen = new Uint8Array(46 + nb.length);
  const cdv = new DataView(cen.buffer);
  cdv.setUint32(0, 0x02014b50, true);
  cdv.setUint16(4, 20, true);
  cdv.setUint16(6, 20, true);
  cdv.setUint16(10, 8, true);
  cdv.setUint32(20, data.length, true);
  cdv.setUint32(24, declared, true);
  cdv.setUint16(28, nb.length, true);
  cdv.setUint32(42, 0, true);
  cen.set(nb, 46);
  const eocd = new Uint8Array(22);
  const edv = new DataView(eocd.buffer);
  edv.setUint32(0, 0x06054b50, true);
  edv.setUint16(8, 1, true);
  edv.setUint16(10, 1, true);
  edv.setUint32(12, cen.length, true);
  edv.setUint32(16, loc.length + data.length, true);
  const out = new Uint8Array(loc.length + data.length + cen.length + eocd.length);
  out.set(loc, 0);
  out.set(data, loc.length);
  out.set(cen, loc.length + data.length);
  out.set(eocd, loc.length + data.length + cen.length);
  return out;
}

function rss(): number {
  return process.memoryUsage().rss;
}

describe('bounded unzip', () => {
  it('reads what fflate writes (stored and deflated), byte for byte', () => {
    const a = new Uint8Array(5000).map((_, i) => (i * 7919) % 251);
    const b = new TextEncoder().encode('{"hello": "world"}'.repeat(100));
    for (const level of [0, 6] as const) {
      const z = zipSync({ 'a.bin': [a, { level }], 'dir/b.json': [b, { level }] });
      const m = unzipBounded(z, 'x.zip');
      expect([...m.keys()].sort()).toEqual(['a.bin', 'dir/b.json']);
      expect(m.get('a.bin')).toEqual(a);
      expect(m.get('dir/b.json')).toEqual(b);
    }
  });

  it('refuses a zip bomb from its central directory, before inflating (ratio limit named)', () => {
    const data = deflatedZeros(64 << 20);
    const zip = zipWithDeflate('emulator.safetensors', data, 64 << 20);
    const before = rss();
    expect(() => unzipBounded(zip, 'bomb.zip')).toThrow(LimitError);
    expect(() => unzipBounded(zip, 'bomb.zip')).toThrow(/bomb\.zip: .*ratio.*zip\.maxRatio = 100/);
    expect(() => unzipEmulatorPackage(zip, 'bomb.zip')).toThrow(/zip\.maxRatio/);
    // Nothing near the 64 MiB it would expand to was allocated.
    expect(rss() - before).toBeLessThan(32 << 20);
  });

  it('stops an entry that inflates past the size its directory declares (a lying directory)', () => {
    const data = deflatedZeros(32 << 20);
    const zip = zipWithDeflate('emulator.json', data, 100_000);
    expect(() => unzipBounded(zip, 'liar.zip')).toThrow(
      /liar\.zip: entry emulator\.json inflates past the 97\.7 KiB its directory declares/,
    );
  });

  it('names the limits on entry count, entry size and total size', () => {
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`f${i}`] = new Uint8Array(1000);
    const z = zipSync(files, { level: 0 });
    expect(() => unzipBounded(z, 'many.zip', { maxEntries: 10 })).toThrow(
      /many\.zip: the archive lists 12 entries \(limit zip\.maxEntries = 10\)/,
    );
    expect(() => unzipBounded(z, 'many.zip', { maxEntryBytes: 999 })).toThrow(
      /entry f0 expands to 1000 bytes \(limit zip\.maxEntryBytes = 999 bytes\)/,
    );
    expect(() => unzipBounded(z, 'many.zip', { maxTotalBytes: 5500 })).toThrow(/zip\.maxTotalBytes/);
    expect(unzipBounded(z, 'many.zip').size).toBe(12);
  });

  it('names malformed archives: not a zip, truncated, unknown method', () => {
    expect(() => unzipBounded(new TextEncoder().encode('hello, not a zip'), 'a.zip')).toThrow(ZipError);
    const z = zipSync({ 'a.json': new Uint8Array(100) }, { level: 0 });
    expect(() => unzipBounded(z.subarray(0, z.length - 30), 'cut.zip')).toThrow(/cut\.zip: /);
    const dup = zipWithDeflate('x', deflatedZeros(10), 10);
    expect(unzipBounded(dup, 'ok.zip').get('x')).toEqual(new Uint8Array(10));
    const bad = zipWithDeflate('x', deflatedZeros(10), 10);
    new DataView(bad.buffer).setUint16(bad.length - 22 - 46 - 1 + 10, 12, true); // central method -> 12 (bzip2)
    expect(() => unzipBounded(bad, 'm.zip')).toThrow(/compression method 12 is not supported/);
    const dir = readZipDirectory(z, 'z.zip');
    expect(dir.map((d) => d.name)).toEqual(['a.json']);
  });
});
