/**
 * WebAssembly SIMD GEMM, assembled here from bytes (no toolchain, no fetch): the f32 hot loop of the CPU
 * backend, shared by every thread of the pool (pool.ts).
 *
 * Why a whole GEMM in WebAssembly (packing, blocking, micro-kernel, write-back) rather than a JS driver around
 * a wasm micro-kernel: the pool's workers instantiate this same module against one shared memory, so the
 * numeric code each thread runs is exactly the code the calling thread runs, and a worker needs no JS of its
 * own beyond a wait loop.
 *
 * Two kernel versions from one builder (each checked against the JS reference kernel in matmul.ts, and
 * benchmarked side by side by `gradot bench --only cpu`):
 * - `simd`: f32x4.mul + f32x4.add (WebAssembly SIMD, every current engine);
 * - `relaxed`: f32x4.relaxed_madd (Relaxed SIMD; a fused multiply-add where the CPU has one, which doubles the
 *   peak on x86 with FMA3). Node 20 needs V8's `--experimental-wasm-relaxed-simd`, which relaxedSimdSupported
 *   turns on before validating.
 *
 * Exported `gemm(desc, scratch)`: desc points at 11 i32 words [aPtr, aRs, aCs, bPtr, bRs, bCs, cPtr, ldc, m,
 * n, k] (pointers in bytes, strides in elements); element (i,p) of A is f32 at aPtr + 4(i*aRs + p*aCs), (p,j)
 * of B at bPtr + 4(p*bRs + j*bCs); C[i*ldc + j] at cPtr is overwritten with Σ_p A(i,p) B(p,j) (k >= 1).
 * `scratch` points at SCRATCH_BYTES of per-thread packing space.
 *
 * Summation order (what makes results bitwise identical across thread counts): C(i,j) = (...((0 + s_0) +
 * s_1) + ...) over KC-blocks of p in order, each s_b accumulated by one lane in p order from zero. Nothing
 * about that depends on which rows/columns a thread owns, so any split of C gives the same bits.
 */

const I32 = 0x7f;
const V128 = 0x7b;

/**
 * Cache blocking (elements): a KC x NC panel of B (1 MiB at these sizes: it stays in a 2 MiB L2) and an
 * MC x KC block of A are packed per step. NC = 1024 rather than 512 packs A once instead of twice at
 * n = 1024: 51.8 against 47.5 GFLOP/s per core (CPU time, median of 9 interleaved rounds on the shared
 * 2-core EPYC, one thread, 1024^3); the same at 512^3. KC sets the summation order (see above), NC and MC
 * do not.
 */
export const KC = 256;
export const NC = 1024;
/** Micro-tile: MR rows x (4*NV) columns of C held in MR*NV v128 accumulators. */
export const MR = 4;
export const NV = 2;
export const NR = 4 * NV;
export const MC = 64; // multiple of MR
const APACK = (MC + MR) * KC * 4;
const BPACK = KC * (NC + NR) * 4;
const CBUF = (MC + MR) * (NC + NR) * 4;
/** Bytes of scratch each thread needs. */
export const SCRATCH_BYTES = APACK + BPACK + CBUF;
/** Words of one job descriptor. */
export const DESC_WORDS = 11;

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

type Code = (number | Code)[];
const flat = (c: Code): number[] => {
  const out: number[] = [];
  const walk = (x: number | Code) => {
    if (Array.isArray(x)) for (const y of x) walk(y);
    else out.push(x);
  };
  walk(c);
  return out;
};

// Instructions.
const get = (i: number): Code => [0x20, ...uleb(i)];
const set = (i: number): Code => [0x21, ...uleb(i)];
const c32 = (v: number): Code => [0x41, ...sleb(v)];
const ADD = 0x6a;
const SUB = 0x6b;
const MUL = 0x6c;
const DIVU = 0x6e;
const AND = 0x71;
const LTU = 0x49;
const EQZ = 0x45;
const memarg = (align: number, off: number) => [...uleb(align), ...uleb(off)];
const i32load = (off: number): Code => [0x28, ...memarg(2, off)];
const f32load = (off: number): Code => [0x2a, ...memarg(2, off)];
const f32store = (off: number): Code => [0x38, ...memarg(2, off)];
const f32const0: Code = [0x43, 0, 0, 0, 0];
const v128load = (off: number): Code => [0xfd, 0x00, ...memarg(0, off)];
const v128store = (off: number): Code => [0xfd, 0x0b, ...memarg(0, off)];
const load32splat = (off: number): Code => [0xfd, 0x09, ...memarg(2, off)];
const F32X4_ADD: Code = [0xfd, ...uleb(0xe4)];
const F32X4_MUL: Code = [0xfd, ...uleb(0xe6)];
const F32X4_RELAXED_MADD: Code = [0xfd, ...uleb(0x105)];
const V128_ZERO: Code = [0xfd, 0x0c, ...new Array(16).fill(0)];
const call = (f: number): Code => [0x10, ...uleb(f)];
const incr = (v: number, by: Code): Code => [get(v), by, ADD, set(v)];
const min = (a: Code, b: Code): Code => [a, b, a, b, LTU, 0x1b]; // select(a, b, a < b)

/** for (v = start; v < limit; v += step) body — limit and step are re-evaluated each iteration. */
function forLoop(v: number, start: Code, limit: Code, step: Code, body: Code): Code {
  return [start, set(v), 0x02, 0x40, 0x03, 0x40, get(v), limit, LTU, EQZ, 0x0d, 1, body, incr(v, step), 0x0c, 0, 0x0b, 0x0b];
}
const ifElse = (cond: Code, then: Code, els: Code = []): Code => [cond, 0x04, 0x40, then, ...(els.length ? [0x05, els] : []), 0x0b];

interface Fn {
  params: number;
  i32Locals: number;
  v128Locals: number;
  body: Code;
}

function funcBody(f: Fn): number[] {
  const locals: number[] = [];
  const groups: [number, number][] = [];
  if (f.i32Locals) groups.push([f.i32Locals, I32]);
  if (f.v128Locals) groups.push([f.v128Locals, V128]);
  locals.push(...uleb(groups.length));
  for (const [n, t] of groups) locals.push(...uleb(n), t);
  const body = [...locals, ...flat(f.body), 0x0b];
  return [...uleb(body.length), ...body];
}

/** packB(dst, src, rsB, csB, kc, nc, ncPad): Bp[jp*kc + p*NR + c] = B(p, jp+c) (0 past nc). */
function packB(): Fn {
  const [DST, SRC, RS, CS, KCc, NCc, NCP] = [0, 1, 2, 3, 4, 5, 6];
  const [jp, c, p, s, d] = [7, 8, 9, 10, 11];
  const panel: Code = [
    // Fast path: a whole NR-wide panel from contiguous rows (csB == 4): NV vector copies per p.
    ifElse(
      [get(CS), c32(4), 0x46 /* i32.eq */, get(jp), c32(NR), ADD, get(NCc), 0x4d /* le_u */, AND],
      [
        get(SRC),
        get(jp),
        c32(4),
        MUL,
        ADD,
        set(s),
        get(DST),
        get(jp),
        get(KCc),
        MUL,
        c32(4),
        MUL,
        ADD,
        set(d),
        forLoop(p, c32(0), get(KCc), c32(1), [
          ...Array.from({ length: NV }, (_, v) => [get(d), get(s), v128load(16 * v), v128store(16 * v)]),
          incr(s, get(RS)),
          incr(d, c32(NR * 4)),
        ]),
      ],
      [
        forLoop(c, c32(0), c32(NR), c32(1), [
          get(DST),
          get(jp),
          get(KCc),
          MUL,
          get(c),
          ADD,
          c32(4),
          MUL,
          ADD,
          set(d),
          ifElse(
            [get(jp), get(c), ADD, get(NCc), LTU],
            [
              get(SRC),
              get(jp),
              get(c),
              ADD,
              get(CS),
              MUL,
              ADD,
              set(s),
              forLoop(p, c32(0), get(KCc), c32(1), [get(d), get(s), f32load(0), f32store(0), incr(s, get(RS)), incr(d, c32(NR * 4))]),
            ],
            [forLoop(p, c32(0), get(KCc), c32(1), [get(d), f32const0, f32store(0), incr(d, c32(NR * 4))])],
          ),
        ]),
      ],
    ),
  ];
  return { params: 7, i32Locals: 5, v128Locals: 0, body: forLoop(jp, c32(0), get(NCP), c32(NR), panel) };
}

/** packA(dst, src, rsB, csB, kc, mc, mcPad): Ap[ip*kc + p*MR + r] = A(ip+r, p) (0 past mc). */
function packA(): Fn {
  const [DST, SRC, RS, CS, KCc, MCc, MCP] = [0, 1, 2, 3, 4, 5, 6];
  const [ip, r, p, s, d] = [7, 8, 9, 10, 11];
  const row: Code = [
    get(DST),
    get(ip),
    get(KCc),
    MUL,
    get(r),
    ADD,
    c32(4),
    MUL,
    ADD,
    set(d),
    ifElse(
      [get(ip), get(r), ADD, get(MCc), LTU],
      [
        get(SRC),
        get(ip),
        get(r),
        ADD,
        get(RS),
        MUL,
        ADD,
        set(s),
        forLoop(p, c32(0), get(KCc), c32(1), [get(d), get(s), f32load(0), f32store(0), incr(s, get(CS)), incr(d, c32(MR * 4))]),
      ],
      [forLoop(p, c32(0), get(KCc), c32(1), [get(d), f32const0, f32store(0), incr(d, c32(MR * 4))])],
    ),
  ];
  return { params: 7, i32Locals: 5, v128Locals: 0, body: forLoop(ip, c32(0), get(MCP), c32(MR), forLoop(r, c32(0), c32(MR), c32(1), row)) };
}

/** kernel(ap, bp, cb, mcPad, ncPad, kc): cb[i*ncPad + j] = Σ_p Ap·Bp over whole MR x NR tiles. */
function kernel(relaxed: boolean): Fn {
  const [AP, BP, CB, MCP, NCP, KCc] = [0, 1, 2, 3, 4, 5];
  const [i, j, p, a, b, cc, ncb] = [6, 7, 8, 9, 10, 11, 12];
  const NACC = MR * NV;
  const ACC = (t: number) => 13 + t;
  const BV = (v: number) => 13 + NACC + v;
  const X = 13 + NACC + NV;
  const step: Code = [];
  for (let v = 0; v < NV; v++) step.push(get(b), v128load(16 * v), set(BV(v)));
  for (let r = 0; r < MR; r++) {
    step.push(get(a), load32splat(4 * r), set(X));
    for (let v = 0; v < NV; v++) {
      const t = ACC(r * NV + v);
      step.push(
        relaxed ? [get(X), get(BV(v)), get(t), F32X4_RELAXED_MADD, set(t)] : [get(t), get(X), get(BV(v)), F32X4_MUL, F32X4_ADD, set(t)],
      );
    }
  }
  step.push(incr(a, c32(4 * MR)), incr(b, c32(4 * NR)));
  const store: Code = [get(CB), get(i), get(NCP), MUL, get(j), ADD, c32(4), MUL, ADD, set(cc)];
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < NV; v++) store.push(get(cc), get(ACC(r * NV + v)), v128store(16 * v));
    if (r < MR - 1) store.push(incr(cc, get(ncb)));
  }
  const tile: Code = [
    ...Array.from({ length: NACC }, (_, t) => [V128_ZERO, set(ACC(t))]),
    get(AP),
    get(i),
    get(KCc),
    MUL,
    c32(4),
    MUL,
    ADD,
    set(a),
    get(BP),
    get(j),
    get(KCc),
    MUL,
    c32(4),
    MUL,
    ADD,
    set(b),
    // One p per iteration: unrolling by two measured slower here (~27 vs ~41 GFLOP/s at 512^3 in V8 11),
    // as did 6x8, 8x8 and 4x12 tiles (accumulators spill past 16 v128 registers).
    forLoop(p, c32(0), get(KCc), c32(1), step),
    store,
  ];
  return {
    params: 6,
    i32Locals: 7,
    v128Locals: NACC + NV + 1,
    body: [get(NCP), c32(4), MUL, set(ncb), forLoop(j, c32(0), get(NCP), c32(NR), forLoop(i, c32(0), get(MCP), c32(MR), tile))],
  };
}

/** writeBack(cb, dst, ldcB, mc, nc, ncPad, first): C(r, c) = (first ? 0 : C(r, c)) + cb[r*ncPad + c]. */
function writeBack(): Fn {
  const [CB, DST, LDB, MCc, NCc, NCP, FIRST] = [0, 1, 2, 3, 4, 5, 6];
  const [r, c, s, d] = [7, 8, 9, 10];
  const vecEnd: Code = [get(NCc), c32(-4), AND];
  const row: Code = [
    get(CB),
    get(r),
    get(NCP),
    MUL,
    c32(4),
    MUL,
    ADD,
    set(s),
    get(DST),
    get(r),
    get(LDB),
    MUL,
    ADD,
    set(d),
    ifElse(
      get(FIRST),
      [
        forLoop(c, c32(0), vecEnd, c32(4), [get(d), get(s), v128load(0), v128store(0), incr(s, c32(16)), incr(d, c32(16))]),
        forLoop(c, vecEnd, get(NCc), c32(1), [get(d), get(s), f32load(0), f32store(0), incr(s, c32(4)), incr(d, c32(4))]),
      ],
      [
        forLoop(c, c32(0), vecEnd, c32(4), [
          get(d),
          get(d),
          v128load(0),
          get(s),
          v128load(0),
          F32X4_ADD,
          v128store(0),
          incr(s, c32(16)),
          incr(d, c32(16)),
        ]),
        forLoop(c, vecEnd, get(NCc), c32(1), [
          get(d),
          get(d),
          f32load(0),
          get(s),
          f32load(0),
          0x92 /* f32.add */,
          f32store(0),
          incr(s, c32(4)),
          incr(d, c32(4)),
        ]),
      ],
    ),
  ];
  return { params: 7, i32Locals: 4, v128Locals: 0, body: forLoop(r, c32(0), get(MCc), c32(1), row) };
}

/** gemm(desc, scratch): the whole blocked product for one job descriptor (see the file comment). */
function gemm(F: { packA: number; packB: number; kernel: number; writeBack: number }): Fn {
  const [DESC, SCR] = [0, 1];
  const L = 2;
  const [aPtr, aRs, aCs, bPtr, bRs, bCs, cPtr, ldc, m, n, k] = Array.from({ length: 11 }, (_, t) => L + t);
  const [j0, nc, ncPad, p0, kc, i0, mc, mcPad, ap, bp, cb] = Array.from({ length: 11 }, (_, t) => L + 11 + t);
  const load: Code = [];
  const fields = [aPtr, aRs, aCs, bPtr, bRs, bCs, cPtr, ldc, m, n, k];
  fields.forEach((f, t) => load.push(get(DESC), i32load(4 * t), set(f!)));
  // Strides to bytes.
  for (const f of [aRs, aCs, bRs, bCs, ldc]) load.push(get(f!), c32(4), MUL, set(f!));
  load.push(get(SCR), set(ap!), get(SCR), c32(APACK), ADD, set(bp!), get(bp!), c32(BPACK), ADD, set(cb!));
  const inner: Code = [
    min([get(m!), get(i0!), SUB], c32(MC)),
    set(mc!),
    get(mc!),
    c32(MR - 1),
    ADD,
    c32(MR),
    DIVU,
    c32(MR),
    MUL,
    set(mcPad!),
    get(ap!),
    get(aPtr!),
    get(i0!),
    get(aRs!),
    MUL,
    ADD,
    get(p0!),
    get(aCs!),
    MUL,
    ADD,
    get(aRs!),
    get(aCs!),
    get(kc!),
    get(mc!),
    get(mcPad!),
    call(F.packA),
    get(ap!),
    get(bp!),
    get(cb!),
    get(mcPad!),
    get(ncPad!),
    get(kc!),
    call(F.kernel),
    get(cb!),
    get(cPtr!),
    get(i0!),
    get(ldc!),
    MUL,
    ADD,
    get(j0!),
    c32(4),
    MUL,
    ADD,
    get(ldc!),
    get(mc!),
    get(nc!),
    get(ncPad!),
    get(p0!),
    EQZ,
    call(F.writeBack),
  ];
  const middle: Code = [
    min([get(k!), get(p0!), SUB], c32(KC)),
    set(kc!),
    get(bp!),
    get(bPtr!),
    get(p0!),
    get(bRs!),
    MUL,
    ADD,
    get(j0!),
    get(bCs!),
    MUL,
    ADD,
    get(bRs!),
    get(bCs!),
    get(kc!),
    get(nc!),
    get(ncPad!),
    call(F.packB),
    forLoop(i0!, c32(0), get(m!), c32(MC), inner),
  ];
  const outer: Code = [
    min([get(n!), get(j0!), SUB], c32(NC)),
    set(nc!),
    get(nc!),
    c32(NR - 1),
    ADD,
    c32(-NR),
    AND,
    set(ncPad!),
    forLoop(p0!, c32(0), get(k!), c32(KC), middle),
  ];
  return { params: 2, i32Locals: 22, v128Locals: 0, body: [load, forLoop(j0!, c32(0), get(n!), c32(NC), outer)] };
}

export interface GemmModuleOptions {
  /** Import a shared memory (threads) rather than a plain one. */
  shared: boolean;
  /** Memory limits in 64 KiB pages. */
  initialPages: number;
  maxPages: number;
  /** Use f32x4.relaxed_madd (Relaxed SIMD) instead of mul + add. */
  relaxed: boolean;
}

/** The module's bytes: imports env.mem, exports gemm(desc, scratch). */
export function buildGemmModule(o: GemmModuleOptions): Uint8Array<ArrayBuffer> {
  const fns = [packA(), packB(), kernel(o.relaxed), writeBack()];
  const idx = { packA: 0, packB: 1, kernel: 2, writeBack: 3 };
  fns.push(gemm(idx));
  const types: number[][] = [];
  const typeOf = (f: Fn) => {
    const sig = [0x60, ...uleb(f.params), ...new Array(f.params).fill(I32), 0];
    let t = types.findIndex((x) => x.length === sig.length && x.every((b, q) => b === sig[q]));
    if (t < 0) {
      types.push(sig);
      t = types.length - 1;
    }
    return t;
  };
  const fnTypes = fns.map(typeOf);
  const limits = [o.shared ? 0x03 : 0x01, ...uleb(o.initialPages), ...uleb(o.maxPages)];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [...uleb(types.length), ...types.flat()]),
    ...section(2, [1, ...str('env'), ...str('mem'), 0x02, ...limits]),
    ...section(3, [...uleb(fns.length), ...fnTypes.flatMap((t) => uleb(t))]),
    ...section(7, [1, ...str('gemm'), 0x00, ...uleb(fns.length - 1)]),
    ...section(10, [...uleb(fns.length), ...fns.flatMap(funcBody)]),
  ];
  return new Uint8Array(bytes);
}

let relaxedCache: boolean | undefined;

/** Whether this runtime validates f32x4.relaxed_madd. In Node (V8 11, Node 20) the feature sits behind
 *  `--experimental-wasm-relaxed-simd`; it is switched on here through v8.setFlagsFromString when the caller
 *  passes that module in (a dynamic import of node:v8 cannot happen synchronously). */
export function relaxedSimdSupported(): boolean {
  if (relaxedCache !== undefined) return relaxedCache;
  try {
    relaxedCache =
      typeof WebAssembly !== 'undefined' &&
      WebAssembly.validate(buildGemmModule({ shared: false, initialPages: 1, maxPages: 1, relaxed: true }));
  } catch {
    relaxedCache = false;
  }
  return relaxedCache;
}

/** Node only: turns on V8's relaxed-SIMD flag (Node 20 ships it off), then forgets the cached answer. */
export async function enableRelaxedSimdInNode(): Promise<void> {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (!p?.versions?.node) return;
  try {
    const name = 'node:v8';
    const v8 = (await import(/* @vite-ignore */ name)) as typeof import('node:v8');
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Not fatal: the plain SIMD kernel runs.
  }
  relaxedCache = undefined;
}

/** Whether plain WebAssembly SIMD validates (the module without relaxed ops). */
export function simdSupported(): boolean {
  try {
    return (
      typeof WebAssembly !== 'undefined' &&
      WebAssembly.validate(buildGemmModule({ shared: false, initialPages: 1, maxPages: 1, relaxed: false }))
    );
  } catch {
    return false;
  }
}
