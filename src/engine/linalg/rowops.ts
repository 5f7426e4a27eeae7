/**
 * WebAssembly SIMD (f64x2) row kernels for the Householder tridiagonalization (syevd.ts), whose two inner
 * loops (symmetric matrix-vector product, rank-2 update) are over contiguous row segments and dominate
 * its time in plain JS. The matrix lives in the module's memory (grown on demand); callers work on the
 * Float64Array view returned by `rowKernels(len)`. Null when WebAssembly SIMD is unavailable (callers keep
 * their JS loops).
 *
 * Exports (byte offsets; `pairs` = number of f64 pairs, the caller handles an odd last element):
 *   symv(a, v, y, pairs, vr) -> f64:  y[c] += a[c]·vr, returns Σ a[c]·v[c]
 *   syr2(a, v, y, pairs, vr, wr):     a[c] -= vr·y[c] + wr·v[c]
 *   fused(a, v, w, vn, yn, pairs, vr, wr, vnr) -> f64: the syr2 update of one step and, on the updated
 *     values, the symv of the next (one pass over the matrix instead of two)
 */

const I32 = 0x7f;
const F64 = 0x7c;
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
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const str = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...uleb(v)]; // small non-negative constants only
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_EQZ = 0x45;
const memarg = [3, 0];
const LOAD = [0xfd, 0x00, ...memarg];
const STORE = [0xfd, 0x0b, ...memarg];
const SPLAT = [0xfd, 0x14];
const ADD = [0xfd, ...uleb(0xf0)];
const SUB = [0xfd, ...uleb(0xf1)];
const MUL = [0xfd, ...uleb(0xf2)];
const LANE = (i: number) => [0xfd, 0x21, i];
const F64_ADD = 0xa0;
const ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];

function func(params: number[], results: number[], locals: [number, number][], code: number[]) {
  const body = [...uleb(locals.length), ...locals.flatMap(([n, t]) => [...uleb(n), t]), ...code, 0x0b];
  return { type: [0x60, ...uleb(params.length), ...params, ...uleb(results.length), ...results], body: [...uleb(body.length), ...body] };
}

/** loop { if (pairs == 0) break; <body>; a += 16; v += 16; y += 16; pairs-- } */
function pairLoop(A: number, V: number, Y: number, P: number, body: number[]): number[] {
  return [
    0x02,
    0x40,
    0x03,
    0x40,
    ...get(P),
    I32_EQZ,
    0x0d,
    1,
    ...body,
    ...get(A),
    ...i32c(16),
    I32_ADD,
    ...set(A),
    ...get(V),
    ...i32c(16),
    I32_ADD,
    ...set(V),
    ...get(Y),
    ...i32c(16),
    I32_ADD,
    ...set(Y),
    ...get(P),
    ...i32c(1),
    I32_SUB,
    ...set(P),
    0x0c,
    0,
    0x0b,
    0x0b,
  ];
}

export function buildRowModule(pages: number): Uint8Array<ArrayBuffer> {
  // symv(a, v, y, pairs, vr): locals 5 acc, 6 vrv, 7 av (v128)
  const symv = func(
    [I32, I32, I32, I32, F64],
    [F64],
    [[3, V128]],
    [
      ...ZERO,
      ...set(5),
      ...get(4),
      ...SPLAT,
      ...set(6),
      ...pairLoop(0, 1, 2, 3, [
        ...get(0),
        ...LOAD,
        ...set(7),
        ...get(5),
        ...get(7),
        ...get(1),
        ...LOAD,
        ...MUL,
        ...ADD,
        ...set(5),
        ...get(2),
        ...get(2),
        ...LOAD,
        ...get(7),
        ...get(6),
        ...MUL,
        ...ADD,
        ...STORE,
      ]),
      ...get(5),
      ...LANE(0),
      ...get(5),
      ...LANE(1),
      F64_ADD,
    ],
  );
  // syr2(a, v, y, pairs, vr, wr): locals 6 vrv, 7 wrv
  const syr2 = func(
    [I32, I32, I32, I32, F64, F64],
    [],
    [[2, V128]],
    [
      ...get(4),
      ...SPLAT,
      ...set(6),
      ...get(5),
      ...SPLAT,
      ...set(7),
      ...pairLoop(0, 1, 2, 3, [
        ...get(0),
        ...get(0),
        ...LOAD,
        ...get(6),
        ...get(2),
        ...LOAD,
        ...MUL,
        ...get(7),
        ...get(1),
        ...LOAD,
        ...MUL,
        ...ADD,
        ...SUB,
        ...STORE,
      ]),
    ],
  );
  // fused(a, v, w, vn, yn, pairs, vr, wr, vnr) -> f64: a[c] -= vr·w[c] + wr·v[c]; then with the updated
  // value, yn[c] += a[c]·vnr and the result accumulates Σ a[c]·vn[c]. Locals: 9 acc, 10 vrv, 11 wrv,
  // 12 vnrv, 13 av (v128).
  const adv = (i: number) => [...get(i), ...i32c(16), I32_ADD, ...set(i)];
  const fused = func(
    [I32, I32, I32, I32, I32, I32, F64, F64, F64],
    [F64],
    [[5, V128]],
    [
      ...ZERO,
      ...set(9),
      ...get(6),
      ...SPLAT,
      ...set(10),
      ...get(7),
      ...SPLAT,
      ...set(11),
      ...get(8),
      ...SPLAT,
      ...set(12),
      0x02,
      0x40,
      0x03,
      0x40,
      ...get(5),
      I32_EQZ,
      0x0d,
      1,
      ...get(0),
      ...LOAD,
      ...get(10),
      ...get(2),
      ...LOAD,
      ...MUL,
      ...get(11),
      ...get(1),
      ...LOAD,
      ...MUL,
      ...ADD,
      ...SUB,
      ...set(13),
      ...get(0),
      ...get(13),
      ...STORE,
      ...get(9),
      ...get(13),
      ...get(3),
      ...LOAD,
      ...MUL,
      ...ADD,
      ...set(9),
      ...get(4),
      ...get(4),
      ...LOAD,
      ...get(13),
      ...get(12),
      ...MUL,
      ...ADD,
      ...STORE,
      ...adv(0),
      ...adv(1),
      ...adv(2),
      ...adv(3),
      ...adv(4),
      ...get(5),
      ...i32c(1),
      I32_SUB,
      ...set(5),
      0x0c,
      0,
      0x0b,
      0x0b,
      ...get(9),
      ...LANE(0),
      ...get(9),
      ...LANE(1),
      F64_ADD,
    ],
  );
  const fns = [symv, syr2, fused];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [fns.length, ...fns.flatMap((f) => f.type)]),
    ...section(3, [fns.length, 0, 1, 2]),
    ...section(5, [1, 0x00, ...uleb(pages)]),
    ...section(7, [4, ...str('mem'), 0x02, 0, ...str('symv'), 0x00, 0, ...str('syr2'), 0x00, 1, ...str('fused'), 0x00, 2]),
    ...section(10, [fns.length, ...fns.flatMap((f) => f.body)]),
  ]);
}

export interface RowKernels {
  /** f64 view of the first `len` doubles of the module memory (valid until the next rowKernels call). */
  mem: Float64Array;
  symv(a: number, v: number, y: number, pairs: number, vr: number): number;
  syr2(a: number, v: number, y: number, pairs: number, vr: number, wr: number): void;
  fused(a: number, v: number, w: number, vn: number, yn: number, pairs: number, vr: number, wr: number, vnr: number): number;
}

let inst: { memory: WebAssembly.Memory; symv: RowKernels['symv']; syr2: RowKernels['syr2']; fused: RowKernels['fused'] } | null | undefined;
let enabled = true;

/** Turns the kernels on or off (tests of the JS path, benchmark comparisons); returns the old value. */
export function setRowKernels(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** Kernels with at least `len` doubles of memory, or null (unsupported or disabled). */
export function rowKernels(len: number): RowKernels | null {
  if (!enabled) return null;
  if (inst === undefined) {
    inst = null;
    try {
      if (typeof WebAssembly !== 'undefined') {
        const i = new WebAssembly.Instance(new WebAssembly.Module(buildRowModule(1)), {});
        inst = {
          memory: i.exports.mem as WebAssembly.Memory,
          symv: i.exports.symv as RowKernels['symv'],
          syr2: i.exports.syr2 as RowKernels['syr2'],
          fused: i.exports.fused as RowKernels['fused'],
        };
      }
    } catch {
      inst = null;
    }
  }
  if (!inst) return null;
  const need = Math.ceil((len * 8) / 65536);
  const have = inst.memory.buffer.byteLength / 65536;
  if (need > have) {
    try {
      inst.memory.grow(need - have);
    } catch {
      return null;
    }
  }
  return { mem: new Float64Array(inst.memory.buffer, 0, len), symv: inst.symv, syr2: inst.syr2, fused: inst.fused };
}
