/**
 * CpuBackend: the reference implementation of the Backend contract on typed arrays.
 *
 * It is the oracle every other backend is tested against, so clarity of the math wins over speed except in
 * matmul (benchmarked against PyTorch, see matmul.ts). `dtype: 'f64'` stores Float64Array so finite
 * differences can check gradients to ~1e-7; `'f32'` is the product path. Arithmetic is always done in JS
 * doubles; only storage rounds to f32.
 *
 * On f32 the ops outside matmul (activations, the fused gated activation, norms, cross-entropy, attention's
 * softmax, AdamW, RoPE, and the elementwise add/sub/mul/scale/axpy/addBias) run the row kernels of
 * kernels.ts, shared out between the pool's threads (rows.ts, attention.ts); the loops written out below
 * stay the f64 oracle, and the kernels are tested against them.
 */

import type { Activation, AdamWParams, AttentionParams, Backend, DType, FloatArray, MatmulParams, RopeParams, Storage } from '../backend';
import { attentionBackwardStaged, attentionStaged } from './attention';
import { ACT_CODE, OP } from './kernels';
import { gemm, gemmBatch, gemmMany, gramWasm } from './matmul';
import { activeThreads } from './pool';
import { ropeTable } from './rope';
import { elementUnits, rowUnits, runRows } from './rows';
import { erf } from './special';
import { poolSettingsFromEnv, StoragePool, type StoragePoolOptions, type StoragePoolStats } from './storage-pool';

export class CpuStorage implements Storage {
  constructor(public data: FloatArray) {}
  get length(): number {
    return this.data.length;
  }
}

/** Synchronous read for CPU-only code (tests, the linalg helpers): the storage's own array, not a copy.
 *  Valid until the storage is freed: the backend then hands the array to the next op of that size. */
export function readSync(s: Storage): FloatArray {
  if (!(s instanceof CpuStorage)) throw new Error('readSync: storage does not belong to a CpuBackend');
  return s.data;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Rows per unit of the norms' row kernels: fixed, so their weight-gradient partials (one per unit) and
 *  the order they are added in do not depend on the thread count. */
const NORM_CHUNK = 16;

function f32Of(a: FloatArray): Float32Array | null {
  return a instanceof Float32Array ? a : null;
}
const GELU_C = 0.044715;
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export interface CpuBackendOptions {
  dtype?: DType;
  /** Storage recycling (storage-pool.ts): false turns it off; default on (GRADOT_POOL=0 turns it off),
   *  in debug mode under Vitest. */
  pool?: false | StoragePoolOptions;
}

const EMPTY32 = new Float32Array(0);
const EMPTY64 = new Float64Array(0);

export class CpuBackend implements Backend {
  readonly name: string;
  readonly dtype: DType;

  /** Freed arrays waiting for the next op of their size (null: recycling off). */
  private readonly pool: StoragePool | null;
  /** Arrays this backend allocated: only these may enter the pool (never views, never a model's arrays
   *  wrapped in a CpuStorage by their owner). */
  private readonly owned = new WeakSet<FloatArray>();
  /** Debug mode: fresh arrays from alloc start as NaN, so an op that relies on them being 0 is loud. */
  private readonly poison: boolean;

  constructor(opts: CpuBackendOptions = {}) {
    this.dtype = opts.dtype ?? 'f32';
    this.name = `cpu-${this.dtype}`;
    const env = poolSettingsFromEnv();
    this.poison = opts.pool ? (opts.pool.poison ?? env.poison) : env.poison;
    this.pool =
      opts.pool === false || (opts.pool === undefined && !env.enabled)
        ? null
        : new StoragePool({ poison: this.poison, drainOnMiss: env.drainOnMiss, ...opts.pool });
  }

  // ---------------------------------------------------------------- memory

  /**
   * An array of n elements for an op's output (or scratch) that the op writes in full: a recycled one when
   * the pool has that size, so its contents are arbitrary (NaN in debug mode). Use zeros() for anything
   * accumulated into.
   */
  alloc(n: number): FloatArray {
    return this.pool?.take(n) ?? this.fresh(n);
  }

  private fresh(n: number): FloatArray {
    const a = this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
    if (this.poison) a.fill(Number.NaN);
    this.owned.add(a);
    return a;
  }

  /** Drops every freed array held for reuse (phase ends: what comes next allocates other sizes). */
  trim(): void {
    this.pool?.trim();
  }

  /** The pool's counters and bytes held (null when recycling is off). */
  poolStats(): (StoragePoolStats & { bytes: number }) | null {
    return this.pool ? { ...this.pool.stats, bytes: this.pool.bytes } : null;
  }

  private wrap(a: FloatArray): CpuStorage {
    return new CpuStorage(a);
  }

  private d(s: Storage): FloatArray {
    return readSync(s);
  }

  zeros(n: number): Storage {
    const a = this.pool?.take(n);
    if (a) return this.wrap(a.fill(0));
    const f = this.fresh(n);
    if (this.poison) f.fill(0);
    return this.wrap(f);
  }

  fromArray(a: ArrayLike<number>): Storage {
    const out = this.alloc(a.length);
    out.set(a);
    return this.wrap(out);
  }

  read(s: Storage): Promise<FloatArray> {
    return Promise.resolve(this.d(s).slice());
  }

  free(s: Storage): void {
    if (!(s instanceof CpuStorage)) return;
    const a = s.data;
    // An emptied storage makes any later use loud (every op checks lengths); a second free is a no-op.
    s.data = this.dtype === 'f64' ? EMPTY64 : EMPTY32;
    // Only whole arrays this backend made are recycled: a view's or a model's array stays with its owner.
    if (this.pool && a.length > 0 && this.owned.has(a)) this.pool.give(a);
  }

  copy(src: Storage, srcOff: number, dst: Storage, dstOff: number, n: number): void {
    const s = this.d(src);
    const t = this.d(dst);
    if (srcOff < 0 || dstOff < 0 || srcOff + n > s.length || dstOff + n > t.length) {
      throw new Error(`copy: range out of bounds (src ${s.length}@${srcOff}, dst ${t.length}@${dstOff}, n ${n})`);
    }
    t.set(s.subarray(srcOff, srcOff + n), dstOff);
  }

  sliceCols(x: Storage, rows: number, cols: number, colOff: number, width: number): Storage {
    const a = this.d(x);
    checkLen('sliceCols', a, rows * cols);
    if (colOff < 0 || colOff + width > cols) throw new Error(`sliceCols: columns [${colOff}, ${colOff + width}) outside ${cols}`);
    const out = this.alloc(rows * width);
    for (let r = 0; r < rows; r++) out.set(a.subarray(r * cols + colOff, r * cols + colOff + width), r * width);
    return this.wrap(out);
  }

  addIntoCols(dst: Storage, src: Storage, rows: number, cols: number, colOff: number, width: number): void {
    const t = this.d(dst);
    const s = this.d(src);
    checkLen('addIntoCols dst', t, rows * cols);
    checkLen('addIntoCols src', s, rows * width);
    for (let r = 0; r < rows; r++) {
      const to = r * cols + colOff;
      const so = r * width;
      for (let c = 0; c < width; c++) t[to + c]! += s[so + c]!;
    }
  }

  // ---------------------------------------------------------------- elementwise

  // add/sub/mul are written out rather than sharing a loop with a callback: a callback shared by three ops is
  // polymorphic and V8 stops inlining it, which made these ~10x slower than the loop itself.
  private pair(name: string, a: Storage, b: Storage): [FloatArray, FloatArray, FloatArray] {
    const x = this.d(a);
    const y = this.d(b);
    if (x.length !== y.length) throw new Error(`${name}: lengths differ (${x.length} vs ${y.length})`);
    return [x, y, this.alloc(x.length)];
  }

  /** The f32 path of add/sub/mul: the pool's elementwise kernel (kernels.ts kBinary); false on f64. */
  private binaryRows(x: FloatArray, y: FloatArray, out: FloatArray, kind: number): boolean {
    const xf = f32Of(x);
    const yf = f32Of(y);
    const of = f32Of(out);
    if (!xf || !yf || !of) return false;
    const { units, range } = elementUnits(of.length, activeThreads());
    const args = [{ a: xf, io: 'in' as const, per: 1 }, { a: yf, io: 'in' as const, per: 1 }, { a: of, io: 'out' as const, per: 1 }, kind];
    runRows({ op: OP.binary, units, range, args, work: of.length });
    return true;
  }

  add(a: Storage, b: Storage): Storage {
    const [x, y, out] = this.pair('add', a, b);
    if (this.binaryRows(x, y, out, 0)) return this.wrap(out);
    for (let i = 0; i < out.length; i++) out[i] = x[i]! + y[i]!;
    return this.wrap(out);
  }

  sub(a: Storage, b: Storage): Storage {
    const [x, y, out] = this.pair('sub', a, b);
    if (this.binaryRows(x, y, out, 1)) return this.wrap(out);
    for (let i = 0; i < out.length; i++) out[i] = x[i]! - y[i]!;
    return this.wrap(out);
  }

  mul(a: Storage, b: Storage): Storage {
    const [x, y, out] = this.pair('mul', a, b);
    if (this.binaryRows(x, y, out, 2)) return this.wrap(out);
    for (let i = 0; i < out.length; i++) out[i] = x[i]! * y[i]!;
    return this.wrap(out);
  }

  scale(a: Storage, s: number): Storage {
    const x = this.d(a);
    const out = this.alloc(x.length);
    const xf = f32Of(x);
    if (xf) {
      const { units, range } = elementUnits(x.length, activeThreads());
      const args = [{ a: xf, io: 'in' as const, per: 1 }, { a: out as Float32Array, io: 'out' as const, per: 1 }, s];
      runRows({ op: OP.scale, units, range, args, work: x.length });
      return this.wrap(out);
    }
    for (let i = 0; i < x.length; i++) out[i] = x[i]! * s;
    return this.wrap(out);
  }

  axpy(dst: Storage, src: Storage, alpha: number): void {
    const t = this.d(dst);
    const s = this.d(src);
    if (t.length !== s.length) throw new Error(`axpy: lengths differ (${t.length} vs ${s.length})`);
    const tf = f32Of(t);
    const sf = f32Of(s);
    if (tf && sf) {
      const { units, range } = elementUnits(t.length, activeThreads());
      const args = [{ a: tf, io: 'inout' as const, per: 1 }, { a: sf, io: 'in' as const, per: 1 }, alpha];
      runRows({ op: OP.axpy, units, range, args, work: t.length });
      return;
    }
    for (let i = 0; i < t.length; i++) t[i]! += alpha * s[i]!;
  }

  addBias(x: Storage, bias: Storage, rows: number, cols: number): Storage {
    const a = this.d(x);
    const b = this.d(bias);
    checkLen('addBias x', a, rows * cols);
    checkLen('addBias bias', b, cols);
    const out = this.alloc(rows * cols);
    const af = f32Of(a);
    const bf = f32Of(b);
    if (af && bf) {
      const { units, range } = rowUnits(rows, Math.max(1, Math.ceil(rows / (4 * activeThreads()))));
      const args = [
        { a: af, io: 'in' as const, per: cols },
        { a: bf, io: 'in' as const },
        { a: out as Float32Array, io: 'out' as const, per: cols },
        cols,
      ];
      runRows({ op: OP.addBias, units, range, args, work: rows * cols });
      return this.wrap(out);
    }
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[o + c] = a[o + c]! + b[c]!;
    }
    return this.wrap(out);
  }

  sumRows(x: Storage, rows: number, cols: number): Storage {
    const a = this.d(x);
    checkLen('sumRows', a, rows * cols);
    // Accumulate in doubles so the f32 path does not lose the bias gradient of long sequences.
    const acc = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) acc[c]! += a[o + c]!;
    }
    return this.fromArray(acc);
  }

  sumSquares(x: Storage): Storage {
    const a = this.d(x);
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
    return this.fromArray([s]);
  }

  activation(x: Storage, kind: Activation): Storage {
    const a = this.d(x);
    const out = this.alloc(a.length);
    const af = f32Of(a);
    if (af && kind !== 'gelu_erf' && kind in ACT_CODE) {
      const { units, range } = elementUnits(a.length, activeThreads());
      const args = [{ a: af, io: 'in' as const, per: 1 }, { a: out as Float32Array, io: 'out' as const, per: 1 }, ACT_CODE[kind]];
      runRows({ op: OP.actFwd, units, range, args, work: a.length });
      return this.wrap(out);
    }
    switch (kind) {
      case 'gelu_tanh':
        for (let i = 0; i < a.length; i++) {
          const v = a[i]!;
          out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + GELU_C * v * v * v)));
        }
        break;
      case 'gelu_erf':
        for (let i = 0; i < a.length; i++) out[i] = 0.5 * a[i]! * (1 + erf(a[i]! * INV_SQRT2));
        break;
      case 'relu':
        for (let i = 0; i < a.length; i++) out[i] = a[i]! > 0 ? a[i]! : 0;
        break;
      case 'silu':
        for (let i = 0; i < a.length; i++) out[i] = a[i]! / (1 + Math.exp(-a[i]!));
        break;
      default:
        throw new Error(`activation: unknown kind ${String(kind)}`);
    }
    return this.wrap(out);
  }

  activationBackward(dy: Storage, x: Storage, kind: Activation): Storage {
    const g = this.d(dy);
    const a = this.d(x);
    if (g.length !== a.length) throw new Error(`activationBackward: lengths differ (${g.length} vs ${a.length})`);
    const out = this.alloc(a.length);
    const af = f32Of(a);
    const gf = f32Of(g);
    if (af && gf && kind !== 'gelu_erf' && kind in ACT_CODE) {
      const { units, range } = elementUnits(a.length, activeThreads());
      const args = [
        { a: gf, io: 'in' as const, per: 1 },
        { a: af, io: 'in' as const, per: 1 },
        { a: out as Float32Array, io: 'out' as const, per: 1 },
        ACT_CODE[kind],
      ];
      runRows({ op: OP.actBwd, units, range, args, work: 2 * a.length });
      return this.wrap(out);
    }
    switch (kind) {
      case 'gelu_tanh':
        for (let i = 0; i < a.length; i++) {
          const v = a[i]!;
          const t = Math.tanh(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
          const dt = (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * v * v);
          out[i] = g[i]! * (0.5 * (1 + t) + 0.5 * v * dt);
        }
        break;
      case 'gelu_erf':
        for (let i = 0; i < a.length; i++) {
          const v = a[i]!;
          const cdf = 0.5 * (1 + erf(v * INV_SQRT2));
          out[i] = g[i]! * (cdf + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
        }
        break;
      case 'relu':
        for (let i = 0; i < a.length; i++) out[i] = a[i]! > 0 ? g[i]! : 0;
        break;
      case 'silu':
        for (let i = 0; i < a.length; i++) {
          const s = 1 / (1 + Math.exp(-a[i]!));
          out[i] = g[i]! * s * (1 + a[i]! * (1 - s));
        }
        break;
      default:
        throw new Error(`activationBackward: unknown kind ${String(kind)}`);
    }
    return this.wrap(out);
  }

  /** act(gate) · up in one pass on f32 (bitwise the composition mul(activation(gate), up)); f64 and
   *  gelu_erf compose. */
  gatedActivation(gate: Storage, up: Storage, kind: Activation): Storage {
    const a = this.d(gate);
    const u = this.d(up);
    if (a.length !== u.length) throw new Error(`gatedActivation: lengths differ (${a.length} vs ${u.length})`);
    const af = f32Of(a);
    const uf = f32Of(u);
    if (!af || !uf || kind === 'gelu_erf' || !(kind in ACT_CODE)) {
      const act = this.activation(gate, kind);
      const out = this.mul(act, up);
      this.free(act);
      return out;
    }
    const out = this.alloc(a.length) as Float32Array;
    const { units, range } = elementUnits(a.length, activeThreads());
    const args = [
      { a: af, io: 'in' as const, per: 1 },
      { a: uf, io: 'in' as const, per: 1 },
      { a: out, io: 'out' as const, per: 1 },
      ACT_CODE[kind],
    ];
    runRows({ op: OP.gatedFwd, units, range, args, work: 2 * a.length });
    return this.wrap(out);
  }

  /** Backward of gatedActivation: dgate = dy·up·act'(gate), dup = dy·act(gate), bitwise the composition's. */
  gatedActivationBackward(dy: Storage, gate: Storage, up: Storage, kind: Activation): { dgate: Storage; dup: Storage } {
    const g = this.d(dy);
    const a = this.d(gate);
    const u = this.d(up);
    if (g.length !== a.length || u.length !== a.length) {
      throw new Error(`gatedActivationBackward: lengths differ (dy ${g.length}, gate ${a.length}, up ${u.length})`);
    }
    const gf = f32Of(g);
    const af = f32Of(a);
    const uf = f32Of(u);
    if (!gf || !af || !uf || kind === 'gelu_erf' || !(kind in ACT_CODE)) {
      const gu = this.mul(dy, up);
      const dgate = this.activationBackward(gu, gate, kind);
      this.free(gu);
      const act = this.activation(gate, kind);
      const dup = this.mul(dy, act);
      this.free(act);
      return { dgate, dup };
    }
    const da = this.alloc(a.length) as Float32Array;
    const du = this.alloc(a.length) as Float32Array;
    const { units, range } = elementUnits(a.length, activeThreads());
    const args = [
      { a: gf, io: 'in' as const, per: 1 },
      { a: af, io: 'in' as const, per: 1 },
      { a: uf, io: 'in' as const, per: 1 },
      { a: da, io: 'out' as const, per: 1 },
      { a: du, io: 'out' as const, per: 1 },
      ACT_CODE[kind],
    ];
    runRows({ op: OP.gatedBwd, units, range, args, work: 5 * a.length });
    return { dgate: this.wrap(da), dup: this.wrap(du) };
  }

  // ---------------------------------------------------------------- matmul

  matmul(a: Storage, b: Storage, p: MatmulParams): Storage {
    const { batch, m, n, k } = p;
    const transA = p.transA ?? false;
    const transB = p.transB ?? false;
    const aBatched = p.aBatched ?? true;
    const bBatched = p.bBatched ?? true;
    const A = this.d(a);
    const B = this.d(b);
    checkLen('matmul A', A, (aBatched ? batch : 1) * m * k);
    checkLen('matmul B', B, (bBatched ? batch : 1) * k * n);
    const C = this.alloc(batch * m * n);
    // Strides of element (i,p) of A and (p,j) of B; the kernel packs through them, so transposes are free.
    const aRs = transA ? 1 : k;
    const aCs = transA ? m : 1;
    const bRs = transB ? 1 : n;
    const bCs = transB ? k : 1;
    if (!bBatched && aBatched && !transA) {
      // A weight shared by a batch of untransposed A's is one tall GEMM: [batch*m, k] x [k, n].
      gemm(A, 0, aRs, aCs, B, 0, bRs, bCs, C, 0, batch * m, n, k);
      return this.wrap(C);
    }
    // One call for the whole batch: on the threaded runtime the entries are shared out between threads.
    gemmBatch(A, 0, aRs, aCs, aBatched ? m * k : 0, B, 0, bRs, bCs, bBatched ? k * n : 0, C, 0, n, m * n, m, n, k, batch);
    return this.wrap(C);
  }

  /** Elements [offset, offset + length) of s, without a copy: for reading only (writing through it writes
   *  s); freeing the view leaves s alone. */
  view(s: Storage, offset: number, length: number): Storage {
    const a = this.d(s);
    if (!(offset >= 0 && length >= 0 && offset + length <= a.length)) {
      throw new RangeError(`view: [${offset}, ${offset + length}) outside a storage of ${a.length}`);
    }
    return this.wrap(a.subarray(offset, offset + length));
  }

  /**
   * xᵀx [dim, dim] of x [rows, dim] (the support pass's input and output-gradient statistics): only the
   * upper block-triangle is multiplied, one row panel at a time, then mirrored, so about half the work of
   * matmul(x, x, { transA: true }). Bit for bit the same matrix: every element is the same dot product in
   * the same order (the kernels' summation order does not depend on the block), and a·b = b·a.
   */
  gram(x: Storage, rows: number, dim: number): Storage {
    const X = this.d(x);
    checkLen('gram x', X, rows * dim);
    const P = dim > 1024 ? 256 : 128;
    if (dim < 2 * P) return this.matmul(x, x, { batch: 1, m: dim, n: dim, k: rows, transA: true });
    const C = this.alloc(dim * dim);
    if (gramWasm(X, rows, dim, C, P)) return this.wrap(C);
    for (let r0 = 0; r0 < dim; r0 += P) {
      const h = Math.min(P, dim - r0);
      // C[r0 : r0+h, r0 : dim] = X[:, r0 : r0+h]ᵀ · X[:, r0 : dim]
      gemmBatch(X, r0, 1, dim, 0, X, r0, dim, 1, 0, C, r0 * dim + r0, dim, 0, h, dim - r0, rows, 1);
    }
    for (let i = 0; i < dim; i++) for (let j = i + 1; j < dim; j++) C[j * dim + i] = C[i * dim + j]!;
    return this.wrap(C);
  }

  // ---------------------------------------------------------------- embeddings

  gather(table: Storage, ids: Int32Array, dim: number): Storage {
    const t = this.d(table);
    const vocab = t.length / dim;
    const out = this.alloc(ids.length * dim);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= vocab) throw new Error(`gather: id ${id} at ${i} outside vocabulary of ${vocab}`);
      out.set(t.subarray(id * dim, id * dim + dim), i * dim);
    }
    return this.wrap(out);
  }

  scatterAdd(dy: Storage, ids: Int32Array, vocab: number, dim: number): Storage {
    const g = this.d(dy);
    checkLen('scatterAdd dy', g, ids.length * dim);
    const out = this.alloc(vocab * dim).fill(0); // accumulated into
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= vocab) throw new Error(`scatterAdd: id ${id} at ${i} outside vocabulary of ${vocab}`);
      const o = id * dim;
      const go = i * dim;
      for (let c = 0; c < dim; c++) out[o + c]! += g[go + c]!;
    }
    return this.wrap(out);
  }

  // ---------------------------------------------------------------- norms

  layerNorm(
    x: Storage,
    w: Storage,
    b: Storage | null,
    rows: number,
    dim: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage } {
    const X = this.d(x);
    const W = this.d(w);
    const Bv = b ? this.d(b) : null;
    checkLen('layerNorm x', X, rows * dim);
    checkLen('layerNorm w', W, dim);
    if (Bv) checkLen('layerNorm b', Bv, dim);
    const Y = this.alloc(rows * dim);
    const M = this.alloc(rows);
    const R = this.alloc(rows);
    const Xf = f32Of(X);
    const Wf = f32Of(W);
    const Bf = Bv ? f32Of(Bv) : Wf;
    if (Xf && Wf && Bf) {
      const { units, range } = rowUnits(rows, NORM_CHUNK);
      const out = (a: FloatArray, per: number) => ({ a: a as Float32Array, io: 'out' as const, per });
      const args = [
        { a: Xf, io: 'in' as const, per: dim },
        { a: Wf, io: 'in' as const },
        { a: Bf, io: 'in' as const },
        out(Y, dim),
        out(M, 1),
        out(R, 1),
        dim,
        Bv ? 1 : 0,
        eps,
      ];
      runRows({ op: OP.lnFwd, units, range, args, work: 2 * rows * dim });
      return { y: this.wrap(Y), mean: this.wrap(M), rstd: this.wrap(R) };
    }
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let mu = 0;
      for (let c = 0; c < dim; c++) mu += X[o + c]!;
      mu /= dim;
      let v = 0;
      for (let c = 0; c < dim; c++) {
        const t = X[o + c]! - mu;
        v += t * t;
      }
      v /= dim;
      const rs = 1 / Math.sqrt(v + eps);
      for (let c = 0; c < dim; c++) Y[o + c] = (X[o + c]! - mu) * rs * W[c]! + (Bv ? Bv[c]! : 0);
      M[r] = mu;
      R[r] = rs;
    }
    return { y: this.wrap(Y), mean: this.wrap(M), rstd: this.wrap(R) };
  }

  layerNormBackward(
    dy: Storage,
    x: Storage,
    w: Storage,
    mean: Storage,
    rstd: Storage,
    rows: number,
    dim: number,
  ): { dx: Storage; dw: Storage; db: Storage } {
    const G = this.d(dy);
    const X = this.d(x);
    const W = this.d(w);
    const M = this.d(mean);
    const R = this.d(rstd);
    checkLen('layerNormBackward dy', G, rows * dim);
    checkLen('layerNormBackward x', X, rows * dim);
    const dX = this.alloc(rows * dim);
    const dW = new Float64Array(dim);
    const dB = new Float64Array(dim);
    const f = [G, X, W, M, R].map(f32Of);
    if (f.every((a) => a)) {
      const { units, range } = rowUnits(rows, NORM_CHUNK);
      const PW = new Float64Array(units * dim);
      const PB = new Float64Array(units * dim);
      // Rows of dy and x, the weight whole, one mean / rstd per row.
      const per = [dim, dim, undefined, 1, 1];
      const args = [
        ...f.map((a, i) => ({ a: a!, io: 'in' as const, per: per[i] })),
        { a: dX as Float32Array, io: 'out' as const, per: dim },
        { a: PW, io: 'out' as const, unitStride: dim },
        { a: PB, io: 'out' as const, unitStride: dim },
        dim,
      ];
      runRows({ op: OP.lnBwd, units, range, args, work: 3 * rows * dim });
      addPartials(dW, PW, units, dim);
      addPartials(dB, PB, units, dim);
      return { dx: this.wrap(dX), dw: this.fromArray(dW), db: this.fromArray(dB) };
    }
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      const mu = M[r]!;
      const rs = R[r]!;
      let sumG = 0;
      let sumGX = 0;
      for (let c = 0; c < dim; c++) {
        const xh = (X[o + c]! - mu) * rs;
        const gx = G[o + c]! * W[c]!;
        sumG += gx;
        sumGX += gx * xh;
        dW[c]! += G[o + c]! * xh;
        dB[c]! += G[o + c]!;
      }
      sumG /= dim;
      sumGX /= dim;
      for (let c = 0; c < dim; c++) {
        const xh = (X[o + c]! - mu) * rs;
        dX[o + c] = rs * (G[o + c]! * W[c]! - sumG - xh * sumGX);
      }
    }
    return { dx: this.wrap(dX), dw: this.fromArray(dW), db: this.fromArray(dB) };
  }

  rmsNorm(x: Storage, w: Storage, rows: number, dim: number, eps: number): { y: Storage; rstd: Storage } {
    const X = this.d(x);
    const W = this.d(w);
    checkLen('rmsNorm x', X, rows * dim);
    checkLen('rmsNorm w', W, dim);
    const Y = this.alloc(rows * dim);
    const R = this.alloc(rows);
    const Xf = f32Of(X);
    const Wf = f32Of(W);
    if (Xf && Wf) {
      const { units, range } = rowUnits(rows, NORM_CHUNK);
      const args = [
        { a: Xf, io: 'in' as const, per: dim },
        { a: Wf, io: 'in' as const },
        { a: Y as Float32Array, io: 'out' as const, per: dim },
        { a: R as Float32Array, io: 'out' as const, per: 1 },
        dim,
        eps,
      ];
      runRows({ op: OP.rmsFwd, units, range, args, work: 2 * rows * dim });
      return { y: this.wrap(Y), rstd: this.wrap(R) };
    }
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let c = 0; c < dim; c++) ss += X[o + c]! * X[o + c]!;
      const rs = 1 / Math.sqrt(ss / dim + eps);
      for (let c = 0; c < dim; c++) Y[o + c] = X[o + c]! * rs * W[c]!;
      R[r] = rs;
    }
    return { y: this.wrap(Y), rstd: this.wrap(R) };
  }

  rmsNormBackward(dy: Storage, x: Storage, w: Storage, rstd: Storage, rows: number, dim: number): { dx: Storage; dw: Storage } {
    const G = this.d(dy);
    const X = this.d(x);
    const W = this.d(w);
    const R = this.d(rstd);
    checkLen('rmsNormBackward dy', G, rows * dim);
    checkLen('rmsNormBackward x', X, rows * dim);
    const dX = this.alloc(rows * dim);
    const dW = new Float64Array(dim);
    const f = [G, X, W, R].map(f32Of);
    if (f.every((a) => a)) {
      const { units, range } = rowUnits(rows, NORM_CHUNK);
      const PW = new Float64Array(units * dim);
      const args = [
        ...f.map((a, i) => ({ a: a!, io: 'in' as const, per: [dim, dim, undefined, 1][i] })),
        { a: dX as Float32Array, io: 'out' as const, per: dim },
        { a: PW, io: 'out' as const, unitStride: dim },
        dim,
      ];
      runRows({ op: OP.rmsBwd, units, range, args, work: 3 * rows * dim });
      addPartials(dW, PW, units, dim);
      return { dx: this.wrap(dX), dw: this.fromArray(dW) };
    }
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      const rs = R[r]!;
      let sumGX = 0;
      for (let c = 0; c < dim; c++) {
        const xh = X[o + c]! * rs;
        sumGX += G[o + c]! * W[c]! * xh;
        dW[c]! += G[o + c]! * xh;
      }
      sumGX /= dim;
      for (let c = 0; c < dim; c++) dX[o + c] = rs * (G[o + c]! * W[c]! - X[o + c]! * rs * sumGX);
    }
    return { dx: this.wrap(dX), dw: this.fromArray(dW) };
  }

  // ---------------------------------------------------------------- attention

  /**
   * Per (batch, head): S = scale·Q Kᵀ, row softmax with the causal mask, O = P V, saving lse = log Σ exp(S).
   * The two products run on the GEMM kernel for a group of heads at once (reading q/k/v in place through
   * strides, writing O straight into [B, T, H, D]), so the thread pool shares the heads out; only the T x T
   * softmax is a plain loop. Causal attention computes the full S and masks it: twice the flops of the
   * triangle, still far faster than scalar dot products.
   */
  attention(q: Storage, k: Storage, v: Storage, p: AttentionParams): { out: Storage; lse: Storage } {
    const { B, T, H, Hkv, D, scale, causal } = p;
    checkAttn(p);
    const Q = this.d(q);
    const K = this.d(k);
    const V = this.d(v);
    checkLen('attention q', Q, B * T * H * D);
    checkLen('attention k', K, B * T * Hkv * D);
    checkLen('attention v', V, B * T * Hkv * D);
    const O = this.alloc(B * T * H * D);
    const L = this.alloc(B * H * T);
    if (Q instanceof Float32Array && K instanceof Float32Array && V instanceof Float32Array) {
      if (attentionStaged(Q, K, V, O as Float32Array, L as Float32Array, p, [...headGroups(p)])) {
        return { out: this.wrap(O), lse: this.wrap(L) };
      }
    }
    const qs = H * D; // row stride of q (and out) for one head
    const ks = Hkv * D; // row stride of k and v
    const erow = new Float64Array(T);
    for (const g of headGroups(p)) {
      const S = this.alloc(g.count * T * T);
      // S[z][i, j] = q_i · k_j: A(i, d) = Q[qo + i*qs + d], B(d, j) = K[ko + j*ks + d].
      gemmMany(Q, g.qo, qs, 1, K, g.ko, 1, ks, S, g.so, T, T, T, D);
      for (let z = 0; z < g.count; z++) {
        const lo = g.lo[z]!;
        for (let i = 0; i < T; i++) {
          const row = g.so[z]! + i * T;
          const jEnd = causal ? i + 1 : T;
          let mx = -Infinity;
          for (let j = 0; j < jEnd; j++) {
            const sv = S[row + j]! * scale;
            if (sv > mx) mx = sv;
          }
          // One exp per score: keep exp(s - max) in a double row, then normalise.
          let l = 0;
          for (let j = 0; j < jEnd; j++) {
            const e = Math.exp(S[row + j]! * scale - mx);
            erow[j] = e;
            l += e;
          }
          const inv = 1 / l;
          for (let j = 0; j < jEnd; j++) S[row + j] = erow[j]! * inv;
          for (let j = jEnd; j < T; j++) S[row + j] = 0;
          L[lo + i] = mx + Math.log(l);
        }
      }
      // O = P V: B(j, d) = V[ko + j*ks + d], written into out's head block (row stride qs).
      gemmMany(S, g.so, T, 1, V, g.ko, ks, 1, O, g.qo, qs, T, D, T);
    }
    return { out: this.wrap(O), lse: this.wrap(L) };
  }

  /**
   * Flash-attention backward math, recomputing P from the saved lse, per group of heads:
   * dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)) · scale, dQ = dS K, dK += dSᵀ Q.
   */
  attentionBackward(
    dout: Storage,
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    p: AttentionParams,
  ): { dq: Storage; dk: Storage; dv: Storage } {
    const { B, T, H, Hkv, D, scale, causal } = p;
    checkAttn(p);
    const dO = this.d(dout);
    const Q = this.d(q);
    const K = this.d(k);
    const V = this.d(v);
    const O = this.d(out);
    const L = this.d(lse);
    checkLen('attentionBackward dout', dO, B * T * H * D);
    const dQ = this.alloc(B * T * H * D);
    const f = [dO, Q, K, V, O, L].map(f32Of);
    if (f.every((a) => a)) {
      const [fdO, fQ, fK, fV, fO, fL] = f as Float32Array[];
      const groups = [...headGroups(p)];
      if (H === Hkv) {
        // One query head per kv head: dK, dV are single products, written as f32 (attention.ts KvGrads).
        const kv = { dK: this.alloc(B * T * Hkv * D) as Float32Array, dV: this.alloc(B * T * Hkv * D) as Float32Array };
        if (attentionBackwardStaged(fdO!, fQ!, fK!, fV!, fO!, fL!, dQ as Float32Array, kv, p, groups)) {
          return { dq: this.wrap(dQ), dk: this.wrap(kv.dK), dv: this.wrap(kv.dV) };
        }
      } else {
        const kv = { dK: new Float64Array(B * T * Hkv * D), dV: new Float64Array(B * T * Hkv * D), addRows };
        if (attentionBackwardStaged(fdO!, fQ!, fK!, fV!, fO!, fL!, dQ as Float32Array, kv, p, groups)) {
          return { dq: this.wrap(dQ), dk: this.fromArray(kv.dK), dv: this.fromArray(kv.dV) };
        }
      }
    }
    // dk/dv collect from every query head of the group: accumulate in doubles.
    const dK = new Float64Array(B * T * Hkv * D);
    const dV = new Float64Array(B * T * Hkv * D);
    const qs = H * D;
    const ks = Hkv * D;
    const Di = new Float64Array(T);
    for (const g of headGroups(p)) {
      const P = this.alloc(g.count * T * T);
      const dS = this.alloc(g.count * T * T);
      const tmp = this.alloc(g.count * T * D);
      const to = Int32Array.from({ length: g.count }, (_, z) => z * T * D);
      gemmMany(Q, g.qo, qs, 1, K, g.ko, 1, ks, P, g.so, T, T, T, D);
      for (let z = 0; z < g.count; z++) {
        const lo = g.lo[z]!;
        for (let i = 0; i < T; i++) {
          const row = g.so[z]! + i * T;
          const jEnd = causal ? i + 1 : T;
          const l = L[lo + i]!;
          for (let j = 0; j < jEnd; j++) P[row + j] = Math.exp(P[row + j]! * scale - l);
          for (let j = jEnd; j < T; j++) P[row + j] = 0;
        }
      }
      // dV_kh += Pᵀ dO: A(j, i) = P[i*T + j], B(i, d) = dO[qo + i*qs + d].
      gemmMany(P, g.so, 1, T, dO, g.qo, qs, 1, tmp, to, D, T, D, T);
      for (let z = 0; z < g.count; z++) addRows(dV, g.ko[z]!, ks, tmp, to[z]!, T, D);
      // dP = dO Vᵀ: A(i, d) = dO[qo + i*qs + d], B(d, j) = V[ko + j*ks + d].
      gemmMany(dO, g.qo, qs, 1, V, g.ko, 1, ks, dS, g.so, T, T, T, D);
      for (let z = 0; z < g.count; z++) {
        const qo = g.qo[z]!;
        for (let i = 0; i < T; i++) {
          let di = 0;
          const o = qo + i * qs;
          for (let d = 0; d < D; d++) di += dO[o + d]! * O[o + d]!;
          Di[i] = di;
        }
        for (let i = 0; i < T; i++) {
          const row = g.so[z]! + i * T;
          const di = Di[i]!;
          // Masked entries have P = 0, hence dS = 0: only the first jEnd columns need the formula.
          const jEnd = causal ? i + 1 : T;
          for (let j = 0; j < jEnd; j++) dS[row + j] = P[row + j]! * (dS[row + j]! - di) * scale;
          for (let j = jEnd; j < T; j++) dS[row + j] = 0;
        }
      }
      // dQ = dS K: B(j, d) = K[ko + j*ks + d], written into dq's head block.
      gemmMany(dS, g.so, T, 1, K, g.ko, ks, 1, dQ, g.qo, qs, T, D, T);
      // dK_kh += dSᵀ Q: A(j, i) = dS[i*T + j], B(i, d) = Q[qo + i*qs + d].
      gemmMany(dS, g.so, 1, T, Q, g.qo, qs, 1, tmp, to, D, T, D, T);
      for (let z = 0; z < g.count; z++) addRows(dK, g.ko[z]!, ks, tmp, to[z]!, T, D);
    }
    return { dq: this.wrap(dQ), dk: this.fromArray(dK), dv: this.fromArray(dV) };
  }

  rope(x: Storage, p: RopeParams, inverse: boolean): Storage {
    const { B, T, H, D, theta } = p;
    const off = p.positionOffset ?? 0;
    if (D % 2 !== 0) throw new Error(`rope: head dim ${D} must be even`);
    const X = this.d(x);
    checkLen('rope x', X, B * T * H * D);
    const half = D / 2;
    const out = this.alloc(X.length);
    const Xf = f32Of(X);
    if (Xf) {
      // The pool's rope kernel over rows of D, with the (kept) cos/sin table the loop below computes.
      const rows = B * T * H;
      const { units, range } = rowUnits(rows, Math.max(1, Math.ceil(rows / (4 * activeThreads()))));
      const args = [
        { a: Xf, io: 'in' as const, per: D },
        { a: ropeTable(T, D, theta, off, inverse), io: 'in' as const },
        { a: out as Float32Array, io: 'out' as const, per: D },
        T,
        H,
        half,
      ];
      runRows({ op: OP.rope, units, range, args, work: X.length });
      return this.wrap(out);
    }
    const invFreq = new Float64Array(half);
    for (let i = 0; i < half; i++) invFreq[i] = Math.pow(theta, (-2 * i) / D);
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    const sign = inverse ? -1 : 1;
    for (let t = 0; t < T; t++) {
      const pos = t + off;
      for (let i = 0; i < half; i++) {
        const ang = pos * invFreq[i]!;
        cos[i] = Math.cos(ang);
        sin[i] = sign * Math.sin(ang);
      }
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const o = ((b * T + t) * H + h) * D;
          for (let i = 0; i < half; i++) {
            const x1 = X[o + i]!;
            const x2 = X[o + i + half]!;
            out[o + i] = x1 * cos[i]! - x2 * sin[i]!;
            out[o + i + half] = x2 * cos[i]! + x1 * sin[i]!;
          }
        }
      }
    }
    return this.wrap(out);
  }

  // ---------------------------------------------------------------- loss

  crossEntropy(logits: Storage, targets: Int32Array, rows: number, vocab: number, ignoreIndex: number): Storage {
    const X = this.d(logits);
    checkLen('crossEntropy logits', X, rows * vocab);
    if (targets.length !== rows) throw new Error(`crossEntropy: ${targets.length} targets for ${rows} rows`);
    const out = this.alloc(rows);
    const Xf = f32Of(X);
    if (Xf) {
      checkTargets('crossEntropy', targets, vocab, ignoreIndex);
      const { units, range } = rowUnits(rows, Math.max(1, Math.ceil(rows / (4 * activeThreads()))));
      const args = [
        { a: Xf, io: 'in' as const, per: vocab },
        { a: targets, io: 'in' as const, per: 1 },
        { a: out as Float32Array, io: 'out' as const, per: 1 },
        vocab,
        ignoreIndex,
      ];
      runRows({ op: OP.ceFwd, units, range, args, work: 2 * rows * vocab });
      return this.wrap(out);
    }
    out.fill(0); // ignored rows are 0 (a recycled array holds anything)
    for (let r = 0; r < rows; r++) {
      const t = targets[r]!;
      if (t === ignoreIndex) continue;
      if (t < 0 || t >= vocab) throw new Error(`crossEntropy: target ${t} at row ${r} outside vocabulary of ${vocab}`);
      out[r] = rowLse(X, r * vocab, vocab) - X[r * vocab + t]!;
    }
    return this.wrap(out);
  }

  crossEntropyBackward(logits: Storage, targets: Int32Array, dloss: Storage, rows: number, vocab: number, ignoreIndex: number): Storage {
    const X = this.d(logits);
    const G = this.d(dloss);
    checkLen('crossEntropyBackward logits', X, rows * vocab);
    checkLen('crossEntropyBackward dloss', G, rows);
    if (targets.length !== rows) throw new Error(`crossEntropyBackward: ${targets.length} targets for ${rows} rows`);
    const out = this.alloc(rows * vocab);
    const Xf = f32Of(X);
    const Gf = f32Of(G);
    if (Xf && Gf) {
      checkTargets('crossEntropyBackward', targets, vocab, ignoreIndex);
      const { units, range } = rowUnits(rows, Math.max(1, Math.ceil(rows / (4 * activeThreads()))));
      const args = [
        { a: Xf, io: 'in' as const, per: vocab },
        { a: targets, io: 'in' as const, per: 1 },
        { a: Gf, io: 'in' as const, per: 1 },
        { a: out as Float32Array, io: 'out' as const, per: vocab },
        vocab,
        ignoreIndex,
      ];
      runRows({ op: OP.ceBwd, units, range, args, work: 4 * rows * vocab });
      return this.wrap(out);
    }
    out.fill(0); // ignored rows are 0 (a recycled array holds anything)
    for (let r = 0; r < rows; r++) {
      const t = targets[r]!;
      if (t === ignoreIndex) continue;
      const o = r * vocab;
      const lse = rowLse(X, o, vocab);
      const g = G[r]!;
      for (let c = 0; c < vocab; c++) out[o + c] = Math.exp(X[o + c]! - lse) * g;
      out[o + t]! -= g;
    }
    return this.wrap(out);
  }

  // ---------------------------------------------------------------- optimizer

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    const P = this.d(param);
    const G = this.d(grad);
    const M = this.d(m);
    const Vv = this.d(v);
    if (G.length !== P.length || M.length !== P.length || Vv.length !== P.length) {
      throw new Error(`adamw: lengths differ (param ${P.length}, grad ${G.length}, m ${M.length}, v ${Vv.length})`);
    }
    const { lr, beta1, beta2, eps, weightDecay, step, gradScale } = p;
    if (!(step >= 1)) throw new Error(`adamw: step must be >= 1 (got ${step})`);
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    const decay = 1 - lr * weightDecay;
    const f = [P, G, M, Vv].map(f32Of);
    if (f.every((a) => a)) {
      // The f32 product path (kernels.ts kAdamW), in torch's form: p·decay − (lr/bc1)·m / (√v / √bc2 + eps),
      // with the two per-element divisions by constants turned into products (~35% faster; the update moves
      // by at most an ulp of a double, far below f32 rounding). The f64 oracle below keeps the textbook form.
      const [fp, fg, fm, fv] = f as Float32Array[];
      const { units, range } = elementUnits(P.length, activeThreads());
      const io = (a: Float32Array, rw: boolean) => ({ a, io: rw ? ('inout' as const) : ('in' as const), per: 1 });
      const args = [
        io(fp!, true),
        io(fg!, false),
        io(fm!, true),
        io(fv!, true),
        beta1,
        beta2,
        eps,
        gradScale,
        decay,
        lr / bc1,
        1 / Math.sqrt(bc2),
      ];
      runRows({ op: OP.adamw, units, range, args, work: P.length });
      return;
    }
    for (let i = 0; i < P.length; i++) {
      const g = G[i]! * gradScale;
      const mi = beta1 * M[i]! + (1 - beta1) * g;
      const vi = beta2 * Vv[i]! + (1 - beta2) * g * g;
      M[i] = mi;
      Vv[i] = vi;
      P[i] = P[i]! * decay - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
    }
  }
}

/** dst[off + r*stride + c] += src[srcOff + r*cols + c] for a [rows, cols] block. */
function addRows(dst: FloatArray, off: number, stride: number, src: FloatArray, srcOff: number, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = off + r * stride;
    const so = srcOff + r * cols;
    for (let c = 0; c < cols; c++) dst[o + c]! += src[so + c]!;
  }
}

/** dst[c] += Σ_u partials[u*dim + c], the units in order (row kernels' per-chunk weight gradients). */
function addPartials(dst: Float64Array, partials: Float64Array, units: number, dim: number): void {
  for (let u = 0; u < units; u++) {
    const o = u * dim;
    for (let c = 0; c < dim; c++) dst[c]! += partials[o + c]!;
  }
}

function checkTargets(what: string, targets: Int32Array, vocab: number, ignoreIndex: number): void {
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r]!;
    if (t !== ignoreIndex && (t < 0 || t >= vocab)) throw new Error(`${what}: target ${t} at row ${r} outside vocabulary of ${vocab}`);
  }
}

function rowLse(X: FloatArray, o: number, n: number): number {
  let mx = -Infinity;
  for (let c = 0; c < n; c++) if (X[o + c]! > mx) mx = X[o + c]!;
  let s = 0;
  for (let c = 0; c < n; c++) s += Math.exp(X[o + c]! - mx);
  return mx + Math.log(s);
}

function checkLen(what: string, a: FloatArray, want: number): void {
  if (a.length !== want) throw new Error(`${what}: storage has ${a.length} elements, expected ${want}`);
}

/** Attention's (batch, head) pairs in groups whose T x T score blocks together stay under ~16 MiB: per pair
 *  the offsets of its q/out head (qo), k/v head (ko), lse row (lo) and score block (so). */
function* headGroups(p: AttentionParams): Generator<{ count: number; qo: Int32Array; ko: Int32Array; lo: Int32Array; so: Int32Array }> {
  const { B, T, H, Hkv, D } = p;
  const rep = H / Hkv;
  const per = Math.max(1, Math.min(B * H, Math.floor((4 << 20) / (T * T))));
  for (let z0 = 0; z0 < B * H; z0 += per) {
    const count = Math.min(per, B * H - z0);
    const g = { count, qo: new Int32Array(count), ko: new Int32Array(count), lo: new Int32Array(count), so: new Int32Array(count) };
    for (let z = 0; z < count; z++) {
      const b = Math.floor((z0 + z) / H);
      const h = (z0 + z) % H;
      g.qo[z] = b * T * H * D + h * D;
      g.ko[z] = b * T * Hkv * D + Math.floor(h / rep) * D;
      g.lo[z] = (b * H + h) * T;
      g.so[z] = z * T * T;
    }
    yield g;
  }
}

function checkAttn(p: AttentionParams): void {
  if (p.Hkv <= 0 || p.H % p.Hkv !== 0) throw new Error(`attention: H=${p.H} is not a multiple of Hkv=${p.Hkv}`);
}
