import { DatasetError } from './errors';

/**
 * Strict UTF-8: a file with invalid bytes is rejected rather than decoded with U+FFFD replacement
 * characters, which would silently train on garbage (typically a Latin-1 or UTF-16 file picked by mistake).
 * A leading BOM is dropped.
 */
export function decodeUtf8Strict(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const offset = at < 0 ? 0 : at;
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    const hex = at < 0 ? '' : ` (byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at offset ${at})`;
    const hint = looksUtf16(bytes) ? '; the file looks like UTF-16, save it as UTF-8' : '; save the file as UTF-8';
    throw new DatasetError('not-utf8', file, line, `text is not valid UTF-8${hex}${hint}`);
  }
}

function looksUtf16(b: Uint8Array): boolean {
  return b.length >= 2 && ((b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff));
}

/** Offset of the first byte that starts an invalid UTF-8 sequence, or -1 if the bytes are valid. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i] as number;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + need >= n) return i; // truncated sequence at end of file
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid too.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * The not-utf8 error for one line of a file read line by line: `lineBytes` failed to decode; `offset` is
 * the line's start in the file; `fileStart` the first bytes of the file (for the UTF-16 hint).
 */
export function utf8LineError(lineBytes: Uint8Array, file: string, line: number, offset: number, fileStart: Uint8Array): DatasetError {
  const at = firstInvalidUtf8(lineBytes);
  const hex = at < 0 ? '' : ` (byte 0x${(lineBytes[at] ?? 0).toString(16).padStart(2, '0')} at offset ${offset + at})`;
  const hint = looksUtf16(fileStart) ? '; the file looks like UTF-16, save it as UTF-8' : '; save the file as UTF-8';
  return new DatasetError('not-utf8', file, line, `text is not valid UTF-8${hex}${hint}`);
}
