/**
 * The records of a stored (uncompressed) .zip, field for field as fflate's zipSync writes them at level 0:
 * the one place both zip writers build them, the CLI's streamed package file (package-file.ts) and the
 * studio's Blob of parts (workers/studio/zip-blob.ts), so that neither can drift from zipEmulatorPackage.
 * No Node or DOM imports: it runs in the CLI and in the studio worker.
 */

/** One entry as its headers describe it. */
export interface ZipRecord {
  /** The name's UTF-8 bytes (at most 65535). */
  name: Uint8Array;
  /** Whether the name has non-ASCII characters (the UTF-8 flag). */
  utf8: boolean;
  crc: number;
  /** Bytes of data (stored: compressed size = size). */
  size: number;
  /** Byte offset of the entry's local header in the zip. */
  offset: number;
}

/** The zip's MS-DOS date and time, from the local fields of `mtime` as fflate reads them. */
export function dosTime(mtime: Date): number {
  const y = mtime.getFullYear() - 1980;
  if (y < 0 || y > 119) throw new Error('zip: the date must be between 1980 and 2099');
  return (
    ((y << 25) |
      ((mtime.getMonth() + 1) << 21) |
      (mtime.getDate() << 16) |
      (mtime.getHours() << 11) |
      (mtime.getMinutes() << 5) |
      (mtime.getSeconds() >> 1)) >>>
    0
  );
}

/** A record for `name` (its CRC filled in later by a streaming writer); throws on a name over 65535 bytes. */
export function zipRecord(name: string, size: number, offset: number, crc = 0): ZipRecord {
  const fn = new TextEncoder().encode(name);
  if (fn.length > 65535) throw new Error(`zip: name too long: ${name}`);
  return { name: fn, utf8: fn.length !== name.length, crc, size, offset };
}

/** A local (30 bytes + name) or central (46 bytes + name) header of a stored entry, fflate's fields. */
export function zipHeader(r: ZipRecord, dos: number, central: boolean): Uint8Array {
  const h = new Uint8Array((central ? 46 : 30) + r.name.length);
  const v = new DataView(h.buffer);
  let b = 0;
  v.setUint32(b, central ? 0x02014b50 : 0x04034b50, true);
  b += 4;
  if (central) {
    v.setUint16(b, 20, true); // made by
    b += 2;
  }
  v.setUint16(b, 20, true); // needed to extract
  v.setUint16(b + 2, r.utf8 ? 0x800 : 0, true);
  v.setUint16(b + 4, 0, true); // stored
  v.setUint32(b + 6, dos, true);
  v.setUint32(b + 10, r.crc, true);
  v.setUint32(b + 14, r.size, true);
  v.setUint32(b + 18, r.size, true);
  v.setUint16(b + 22, r.name.length, true);
  v.setUint16(b + 24, 0, true); // extra
  b += 26;
  if (central) {
    v.setUint32(b + 10, r.offset, true); // comment length, disk, attributes: 0
    b += 14;
  }
  h.set(r.name, b);
  return h;
}

/** The end-of-central-directory record (22 bytes) for `count` entries whose central directory of
 *  `cdSize` bytes starts at `cdStart`. */
export function zipEnd(count: number, cdSize: number, cdStart: number): Uint8Array {
  const end = new Uint8Array(22);
  const v = new DataView(end.buffer);
  v.setUint32(0, 0x06054b50, true);
  v.setUint16(8, count, true);
  v.setUint16(10, count, true);
  v.setUint32(12, cdSize, true);
  v.setUint32(16, cdStart, true);
  return end;
}
