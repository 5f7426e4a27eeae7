/**
 * An emulator package's zip as a Blob made of its parts (headers and the files' own bytes), never one
 * contiguous copy: byte for byte what zipEmulatorPackage (fflate's zipSync, stored, fixed timestamps) writes,
 * which the CLI writes and tests compare. At real sizes the contiguous zip is one more copy of the package
 * (0.65 GB for Qwen2.5-0.5B at keep 0.5) at the moment the build's other arrays may not be collected yet.
 */

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? -306674912 ^ (c >>> 1) : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc32(b: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** The package's zip, as zipEmulatorPackage writes it (names sorted, stored, `mtime` for every entry). */
export function zipPackageBlob(files: Map<string, Uint8Array>, mtime = new Date(Date.UTC(1980, 0, 1))): Blob {
  // MS-DOS date and time, from the local fields as fflate reads them.
  const y = mtime.getFullYear() - 1980;
  if (y < 0 || y > 119) throw new Error('zip: the date must be between 1980 and 2099');
  const dos =
    (y << 25) |
    ((mtime.getMonth() + 1) << 21) |
    (mtime.getDate() << 16) |
    (mtime.getHours() << 11) |
    (mtime.getMinutes() << 5) |
    (mtime.getSeconds() >> 1);
  const enc = new TextEncoder();
  const parts: BlobPart[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const names = [...files.keys()].sort();
  for (const name of names) {
    const data = files.get(name)!;
    const fn = enc.encode(name);
    if (fn.length > 65535) throw new Error(`zip: name too long: ${name}`);
    const utf8 = fn.length !== name.length;
    const crc = crc32(data);
    const header = (central: boolean): Uint8Array => {
      const h = new Uint8Array((central ? 46 : 30) + fn.length);
      const v = new DataView(h.buffer);
      let b = 0;
      v.setUint32(b, central ? 0x02014b50 : 0x04034b50, true);
      b += 4;
      if (central) {
        v.setUint16(b, 20, true); // made by
        b += 2;
      }
      v.setUint16(b, 20, true); // needed to extract
      v.setUint16(b + 2, utf8 ? 0x800 : 0, true);
      v.setUint16(b + 4, 0, true); // stored
      v.setUint32(b + 6, dos >>> 0, true);
      v.setUint32(b + 10, crc, true);
      v.setUint32(b + 14, data.length, true);
      v.setUint32(b + 18, data.length, true);
      v.setUint16(b + 22, fn.length, true);
      v.setUint16(b + 24, 0, true); // extra
      b += 26;
      if (central) {
        v.setUint32(b + 10, offset, true); // comment length, disk, attributes: 0
        b += 14;
      }
      h.set(fn, b);
      return h;
    };
    central.push(header(true));
    const local = header(false);
    parts.push(local as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((a, h) => a + h.length, 0);
  const end = new Uint8Array(22);
  const v = new DataView(end.buffer);
  v.setUint32(0, 0x06054b50, true);
  v.setUint16(8, names.length, true);
  v.setUint16(10, names.length, true);
  v.setUint32(12, cdSize, true);
  v.setUint32(16, offset, true);
  parts.push(...(central as Uint8Array<ArrayBuffer>[]), end);
  return new Blob(parts, { type: 'application/zip' });
}
