/**
 * WebAssembly SIMD macro-kernel for the f32 GEMM (assembled here from bytes: no toolchain, no fetch).
 *
 * Why: plain JS computes in scalar doubles; 128-bit f32x4 lanes do four multiply-adds per instruction, which
 * is where the f32 product path's speed comes from. The f64 backend (the gradient-check oracle) keeps the
 * JS kernel. If WebAssembly or SIMD is unavailable (old engine, CSP without 'wasm-unsafe-eval'),
 * `simdKernel()` returns null and callers fall back to JS.
 *
 * Exported function `mk(ap, bp, cp, mc, nc, kc)` (byte offsets, sizes in elements; mc % 4 == 0,
 * nc % 8 == 0): Cbuf[mc, nc] = Apack · Bpack where Apack holds row panels of 4 (Ap[i*kc + p*4 + r]) and
 * Bpack column panels of 8 (Bp[j*kc + p*8 + c]). Micro-tile 4x8: eight v128 accumulators (4 rows x 2
 * vectors), per p two vector loads of B and four broadcast loads of A.
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

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function str(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

// Opcodes.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = 0x6a;
const I32_MUL = 0x6c;
const I32_LT_U = 0x49;
const memarg = (alignLog2: number, offset: number) => [...uleb(alignLog2), ...uleb(offset)];
const v128load = (off: number) => [0xfd, 0x00, ...memarg(4, off)];
const v128store = (off: number) => [0xfd, 0x0b, ...memarg(4, off)];
const load32splat = (off: number) => [0xfd, 0x09, ...memarg(2, off)];
const F32X4_ADD = [0xfd, ...uleb(0xe4)];
const F32X4_MUL = [0xfd, ...uleb(0xe6)];
const V128_ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];

export function buildModule(pages: number, MR = 4, NV = 2): Uint8Array<ArrayBuffer> {
  // Params 0..5: ap, bp, cp, mc, nc, kc. Locals (i32): 6 i, 7 j, 8 p, 9 a, 10 b, 11 c, 12 ncBytes.
  // Locals (v128): MR*NV accumulators, then NV B vectors, then one broadcast A value.
  const [AP, BP, CP, MC, NC, KC, Li, Lj, Lp, La, Lb, Lc, LNCB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const NACC = MR * NV;
  const ACC = (t: number) => 13 + t;
  const BV = (v: number) => 13 + NACC + v;
  const X = 13 + NACC + NV;
  const NR = 4 * NV;
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  // ncBytes = nc * 4
  emit(get(NC), i32c(4), I32_MUL, set(LNCB));
  // for (j = 0; j < nc; j += NR)
  emit(i32c(0), set(Lj));
  emit(0x02, 0x40, 0x03, 0x40); // block loop
  emit(get(Lj), get(NC), I32_LT_U, 0x45, 0x0d, 1); // if !(j < nc) break
  //   for (i = 0; i < mc; i += MR)
  emit(i32c(0), set(Li));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Li), get(MC), I32_LT_U, 0x45, 0x0d, 1);
  for (let t = 0; t < NACC; t++) emit(V128_ZERO, set(ACC(t)));
  // a = ap + i*kc*4 ; b = bp + j*kc*4
  emit(get(AP), get(Li), get(KC), I32_MUL, i32c(4), I32_MUL, I32_ADD, set(La));
  emit(get(BP), get(Lj), get(KC), I32_MUL, i32c(4), I32_MUL, I32_ADD, set(Lb));
  //     for (p = 0; p < kc; p++)
  emit(i32c(0), set(Lp));
  emit(0x02, 0x40, 0x03, 0x40);
  emit(get(Lp), get(KC), I32_LT_U, 0x45, 0x0d, 1);
  for (let v = 0; v < NV; v++) emit(get(Lb), v128load(16 * v), set(BV(v)));
  for (let r = 0; r < MR; r++) {
    emit(get(La), load32splat(4 * r), set(X));
    for (let v = 0; v < NV; v++) {
      emit(get(ACC(r * NV + v)), get(X), get(BV(v)), F32X4_MUL, F32X4_ADD, set(ACC(r * NV + v)));
    }
  }
  emit(get(La), i32c(4 * MR), I32_ADD, set(La));
  emit(get(Lb), i32c(4 * NR), I32_ADD, set(Lb));
  emit(get(Lp), i32c(1), I32_ADD, set(Lp));
  emit(0x0c, 0, 0x0b, 0x0b); // br loop; end loop; end block
  //     c = cp + (i*nc + j)*4; store the MR x NR tile
  emit(get(CP), get(Li), get(NC), I32_MUL, get(Lj), I32_ADD, i32c(4), I32_MUL, I32_ADD, set(Lc));
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NV; v++) emit(get(Lc), get(ACC(r * NV + v)), v128store(16 * v));
    if (r < MR - 1) emit(get(Lc), get(LNCB), I32_ADD, set(Lc));
  }
  emit(get(Li), i32c(MR), I32_ADD, set(Li));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(get(Lj), i32c(NR), I32_ADD, set(Lj));
  emit(0x0c, 0, 0x0b, 0x0b);
  emit(0x0b); // end function

  const locals = [2, ...uleb(7), I32, ...uleb(NACC + NV + 1), V128];
  const body = [...locals, ...code];
  const funcBody = [...uleb(body.length), ...body];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, I32, I32, I32, I32, I32, I32, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...uleb(pages)]),
    ...section(7, [2, ...str('mem'), 0x02, 0, ...str('mk'), 0x00, 0]),
    ...section(10, [1, ...funcBody]),
  ];
  return new Uint8Array(bytes);
}

export interface SimdKernel {
  /** f32 view of the module's memory. */
  mem: Float32Array;
  /** Element offsets of the A pack, B pack and C buffer inside `mem`. */
  aOff: number;
  bOff: number;
  cOff: number;
  run(mc: number, nc: number, kc: number): void;
}

let cached: SimdKernel | null | undefined;

/** The kernel sized for blocks up to mcMax x kcMax (A), kcMax x ncMax (B); null when unsupported. */
export function simdKernel(mcMax = 64, kcMax = 256, ncMax = 256): SimdKernel | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    if (typeof WebAssembly === 'undefined') return null;
    const aLen = mcMax * kcMax;
    const bLen = kcMax * ncMax;
    const cLen = mcMax * ncMax;
    const bytesNeeded = 4 * (aLen + bLen + cLen);
    const pages = Math.ceil(bytesNeeded / 65536);
    const mod = new WebAssembly.Module(buildModule(pages));
    const inst = new WebAssembly.Instance(mod, {});
    const memory = inst.exports.mem as WebAssembly.Memory;
    const mk = inst.exports.mk as (ap: number, bp: number, cp: number, mc: number, nc: number, kc: number) => void;
    const mem = new Float32Array(memory.buffer);
    const aOff = 0;
    const bOff = aLen;
    const cOff = aLen + bLen;
    cached = {
      mem, aOff, bOff, cOff,
      run: (mc, nc, kc) => mk(aOff * 4, bOff * 4, cOff * 4, mc, nc, kc),
    };
  } catch {
    cached = null;
  }
  return cached;
}
