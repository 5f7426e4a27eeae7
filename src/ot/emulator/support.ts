/**
 * The support pass (model owner, once): forward + mean LM loss + backward with no update over support
 * batches, accumulating for every observed linear the KFAC statistics of kfac.ts (same conventions:
 * A = E[x xᵀ], G = E[e eᵀ] with e = N_b·dy, g = ∂ℓ/∂W of the support-set mean token loss).
 *
 * Everything streams on the active backend: the decoder's LinearHooks hand over x [B*T, in] during the
 * forward and dy [B*T, out] during the backward, and we fold them into running backend sums with one matmul
 * each (xᵀx, dyᵀdy) before the activations are dropped; g comes from autograd itself (the observed linears'
 * weights require grad during the pass), weighted by the batch's token count.
 *
 * Memory (the dense accumulators are width² per matrix, so they, not the model, decide the peak at real
 * sizes):
 * - Linears that read the same input share one input statistic: q/k/v (A, E[x]) and up/gate.
 * - The observed blocks are processed in GROUPS whose accumulators fit `memoryBudget`. A first sweep runs
 *   the model once per batch without a tape, saving the residual stream at every group boundary and the
 *   loss gradient w.r.t. the stream above the last group (from a tape over the blocks above it and the
 *   head only). Then each group, top-down, re-runs its own blocks from the saved stream with a tape and
 *   back-propagates the saved gradient from above, handing its own input gradient to the group below. Every
 *   x and dy a hook sees is the value the whole-model backward would produce (same ops on the same
 *   inputs), so the statistics do not depend on the grouping; only one group's accumulators and one
 *   group's tape exist at a time, and the extra work is one forward of the observed blocks.
 * - A group's statistics are read back one linear at a time, each backend sum freed as soon as it is on the
 *   host, and can be handed to `onStats` (e.g. to score and drop them) instead of being kept.
 */
import type { Backend, FloatArray, Storage } from '../../engine/backend';
import { backward, noGrad, tidy, Tensor } from '../../engine/tensor';
import { reclaimHostMemory } from '../../engine/reclaim';
import { CpuStorage, readSync } from '../../engine/cpu/backend';
import { countTargets } from '../../engine/ops';
import type { Decoder } from '../../model/decoder';
import { linearName } from '../../model/decoder';
import { linearDims, projsOf } from '../../model/hf';
import type { LinearStats } from './kfac';

export interface SupportBatch {
  /** [B*T] token ids. */
  ids: Int32Array;
  /** [B*T] next-token targets aligned with ids (ignoreIndex for positions without a loss). */
  targets: Int32Array;
  B: number;
  T: number;
}

/** Default bytes for one group's statistics accumulators (and the observed weights' gradients). */
export const DEFAULT_SUPPORT_BUDGET = 512 * 2 ** 20;

export interface SupportPassOptions {
  /** Canonical linear names to observe, e.g. `layers.2.attn.q` (default: every linear of `blocks`). */
  linears?: string[];
  ignoreIndex?: number;
  /** Progress callback after each batch of the first sweep (mean loss of that batch). */
  onBatch?: (index: number, loss: number, tokens: number) => void;
  /**
   * Bytes one group of blocks' accumulators may take on the backend (F32 sums + the observed weights'
   * gradients); blocks are grouped greedily, at least one per group. Default DEFAULT_SUPPORT_BUDGET.
   * Infinity = every block in one group.
   */
  memoryBudget?: number;
  /**
   * Receives every linear's statistics as soon as its group is finished (groups top-down, linears in
   * block order); the result's `stats` then stays empty, so the caller can consume and drop them.
   */
  onStats?: (name: string, stats: LinearStats) => void | Promise<void>;
  /** Work units done / total (one unit = one batch through one sweep or group), for progress and ETA. */
  onProgress?: (done: number, total: number) => void;
  /** Number of batches, when the input is a generator (for onProgress's total during the first sweep). */
  count?: number;
  /** Awaited between units of work (e.g. to pause, or to throw on abort). */
  between?: () => Promise<void>;
  /**
   * With `onStats`: the callback keeps none of the arrays it is handed once it returns, so the pass may
   * write the next linear's statistics of the same group into them. Fresh host arrays are faulted in page
   * by page, and a block's statistics in f64 are ~720 MB at Qwen2.5-0.5B's widths, most of them the same
   * few sizes (an MLP's G's and the down projection's A are all dff²).
   */
  recycleStats?: boolean;
}

export interface SupportPassResult {
  stats: Map<string, LinearStats>;
  /** Token-weighted mean loss over the support set. */
  meanLoss: number;
  tokens: number;
  batches: number;
  /** SHA-256 (hex) over the ids and targets consumed, in order (for the emulator record). */
  digest: string;
  seconds: number;
  /** Observed blocks per group, in the order they were processed (top-down). */
  groups: number[][];
}

/** Every linear of the given blocks (indices into spec.layers), canonical names. */
export function blockLinearNames(dec: Decoder, blocks: number[]): string[] {
  const { attn, mlp } = projsOf(dec.spec);
  return blocks.flatMap((i) => [...attn, ...mlp].map((p) => linearName(i, p)));
}

/** The input statistic a linear shares with its siblings: q/k/v read ln1's output, up/gate ln2's. */
export function inputKey(name: string): string {
  const m = /^(layers\.\d+)\.(attn|mlp)\.(\w+)$/.exec(name);
  if (!m) return name;
  if (m[2] === 'attn' && (m[3] === 'q' || m[3] === 'k' || m[3] === 'v')) return `${m[1]}.attn.qkv`;
  if (m[2] === 'mlp' && (m[3] === 'up' || m[3] === 'gate')) return `${m[1]}.mlp.in`;
  return name;
}

interface InputAcc {
  dim: number;
  sumXX: Storage | null;
  sumX: Storage | null;
  rows: number;
  /** Batch index last folded in (siblings see the same x once per batch). */
  lastBatch: number;
  /** Host copies once read back (shared by the siblings' LinearStats). */
  A?: Float64Array;
  meanX?: Float64Array;
  users: number;
}

interface Acc {
  inDim: number;
  outDim: number;
  input: InputAcc;
  sumEE: Storage | null;
  sumGrad: Storage | null;
  sumGradBias: Storage | null;
}

function parseLinear(name: string): { layer: number; proj: string } {
  const m = /^layers\.(\d+)\.(attn|mlp)\.(\w+)$/.exec(name);
  if (!m) throw new Error(`supportPass: '${name}' is not a block linear`);
  return { layer: Number(m[1]), proj: m[3]! };
}

function dimsOf(dec: Decoder, name: string): { out: number; in: number } {
  const { layer, proj } = parseLinear(name);
  const d = linearDims(dec.spec, layer, proj as Parameters<typeof linearDims>[2]);
  if (d.rank !== undefined) throw new Error(`supportPass: '${name}' is low-rank; the support pass runs on the dense model`);
  return d;
}

/** Backend bytes of one block's accumulators (F32 or the backend's dtype) for the observed `names`. */
export function supportBytesPerBlock(dec: Decoder, names: string[], elt = 4): number {
  const inputs = new Map<string, number>();
  let n = 0;
  for (const name of names) {
    const d = dimsOf(dec, name);
    inputs.set(inputKey(name), d.in * d.in + d.in);
    // sumEE + sumGrad + the weight's own .grad + sumGradBias
    n += d.out * d.out + 2 * d.out * d.in + d.out;
  }
  for (const v of inputs.values()) n += v;
  return n * elt;
}

/** Contiguous groups of `blocks` (ascending) whose accumulators each fit `budget` bytes (>= 1 block each). */
export function planSupportGroups(blocks: number[], bytesOf: (block: number) => number, budget: number): number[][] {
  const groups: number[][] = [];
  let cur: number[] = [];
  let used = 0;
  for (const b of [...blocks].sort((x, y) => x - y)) {
    const need = bytesOf(b);
    const contiguous = cur.length === 0 || b === cur[cur.length - 1]! + 1;
    if (cur.length > 0 && (!contiguous || used + need > budget)) {
      groups.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(b);
    used += need;
  }
  if (cur.length) groups.push(cur);
  return groups;
}

async function sha256Hex(chunks: Uint8Array[]): Promise<string> {
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  const h = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', all));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readF64(be: Backend, s: Storage, scale: number, take: (n: number) => Float64Array): Promise<Float64Array> {
  // On the CPU backend the sum's own array (freed by the caller right after): read() would copy it first,
  // a fresh array as big as a block's statistics (424 MB per group at Qwen2.5-0.5B's widths) faulted in
  // page by page only to be converted and dropped.
  const a = s instanceof CpuStorage ? readSync(s) : await be.read(s);
  const out = take(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! * scale;
  return out;
}

/** Host copy of a tensor's values (boundary streams and gradients live on the host between sweeps). */
async function hostCopy(t: Tensor): Promise<FloatArray> {
  return t.backend.read(t.storage);
}

export async function supportPass(
  dec: Decoder,
  batchesIn: Iterable<SupportBatch> | AsyncIterable<SupportBatch>,
  blocks: number[],
  opts: SupportPassOptions = {},
): Promise<SupportPassResult> {
  const t0 = performance.now();
  const be = dec.backend;
  const spec = dec.spec;
  const L = spec.layers.length;
  const ignore = opts.ignoreIndex ?? -100;
  const names = opts.linears ?? blockLinearNames(dec, blocks);
  for (const n of names) dimsOf(dec, n);

  // Groups of observed blocks under the budget.
  const byBlock = new Map<number, string[]>();
  for (const n of names) {
    const { layer } = parseLinear(n);
    if (!byBlock.has(layer)) byBlock.set(layer, []);
    byBlock.get(layer)!.push(n);
  }
  const observed = [...byBlock.keys()].sort((a, b) => a - b);
  const budget = opts.memoryBudget ?? DEFAULT_SUPPORT_BUDGET;
  const elt = be.dtype === 'f64' ? 8 : 4;
  const groupsUp =
    observed.length === 0
      ? []
      : planSupportGroups(
          // One contiguous run from the lowest to the highest observed block: blocks in between without observed
          // linears still have to be re-run to carry the gradient.
          Array.from({ length: observed[observed.length - 1]! - observed[0]! + 1 }, (_, i) => observed[0]! + i),
          (b) => (byBlock.has(b) ? supportBytesPerBlock(dec, byBlock.get(b)!, elt) : 0),
          budget,
        );
  const hi = observed.length ? observed[observed.length - 1]! + 1 : L;
  const starts = groupsUp.map((g) => g[0]!);

  const saved = new Map<string, boolean>();
  for (const [n, t] of dec.params) saved.set(n, t.requiresGrad);
  dec.setTrainable(() => false);
  dec.zeroGrad();
  // Batches are consumed lazily in the first sweep (the input may pause or abort between them).
  let nIn = 0;
  const total = (): number => Math.max(opts.count ?? (Array.isArray(batchesIn) ? batchesIn.length : nIn), nIn) * (1 + groupsUp.length);
  let units = 0;
  const tick = () => opts.onProgress?.(++units, total());

  const digestChunks: Uint8Array[] = [];
  let totalTokens = 0;
  let lossSum = 0;
  let nb = 0;
  const stats = new Map<string, LinearStats>();
  // Per used batch: loss tokens, the stream at each group start, and the gradient w.r.t. the stream at `hi`.
  const used: { b: SupportBatch; N: number; bounds: FloatArray[]; grad: FloatArray | null }[] = [];
  const d = spec.hiddenSize;
  // Backend sums of the group in flight (freed in `finally` if the pass fails half-way).
  const live = new Set<Storage>();
  const alloc = (n: number): Storage => {
    const s = be.zeros(n);
    live.add(s);
    return s;
  };
  const release = (s: Storage): void => {
    live.delete(s);
    be.free(s);
  };
  try {
    // Sweep 1: forward without a tape up to `hi` (saving group inputs), then the blocks above + head with a
    // tape from a leaf at `hi`: the loss and its gradient w.r.t. the stream there.
    for await (const b of batchesIn as AsyncIterable<SupportBatch>) {
      nIn++;
      const N = countTargets(b.targets, ignore);
      digestChunks.push(new Uint8Array(b.ids.slice().buffer), new Uint8Array(b.targets.slice().buffer));
      if (N === 0) {
        tick();
        continue;
      }
      const { B, T } = b;
      const kept = tidy(() =>
        noGrad(() => {
          let x = dec.embed(b.ids, B, T);
          const out: Tensor[] = [];
          for (let i = 0; i < hi; i++) {
            if (starts.includes(i)) out.push(x);
            // One block's activations at a time (freed at once; the CPU backend reuses their arrays).
            const prev = x;
            x = tidy(() => dec.block(i, prev, B, T));
            if (!starts.includes(i)) prev.free();
          }
          out.push(x);
          return out;
        }),
      );
      const bounds: FloatArray[] = [];
      for (const t of kept) bounds.push(await hostCopy(t));
      for (const t of kept) t.free();
      const top = new Tensor(be, [B * T, d], be.fromArray(bounds.pop()!), true);
      const loss = tidy(() => {
        let x = top;
        for (let i = hi; i < L; i++) x = dec.block(i, x, B, T);
        const l = dec.headLoss(x, b.targets, ignore);
        backward(l, { release: true });
        return l;
      });
      const lv = await loss.item();
      loss.free();
      const grad = observed.length ? await hostCopy(top.grad!) : null;
      top.free();
      used.push({ b, N, bounds, grad });
      reclaimHostMemory(); // the batch's activations, freed with the scopes
      lossSum += lv * N;
      totalTokens += N;
      nb++;
      opts.onBatch?.(nb - 1, lv, N);
      tick();
    }
    if (totalTokens === 0) throw new Error('supportPass: the support data has no loss tokens');

    // Groups top-down: re-run the group's blocks with a tape, hooks folding x and dy into the sums.
    for (let gi = groupsUp.length - 1; gi >= 0; gi--) {
      const group = groupsUp[gi]!;
      const gNames = group.flatMap((blk) => byBlock.get(blk) ?? []);
      const inputs = new Map<string, InputAcc>();
      const accs = new Map<string, Acc>();
      for (const name of gNames) {
        const { out, in: inn } = dimsOf(dec, name);
        const k = inputKey(name);
        let inp = inputs.get(k);
        if (!inp) {
          inp = { dim: inn, sumXX: alloc(inn * inn), sumX: alloc(inn), rows: 0, lastBatch: -1, users: 0 };
          inputs.set(k, inp);
        }
        inp.users++;
        accs.set(name, {
          inDim: inn,
          outDim: out,
          input: inp,
          sumEE: alloc(out * out),
          sumGrad: alloc(out * inn),
          sumGradBias: alloc(out),
        });
      }
      dec.setTrainable((n) => n.endsWith('.weight') && accs.has(n.slice(0, -'.weight'.length)));
      let lossTokens = 0;
      let batchIndex = 0;
      const hooks = {
        filter: (name: string) => accs.has(name),
        onInput: (name: string, x: { storage: Storage; shape: number[] }) => {
          const inp = accs.get(name)!.input;
          if (inp.lastBatch === batchIndex) return;
          inp.lastBatch = batchIndex;
          const rows = x.shape[0]!;
          const xx = be.gram
            ? be.gram(x.storage, rows, inp.dim)
            : be.matmul(x.storage, x.storage, { batch: 1, m: inp.dim, n: inp.dim, k: rows, transA: true });
          be.axpy(inp.sumXX!, xx, 1);
          be.free(xx);
          const sx = be.sumRows(x.storage, rows, inp.dim);
          be.axpy(inp.sumX!, sx, 1);
          be.free(sx);
          inp.rows += rows;
        },
        onOutputGrad: (name: string, dy: { storage: Storage; shape: number[] }) => {
          const a = accs.get(name)!;
          const rows = dy.shape[0]!;
          const ee = be.gram
            ? be.gram(dy.storage, rows, a.outDim)
            : be.matmul(dy.storage, dy.storage, { batch: 1, m: a.outDim, n: a.outDim, k: rows, transA: true });
          be.axpy(a.sumEE!, ee, lossTokens * lossTokens);
          be.free(ee);
          // ∂ℓ_b/∂b = Σ_rows dy, defined (and used by SCP's bias reading) even for linears without a bias.
          const sdy = be.sumRows(dy.storage, rows, a.outDim);
          be.axpy(a.sumGradBias!, sdy, lossTokens);
          be.free(sdy);
        },
      };
      const gLo = group[0]!,
        gHi = group[group.length - 1]! + 1;
      for (let u = 0; u < used.length; u++) {
        await opts.between?.();
        const e = used[u]!;
        const { B, T } = e.b;
        lossTokens = e.N;
        batchIndex = u;
        // The lowest group's input gradient is not needed: no tape below it.
        const x0 = new Tensor(be, [B * T, d], be.fromArray(e.bounds[gi]!), gi > 0);
        const seed = be.fromArray(e.grad!);
        tidy(() => {
          let x = x0;
          for (let i = gLo; i < gHi; i++) x = dec.block(i, x, B, T, hooks);
          backward(x, { release: true, grad: seed });
        });
        be.free(seed);
        for (const [name, a] of accs) {
          const w = dec.params.get(`${name}.weight`);
          if (!w?.grad) throw new Error(`supportPass: no gradient reached ${name}.weight`);
          be.axpy(a.sumGrad!, w.grad.storage, lossTokens);
        }
        dec.zeroGrad();
        // The gradient w.r.t. this group's input is the seed of the group below.
        e.grad = gi > 0 ? await hostCopy(x0.grad!) : null;
        x0.zeroGrad();
        x0.free();
        e.bounds[gi] = new Float32Array(0);
        reclaimHostMemory();
        tick();
      }
      dec.setTrainable(() => false);
      // Host arrays handed back by an onStats that keeps none (recycleStats), reused within this group.
      const spare = new Map<number, Float64Array[]>();
      const recycle = opts.onStats !== undefined && opts.recycleStats === true;
      const take = (n: number): Float64Array => spare.get(n)?.pop() ?? new Float64Array(n);
      const give = (...arrays: Float64Array[]): void => {
        if (!recycle) return;
        for (const x of arrays) {
          let l = spare.get(x.length);
          if (!l) spare.set(x.length, (l = []));
          l.push(x);
        }
      };
      // Read back one linear at a time, freeing each backend sum as soon as it is on the host.
      for (const [name, a] of accs) {
        const inp = a.input;
        if (!inp.A) {
          inp.A = await readF64(be, inp.sumXX!, 1 / inp.rows, take);
          release(inp.sumXX!);
          inp.sumXX = null;
          inp.meanX = await readF64(be, inp.sumX!, 1 / inp.rows, take);
          release(inp.sumX!);
          inp.sumX = null;
        }
        const G = await readF64(be, a.sumEE!, 1 / inp.rows, take);
        release(a.sumEE!);
        a.sumEE = null;
        const g = await readF64(be, a.sumGrad!, 1 / totalTokens, take);
        release(a.sumGrad!);
        a.sumGrad = null;
        const gBias = await readF64(be, a.sumGradBias!, 1 / totalTokens, take);
        release(a.sumGradBias!);
        a.sumGradBias = null;
        const s: LinearStats = {
          inDim: a.inDim,
          outDim: a.outDim,
          A: inp.A,
          G,
          g,
          gBias,
          meanX: inp.meanX!,
          rows: inp.rows,
          lossTokens: totalTokens,
          batches: nb,
        };
        const last = --inp.users === 0;
        if (last) {
          inp.A = undefined;
          inp.meanX = undefined;
        }
        if (opts.onStats) await opts.onStats(name, s);
        else stats.set(name, s);
        give(G, g, gBias);
        if (last) give(s.A, s.meanX);
      }
    }
    // Observed-name order (the order callers list them in), whatever the group order was.
    const ordered = new Map<string, LinearStats>();
    for (const n of names) if (stats.has(n)) ordered.set(n, stats.get(n)!);
    return {
      stats: ordered,
      meanLoss: lossSum / totalTokens,
      tokens: totalTokens,
      batches: nb,
      digest: await sha256Hex(digestChunks),
      seconds: (performance.now() - t0) / 1000,
      groups: [...groupsUp].reverse(),
    };
  } finally {
    for (const s of live) be.free(s);
    dec.zeroGrad();
    dec.setTrainable((n) => saved.get(n) ?? false);
  }
}
