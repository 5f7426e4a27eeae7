import { describe, expect, it } from 'vitest';
import { mulberry32 } from './random';
import { decodeUtf8Strict, firstInvalidUtf8 } from './utf8';

function valid(b: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

describe('strict UTF-8', () => {
  it('agrees with TextDecoder on random byte strings (validity, and decoding up to the bad byte)', () => {
    const rand = mulberry32(12345);
    const pool = [0x41, 0x0a, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90];
    for (let trial = 0; trial < 3000; trial++) {
      const n = 1 + Math.floor(rand() * 8);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = pool[Math.floor(rand() * pool.length)] as number;
      const at = firstInvalidUtf8(b);
      expect(at === -1).toBe(valid(b));
      if (at >= 0) expect(valid(b.subarray(0, at))).toBe(true);
    }
  });
  it('rejects overlongs, surrogates and > U+10FFFF', () => {
    expect(firstInvalidUtf8(new Uint8Array([0xc0, 0xaf]))).toBe(0);
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xed, 0xa0, 0x80]))).toBe(1);
    expect(firstInvalidUtf8(new Uint8Array([0xf4, 0x90, 0x80, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(new TextEncoder().encode('ok é 日本 😀'))).toBe(-1);
  });
  it('decodes valid text and reports the line of invalid bytes', () => {
    expect(decodeUtf8Strict(new TextEncoder().encode('x'), 'f')).toBe('x');
    expect(() => decodeUtf8Strict(new Uint8Array([0x61, 0x0a, 0x0a, 0xff]), 'f.txt')).toThrow(/^f\.txt line 3: text is not valid UTF-8/);
  });
});
