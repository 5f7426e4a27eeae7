/**
 * f32 attention forward and backward on the pool's shared memory: q, k, v (and o, dO, lse) are staged once,
 * the T x T score blocks of a group of heads stay in the memory between the products and the softmax steps,
 * and both the GEMMs (headProducts: per head, in causal row blocks) and the row kernels (kernels.ts:
 * kAttnSoftmax, kAttnProbs, kAttnDs) are shared out between the threads. Same math and same GEMM kernel as
 * the reference path in backend.ts (which the f64 backend runs), with the same bits; per-row softmax
 * arithmetic does not depend on the split, so the bits do not depend on the thread count either.
 */

import type { AttentionParams, FloatArray } from '../backend';
import { OP } from './kernels';
import { dispatch, type Heap, MAX_UNITS, maxStagedBytes, threadsFor, withHeap, writeDesc, writeRowDesc, writeRowParams } from './pool';

/** A group of (batch, head) pairs whose score blocks are processed together. */
export interface HeadGroup {
  count: number;
  qo: Int32Array;
  ko: Int32Array;
  lo: Int32Array;
  so: Int32Array;
}

/** Rows of one head per row-kernel unit. */
const ROW_CHUNK = 32;
/** Rows of one head per GEMM unit under a causal mask (a multiple of the 4-row tile): blocks of rows let the
 *  products skip what the mask zeroes, ~3/8 of their flops at T = 4 blocks. */
const CAUSAL_BLOCK = 32;

/** An operand of a head's product: element (r, c) at byte base + 4·(offs[z] + r·rs + c·cs). */
interface Operand {
  base: number;
  offs: ArrayLike<number>;
  rs: number;
  cs: number;
}

/**
 * One T-row product per head of the group, in row blocks that skip what a causal mask zeroes (the same
 * bits as the whole product: the skipped terms are exact zeros, and the softmax kernels never read the
 * skipped scores past the diagonal):
 * - 'scores' (C = A·B, T x T, inner dim k): row block [r0, r1) computes columns j < r1 only;
 * - 'probsA' (C = A·B, T x n, A a masked T x T block): row block [r0, r1) sums over p < r1;
 * - 'probsAT' (C = Aᵀ·B, T x n, A a masked T x T block): row block [r0, r1) sums over p >= r0.
 * Without a mask, one block covers every row and column.
 */
function headProducts(
  mode: 'scores' | 'probsA' | 'probsAT',
  count: number,
  T: number,
  n: number,
  k: number,
  causal: boolean,
  threads: number,
  a: Operand,
  b: Operand,
  c: Operand,
): void {
  const block = causal ? CAUSAL_BLOCK : T;
  const desc = new Array<number>(11);
  let u = 0;
  for (let z = 0; z < count; z++) {
    for (let r0 = 0; r0 < T; r0 += block) {
      const r1 = Math.min(T, r0 + block);
      // First term of the sum, and the columns / terms this block needs.
      const p0 = mode === 'probsAT' && causal ? r0 : 0;
      const cols = mode === 'scores' && causal ? r1 : n;
      const kk = mode === 'probsA' && causal ? r1 : mode === 'probsAT' ? k - p0 : k;
      desc[0] = a.base + 4 * (a.offs[z]! + r0 * a.rs + p0 * a.cs);
      desc[1] = a.rs;
      desc[2] = a.cs;
      desc[3] = b.base + 4 * (b.offs[z]! + p0 * b.rs);
      desc[4] = b.rs;
      desc[5] = b.cs;
      desc[6] = c.base + 4 * (c.offs[z]! + r0 * c.rs);
      desc[7] = c.rs;
      desc[8] = r1 - r0;
      desc[9] = cols;
      desc[10] = kk;
      writeDesc(u++, desc);
      if (u === MAX_UNITS) {
        dispatch(u, threads);
        u = 0;
      }
    }
  }
  if (u > 0) dispatch(u, threads);
}

/** Writes and runs the row-kernel units of one group: per head, chunks of ROW_CHUNK rows; ints(z) gives
 *  the head's integer arguments, with lo/hi rows appended by the unit. */
function rowsPerHead(op: number, g: HeadGroup, T: number, threads: number, ints: (z: number, unit: number) => number[]): void {
  const chunks = Math.ceil(T / ROW_CHUNK);
  let u = 0;
  let unit = 0;
  for (let z = 0; z < g.count; z++) {
    for (let c = 0; c < chunks; c++, unit++) {
      writeRowDesc(u++, op, c * ROW_CHUNK, Math.min(T, (c + 1) * ROW_CHUNK), ints(z, unit));
      if (u === MAX_UNITS) {
        dispatch(u, threads, true);
        u = 0;
      }
    }
  }
  if (u > 0) dispatch(u, threads, true);
}

function op(base: number, offs: ArrayLike<number>, rs: number, cs: number): Operand {
  return { base, offs, rs, cs };
}

function stage(h: Heap, a: FloatArray): number {
  const at = h.alloc(4 * a.length);
  h.f32.set(a, at >> 2);
  return at;
}

/** Forward: O (into out) and lse (into L) for every group; false when no WebAssembly runtime exists or the
 *  operands exceed the staging limit (the caller then runs its per-product path). */
export function attentionStaged(
  Q: Float32Array,
  K: Float32Array,
  V: Float32Array,
  O: Float32Array,
  L: Float32Array,
  p: AttentionParams,
  groups: HeadGroup[],
): boolean {
  const { T, H, Hkv, D, scale, causal } = p;
  const qs = H * D;
  const ks = Hkv * D;
  const per = Math.max(...groups.map((g) => g.count));
  const units = per * Math.ceil(T / ROW_CHUNK);
  const bytes = 4 * (2 * Q.length + 2 * K.length + L.length + per * T * T) + 8 * units * T + 16 * 8;
  const threads = threadsFor(2 * T * T * D * per);
  if (bytes > maxStagedBytes()) return false; // the caller's path splits the products instead
  return withHeap(
    bytes,
    (h) => {
      const hq = stage(h, Q);
      const hk = stage(h, K);
      const hv = stage(h, V);
      const ho = h.alloc(4 * O.length);
      const hl = h.alloc(4 * L.length);
      const hs = h.alloc(4 * per * T * T);
      const he = h.alloc(8 * units * T);
      writeRowParams([scale]);
      const c = causal;
      for (const g of groups) {
        // S[z][i, j] = q_i · k_j.
        headProducts('scores', g.count, T, T, D, c, threads, op(hq, g.qo, qs, 1), op(hk, g.ko, 1, ks), op(hs, g.so, T, 1));
        rowsPerHead(OP.attnSoftmax, g, T, threads, (z, unit) => [
          (hs >> 2) + g.so[z]!,
          (hl >> 2) + g.lo[z]!,
          (he >> 3) + unit * T,
          T,
          causal ? 1 : 0,
        ]);
        // O = P V, written into the head's block of out.
        headProducts('probsA', g.count, T, D, T, c, threads, op(hs, g.so, T, 1), op(hv, g.ko, ks, 1), op(ho, g.qo, qs, 1));
      }
      O.set(h.f32.subarray(ho >> 2, (ho >> 2) + O.length));
      L.set(h.f32.subarray(hl >> 2, (hl >> 2) + L.length));
    },
    threads,
  );
}

/**
 * Where the backward puts dK and dV. With one query head per kv head, each kv head's gradient is a single
 * product, written straight into f32 arrays (the reference sums it into zeroed doubles and rounds: 0 + x is
 * x again, and a product here is never −0, so the bits are the same). With grouped-query heads, the query
 * heads' products are summed per kv head in doubles, in head order, like the reference.
 */
export type KvGrads =
  | { dK: Float32Array; dV: Float32Array }
  | {
      dK: Float64Array;
      dV: Float64Array;
      addRows: (dst: Float64Array, off: number, stride: number, src: FloatArray, srcOff: number, rows: number, cols: number) => void;
    };

/** Backward: dQ (f32) and dK, dV (kv). */
export function attentionBackwardStaged(
  dO: Float32Array,
  Q: Float32Array,
  K: Float32Array,
  V: Float32Array,
  O: Float32Array,
  L: Float32Array,
  dQ: Float32Array,
  kv: KvGrads,
  p: AttentionParams,
  groups: HeadGroup[],
): boolean {
  const { T, H, Hkv, D, scale, causal } = p;
  const qs = H * D;
  const ks = Hkv * D;
  const per = Math.max(...groups.map((g) => g.count));
  const direct = !('addRows' in kv);
  if (direct && H !== Hkv) throw new Error('attention backward: direct dK/dV needs one query head per kv head');
  const bytes = 4 * (4 * Q.length + 4 * K.length + L.length + 2 * per * T * T + 2 * per * T * D) + 16 * 14;
  const threads = threadsFor(2 * T * T * D * per);
  if (bytes > maxStagedBytes()) return false;
  return withHeap(
    bytes,
    (h) => {
      const hdo = stage(h, dO);
      const hq = stage(h, Q);
      const hk = stage(h, K);
      const hv = stage(h, V);
      const ho = stage(h, O);
      const hl = stage(h, L);
      const hdq = h.alloc(4 * dQ.length);
      const hp = h.alloc(4 * per * T * T);
      const hds = h.alloc(4 * per * T * T);
      // Per-group product buffers (summed into doubles), or dK / dV themselves.
      const htv = h.alloc(4 * (direct ? K.length : per * T * D));
      const htk = h.alloc(4 * (direct ? K.length : per * T * D));
      // Where head z's products go: its block of dK / dV (row stride ks), or its slot of the buffers.
      const tvo = (g: HeadGroup) => (direct ? op(htv, g.ko, ks, 1) : op(htv, slots(g), D, 1));
      const tko = (g: HeadGroup) => (direct ? op(htk, g.ko, ks, 1) : op(htk, slots(g), D, 1));
      const slots = (g: HeadGroup) => Array.from({ length: g.count }, (_, z) => z * T * D);
      writeRowParams([scale]);
      const c = causal;
      for (const g of groups) {
        headProducts('scores', g.count, T, T, D, c, threads, op(hq, g.qo, qs, 1), op(hk, g.ko, 1, ks), op(hp, g.so, T, 1));
        rowsPerHead(OP.attnProbs, g, T, threads, (z) => [(hp >> 2) + g.so[z]!, (hl >> 2) + g.lo[z]!, T, causal ? 1 : 0]);
        // tmpV = Pᵀ dO; dP = dO Vᵀ (into dS).
        headProducts('probsAT', g.count, T, D, T, c, threads, op(hp, g.so, 1, T), op(hdo, g.qo, qs, 1), tvo(g));
        headProducts('scores', g.count, T, T, D, c, threads, op(hdo, g.qo, qs, 1), op(hv, g.ko, 1, ks), op(hds, g.so, T, 1));
        rowsPerHead(OP.attnDs, g, T, threads, (z) => [
          (hds >> 2) + g.so[z]!,
          (hp >> 2) + g.so[z]!,
          (hdo >> 2) + g.qo[z]!,
          (ho >> 2) + g.qo[z]!,
          qs,
          D,
          T,
          causal ? 1 : 0,
        ]);
        // dQ = dS K into dq's head block; tmpK = dSᵀ Q.
        headProducts('probsA', g.count, T, D, T, c, threads, op(hds, g.so, T, 1), op(hk, g.ko, ks, 1), op(hdq, g.qo, qs, 1));
        headProducts('probsAT', g.count, T, D, T, c, threads, op(hds, g.so, 1, T), op(hq, g.qo, qs, 1), tko(g));
        if (!direct) {
          for (let z = 0; z < g.count; z++) {
            kv.addRows(kv.dV, g.ko[z]!, ks, h.f32, (htv >> 2) + z * T * D, T, D);
            kv.addRows(kv.dK, g.ko[z]!, ks, h.f32, (htk >> 2) + z * T * D, T, D);
          }
        }
      }
      dQ.set(h.f32.subarray(hdq >> 2, (hdq >> 2) + dQ.length));
      if (direct) {
        kv.dK.set(h.f32.subarray(htk >> 2, (htk >> 2) + K.length));
        kv.dV.set(h.f32.subarray(htv >> 2, (htv >> 2) + K.length));
      }
    },
    threads,
  );
}
