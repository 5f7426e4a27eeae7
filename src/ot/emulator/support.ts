/**
 * The support pass (model owner, once): forward + mean LM loss + backward with no update over support
 * batches, accumulating for every observed linear the KFAC statistics of kfac.ts (same conventions:
 * A = E[x xᵀ], G = E[e eᵀ] with e = N_b·dy, g = ∂ℓ/∂W of the support-set mean token loss).
 *
 * Everything streams on the active backend: the decoder's LinearHooks hand over x [B*T, in] during the
 * forward and dy [B*T, out] during the backward, and we fold them into running backend sums with one matmul
 * each (xᵀx, dyᵀdy) before the activations are dropped; g comes from autograd itself (the observed linears'
 * weights require grad during the pass), weighted by the batch's token count. Only the sums are read back
 * to the host, once, at the end.
 */
import type { Backend, Storage } from '../../engine/backend';
import { backward, tidy } from '../../engine/tensor';
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

export interface SupportPassOptions {
  /** Canonical linear names to observe, e.g. `layers.2.attn.q` (default: every linear of `blocks`). */
  linears?: string[];
  ignoreIndex?: number;
  /** Progress callback after each batch (mean loss of that batch). */
  onBatch?: (index: number, loss: number, tokens: number) => void;
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
}

/** Every linear of the given blocks (indices into spec.layers), canonical names. */
export function blockLinearNames(dec: Decoder, blocks: number[]): string[] {
  const { attn, mlp } = projsOf(dec.spec);
  return blocks.flatMap((i) => [...attn, ...mlp].map((p) => linearName(i, p)));
}

interface Acc {
  inDim: number;
  outDim: number;
  sumXX: Storage;
  sumEE: Storage;
  sumX: Storage;
  sumGrad: Storage;
  sumGradBias: Storage;
  rows: number;
}

function dimsOf(dec: Decoder, name: string): { out: number; in: number } {
  const m = /^layers\.(\d+)\.(attn|mlp)\.(\w+)$/.exec(name);
  if (!m) throw new Error(`supportPass: '${name}' is not a block linear`);
  const d = linearDims(dec.spec, Number(m[1]), m[3] as Parameters<typeof linearDims>[2]);
  if (d.rank !== undefined) throw new Error(`supportPass: '${name}' is low-rank; the support pass runs on the dense model`);
  return d;
}

async function sha256Hex(chunks: Uint8Array[]): Promise<string> {
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) { all.set(c, o); o += c.length; }
  const h = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', all));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readF64(be: Backend, s: Storage, scale: number): Promise<Float64Array> {
  const a = await be.read(s);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * scale;
  return out;
}

export async function supportPass(
  dec: Decoder, batches: Iterable<SupportBatch> | AsyncIterable<SupportBatch>, blocks: number[], opts: SupportPassOptions = {},
): Promise<SupportPassResult> {
  const t0 = performance.now();
  const be = dec.backend;
  const ignore = opts.ignoreIndex ?? -100;
  const names = opts.linears ?? blockLinearNames(dec, blocks);
  const accs = new Map<string, Acc>();
  for (const name of names) {
    const { out, in: inn } = dimsOf(dec, name);
    accs.set(name, {
      inDim: inn, outDim: out, rows: 0,
      sumXX: be.zeros(inn * inn), sumEE: be.zeros(out * out), sumX: be.zeros(inn),
      sumGrad: be.zeros(out * inn), sumGradBias: be.zeros(out),
    });
  }
  // Only the observed linears' parameters require grad: their .grad is g, and their outputs requiring grad
  // is what makes the decoder's output-gradient hook fire. Everything else stays frozen (no wasted grads).
  const saved = new Map<string, boolean>();
  for (const [n, t] of dec.params) saved.set(n, t.requiresGrad);
  const observedParam = (n: string) => n.endsWith('.weight') && accs.has(n.slice(0, -'.weight'.length));
  dec.setTrainable(observedParam);
  dec.zeroGrad();

  let lossTokens = 0;
  const hooks = {
    filter: (name: string) => accs.has(name),
    onInput: (name: string, x: { storage: Storage; shape: number[] }) => {
      const a = accs.get(name)!;
      const rows = x.shape[0];
      const xx = be.matmul(x.storage, x.storage, { batch: 1, m: a.inDim, n: a.inDim, k: rows, transA: true });
      be.axpy(a.sumXX, xx, 1);
      be.free(xx);
      const sx = be.sumRows(x.storage, rows, a.inDim);
      be.axpy(a.sumX, sx, 1);
      be.free(sx);
      a.rows += rows;
    },
    onOutputGrad: (name: string, dy: { storage: Storage; shape: number[] }) => {
      const a = accs.get(name)!;
      const rows = dy.shape[0];
      const ee = be.matmul(dy.storage, dy.storage, { batch: 1, m: a.outDim, n: a.outDim, k: rows, transA: true });
      be.axpy(a.sumEE, ee, lossTokens * lossTokens);
      be.free(ee);
      // ∂ℓ_b/∂b = Σ_rows dy, defined (and used by SCP's bias reading) even for linears without a bias.
      const sdy = be.sumRows(dy.storage, rows, a.outDim);
      be.axpy(a.sumGradBias, sdy, lossTokens);
      be.free(sdy);
    },
  };

  const digestChunks: Uint8Array[] = [];
  let totalTokens = 0;
  let lossSum = 0;
  let nb = 0;
  try {
    for await (const b of batches as AsyncIterable<SupportBatch>) {
      lossTokens = countTargets(b.targets, ignore);
      digestChunks.push(new Uint8Array(b.ids.slice().buffer), new Uint8Array(b.targets.slice().buffer));
      if (lossTokens === 0) continue;
      // Forward activations are freed by release (graph) and the scope (frozen-layer internals): a GPU
      // backend only reclaims buffers on an explicit free. The hooks work on raw storages they free.
      const loss = tidy(() => {
        const l = dec.loss(b.ids, b.targets, b.B, b.T, { hooks, ignoreIndex: ignore });
        backward(l, { release: true });
        return l;
      });
      const lv = await loss.item();
      loss.free();
      for (const [name, a] of accs) {
        const w = dec.params.get(`${name}.weight`);
        if (!w?.grad) throw new Error(`supportPass: no gradient reached ${name}.weight`);
        be.axpy(a.sumGrad, w.grad.storage, lossTokens);
      }
      dec.zeroGrad();
      lossSum += lv * lossTokens;
      totalTokens += lossTokens;
      nb++;
      opts.onBatch?.(nb - 1, lv, lossTokens);
    }
    if (totalTokens === 0) throw new Error('supportPass: the support data has no loss tokens');
    const stats = new Map<string, LinearStats>();
    for (const [name, a] of accs) {
      const A = await readF64(be, a.sumXX, 1 / a.rows);
      const G = await readF64(be, a.sumEE, 1 / a.rows);
      stats.set(name, {
        inDim: a.inDim, outDim: a.outDim, A, G,
        g: await readF64(be, a.sumGrad, 1 / totalTokens),
        gBias: await readF64(be, a.sumGradBias, 1 / totalTokens),
        meanX: await readF64(be, a.sumX, 1 / a.rows),
        rows: a.rows, lossTokens: totalTokens, batches: nb,
      });
    }
    return {
      stats, meanLoss: lossSum / totalTokens, tokens: totalTokens, batches: nb,
      digest: await sha256Hex(digestChunks), seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const a of accs.values()) for (const s of [a.sumXX, a.sumEE, a.sumX, a.sumGrad, a.sumGradBias]) be.free(s);
    dec.zeroGrad();
    dec.setTrainable((n) => saved.get(n) ?? false);
  }
}
