/**
 * The WebAssembly f64 module of gemm64 (assembled here from bytes: no toolchain, no fetch) and its
 * blocking constants, shared by the single-threaded gemm64 and its thread pool (gemm64-pool.ts).
 *
 * Kernel `mk(ap, bp, cp, mc, nc, kc, acc)` (byte offsets, sizes in elements; mc % MR == 0, nc % 4 == 0):
 * Cbuf[mc, nc] = Apack·Bpack (acc = 0) or Cbuf += Apack·Bpack (acc = 1), Apack in row panels of MR
 * (Ap[i*kc + p*MR + r]), Bpack in column panels of 4 (Bp[j*kc + p*4 + c]). Per p: two vector loads of B, MR
 * splat loads of A, 2·MR vector multiply-adds. Every element of Cbuf is summed over p in order.
 */
const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const str = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = 0x6a;
const I32_MUL = 0x6c;
const I32_LT_U = 0x49;
const memarg = (alignLog2: number, offset: number) => [...uleb(alignLog2), ...uleb(offset)];
const v128load = (off: number) => [0xfd, 0x00, ...memarg(3, off)];
const v128store = (off: number) => [0xfd, 0x0b, ...memarg(3, off)];
const load64splat = (off: number) => [0xfd, 0x0a, ...memarg(3, off)];
const F64X2_ADD = [0xfd, ...uleb(0xf0)];
const F64X2_MUL = [0xfd, ...uleb(0xf2)];
const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];

/** Micro-tile rows (A) and columns (B: two f64x2 vectors). */
export const MR = 4; // packA/packB index tiles with `& 3`: MR = NR = 4
export const NR = 4;
const NV = NR / 2;

/** Where the module's memory comes from: its own (exported as `mem`), or an imported shared memory
 *  (`env.mem`, for the worker threads of gemm64-pool.ts). */
export type Memory64 = { pages: number } | { shared: { initial: number; maximum: number } };

export function buildModule64(pages: number | Memory64): Uint8Array<ArrayBuffer> {
  const memSpec: Memory64 = typeof pages === 'number' ? { pages } : pages;
  const [AP, BP, CP, MC, NC, KC, ACCF, Li, Lj, Lp, La, Lb, Lc, LNCB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const NACC = MR * NV;
  const ACC = (t: number) => 14 + t;
  const BV = (v: number) => 14 + NACC + v;
  const X = 14 + NACC + NV;
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  emit(get(NC), i32c(8), I32_MUL, set(LNCB));
  emit(i32c(0), set(Lj));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Lj), get(NC), I32_LT_U, 0x45, 0x0d, 1);
  emit(i32c(0), set(Li));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Li), get(MC), I32_LT_U, 0x45, 0x0d, 1);
  for (let t = 0; t < NACC; t++) emit(V128_ZERO, set(ACC(t)));
  emit(get(AP), get(Li), get(KC), I32_MUL, i32c(8), I32_MUL, I32_ADD, set(La));
  emit(get(BP), get(Lj), get(KC), I32_MUL, i32c(8), I32_MUL, I32_ADD, set(Lb));
  emit(i32c(0), set(Lp));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Lp), get(KC), I32_LT_U, 0x45, 0x0d, 1);
  for (let v = 0; v < NV; v++) emit(get(Lb), v128load(16 * v), set(BV(v)));
  for (let r = 0; r < MR; r++) {
    emit(get(La), load64splat(8 * r), set(X));
    for (let v = 0; v < NV; v++) {
      emit(get(ACC(r * NV + v)), get(X), get(BV(v)), F64X2_MUL, F64X2_ADD, set(ACC(r * NV + v)));
    }
  }
  emit(get(La), i32c(8 * MR), I32_ADD, set(La));
  emit(get(Lb), i32c(8 * NR), I32_ADD, set(Lb));
  emit(get(Lp), i32c(1), I32_ADD, set(Lp));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(get(CP), get(Li), get(NC), I32_MUL, get(Lj), I32_ADD, i32c(8), I32_MUL, I32_ADD, set(Lc));
  // if (accumulate) C += tile else C = tile
  emit(get(ACCF), 0x04, 0x40);
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NV; v++) emit(get(Lc), get(Lc), v128load(16 * v), get(ACC(r * NV + v)), F64X2_ADD, v128store(16 * v));
    if (r < MR - 1) emit(get(Lc), get(LNCB), I32_ADD, set(Lc));
  }
  emit(0x05);
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NV; v++) emit(get(Lc), get(ACC(r * NV + v)), v128store(16 * v));
    if (r < MR - 1) emit(get(Lc), get(LNCB), I32_ADD, set(Lc));
  }
  emit(0x0b);
  emit(get(Li), i32c(MR), I32_ADD, set(Li));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(get(Lj), i32c(NR), I32_ADD, set(Lj));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(0x0b);

  const locals = [2, ...uleb(7), I32, ...uleb(NACC + NV + 1), V128];
  const body = [...locals, ...code];
  const funcBody = [...uleb(body.length), ...body];
  const packBody = buildPack();
  const memImport =
    'shared' in memSpec
      ? [1, ...str('env'), ...str('mem'), 0x02, 0x03, ...uleb(memSpec.shared.initial), ...uleb(memSpec.shared.maximum)]
      : null;
  const exportsOwn = [3, ...str('mem'), 0x02, 0, ...str('mk'), 0x00, 0, ...str('pack'), 0x00, 1];
  const exportsShared = [2, ...str('mk'), 0x00, 0, ...str('pack'), 0x00, 1];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    // One type (seven i32 parameters, no result) serves both functions.
    ...section(1, [1, 0x60, 7, I32, I32, I32, I32, I32, I32, I32, 0]),
    ...(memImport ? section(2, memImport) : []),
    ...section(3, [2, 0, 0]),
    ...('pages' in memSpec ? section(5, [1, 0x00, ...uleb(memSpec.pages)]) : []),
    ...section(7, memImport ? exportsShared : exportsOwn),
    ...section(10, [2, ...funcBody, ...packBody]),
  ]);
}

/**
 * `pack(src, rs, cs, dst, rows, rowsPad, kc)` (byte offsets src/dst, strides in elements): the packing of
 * packA/packB below, in WebAssembly, for the worker threads (they see operands only in shared memory).
 * Element (i, p) = f64 at src + 8·(i·rs + p·cs) goes to dst[(i - i%4)·kc + 4p + i%4] for i < rows, p < kc;
 * rows <= i < rowsPad are zero. A copy, no arithmetic: it cannot change a result.
 */
function buildPack(): number[] {
  const [SRC, RS, CS, DST, ROWS, ROWSPAD, KCL, Li, Lp, Ls, Ld, Lcs] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  const F64_LOAD = [0x2b, ...memarg(3, 0)];
  const F64_STORE = [0x39, ...memarg(3, 0)];
  const F64_ZERO = [0x44, 0, 0, 0, 0, 0, 0, 0, 0];
  const I32_AND = 0x71;
  emit(get(CS), i32c(8), I32_MUL, set(Lcs));
  emit(i32c(0), set(Li));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Li), get(ROWSPAD), I32_LT_U, 0x45, 0x0d, 1);
  // d = dst + 8·((i & ~3)·kc + (i & 3))
  emit(get(DST), get(Li), i32c(-4), I32_AND, get(KCL), I32_MUL, get(Li), i32c(3), I32_AND, I32_ADD, i32c(8), I32_MUL, I32_ADD, set(Ld));
  emit(i32c(0), set(Lp));
  emit(get(Li), get(ROWS), I32_LT_U, 0x04, 0x40);
  emit(get(SRC), get(Li), get(RS), I32_MUL, i32c(8), I32_MUL, I32_ADD, set(Ls));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Lp), get(KCL), I32_LT_U, 0x45, 0x0d, 1);
  emit(get(Ld), get(Ls), F64_LOAD, F64_STORE);
  emit(get(Ld), i32c(8 * MR), I32_ADD, set(Ld));
  emit(get(Ls), get(Lcs), I32_ADD, set(Ls));
  emit(get(Lp), i32c(1), I32_ADD, set(Lp));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(0x05);
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Lp), get(KCL), I32_LT_U, 0x45, 0x0d, 1);
  emit(get(Ld), F64_ZERO, F64_STORE);
  emit(get(Ld), i32c(8 * MR), I32_ADD, set(Ld));
  emit(get(Lp), i32c(1), I32_ADD, set(Lp));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(0x0b);
  emit(get(Li), i32c(1), I32_ADD, set(Li));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(0x0b);
  const body = [1, ...uleb(5), I32, ...code];
  return [...uleb(body.length), ...body];
}

// Blocking (elements): the A block (MC x KC, 128 KiB) stays in L2, the B panel (KC x NC) in L2/L3.
export const KC = 256;
export const MC = 64;
export const NC = 256;
