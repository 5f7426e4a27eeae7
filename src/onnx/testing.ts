/**
 * Model states for ONNX tests and benches, built by hand from a random full model: an emulator (q and v
 * factored by exact truncated SVD, MLP channels sliced, optionally a middle block dropped) and a plug-in
 * model (the full model with its adapter blocks changed, as after tuning). These mirror what src/ot
 * produces structurally, without depending on its scoring.
 */
import { exactSvd } from '../engine/linalg/svd';
import { decoderFromWeights } from '../model/decoder';
import { CpuBackend } from '../engine/cpu/backend';
import { noGrad } from '../engine/tensor';
import { gaussian } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import type { HostTensor, WeightMap } from '../model/weights';

export interface EmulatorOptions {
  /** Blocks [0, bottom) and [L - top, L) stay dense (adapters). Default 1 and 1. */
  bottom?: number;
  top?: number;
  /** Rank kept for q and v of middle blocks. */
  rank: number;
  /** MLP channels kept in middle blocks. */
  mlpWidth: number;
  /** Drop this many middle blocks (the last ones of the middle), as OT's layer drop does. Default 0. */
  dropBlocks?: number;
}

function sliceRows(t: HostTensor, keep: number[]): HostTensor {
  const cols = t.shape.length === 2 ? t.shape[1]! : 1;
  const out = new Float32Array(keep.length * cols);
  keep.forEach((r, i) => out.set(t.data.subarray(r * cols, (r + 1) * cols), i * cols));
  return { dtype: 'F32', shape: t.shape.length === 2 ? [keep.length, cols] : [keep.length], data: out };
}

function sliceCols(t: HostTensor, keep: number[]): HostTensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) keep.forEach((c, j) => (out[r * keep.length + j] = t.data[r * cols + c]!));
  return { dtype: 'F32', shape: [rows, keep.length], data: out };
}

/** W [out, in] ≈ A·B by exact SVD truncated to `rank`: A = U_r diag(S_r) [out, r], B = Vt_r [r, in]. */
export function svdFactors(w: HostTensor, rank: number): { a: HostTensor; b: HostTensor } {
  const [m, n] = w.shape as [number, number];
  const s = exactSvd(w.data, m, n, rank);
  const a = new Float32Array(m * rank);
  const b = new Float32Array(rank * n);
  for (let i = 0; i < m; i++) for (let k = 0; k < rank; k++) a[i * rank + k] = s.U[i * s.rank + k]! * s.S[k]!;
  for (let k = 0; k < rank; k++) for (let j = 0; j < n; j++) b[k * n + j] = s.Vt[k * n + j]!;
  return { a: { dtype: 'F32', shape: [m, rank], data: a }, b: { dtype: 'F32', shape: [rank, n], data: b } };
}

/** An emulator of (spec, weights): compressed middle blocks, dense adapters, same embeddings and head. */
export function buildTestEmulator(spec: ModelSpec, weights: WeightMap, o: EmulatorOptions): { spec: ModelSpec; weights: WeightMap } {
  const L = spec.layers.length;
  const bottom = o.bottom ?? 1;
  const top = o.top ?? 1;
  const drop = o.dropBlocks ?? 0;
  const kept: number[] = [];
  for (let i = 0; i < L; i++) if (i < bottom || i >= L - top || i < L - top - drop) kept.push(i);
  const out: WeightMap = new Map();
  const layers: ModelSpec['layers'] = [];
  for (const [name, t] of weights) if (!name.startsWith('layers.')) out.set(name, t);
  kept.forEach((src, dst) => {
    const middle = src >= bottom && src < L - top;
    const prefix = `layers.${src}.`;
    const layer = { source: src, ranks: {} as ModelSpec['layers'][number]['ranks'], mlpWidth: spec.layers[src]!.mlpWidth };
    // Keep every other channel from 0 (then fill up) so the kept set is not a prefix.
    const width = spec.layers[src]!.mlpWidth;
    const keep: number[] = [];
    if (middle) {
      for (let c = 0; c < width && keep.length < o.mlpWidth; c += 2) keep.push(c);
      for (let c = 1; c < width && keep.length < o.mlpWidth; c += 2) keep.push(c);
      keep.sort((p, q) => p - q);
      layer.mlpWidth = keep.length;
    }
    for (const [name, t] of weights) {
      if (!name.startsWith(prefix)) continue;
      const rest = name.slice(prefix.length);
      const to = `layers.${dst}.${rest}`;
      if (!middle) {
        out.set(to, t);
        continue;
      }
      const m = /^(attn\.(q|v))\.weight$/.exec(rest);
      if (m) {
        const f = svdFactors(t, o.rank);
        out.set(`layers.${dst}.${m[1]}.weight_a`, f.a);
        out.set(`layers.${dst}.${m[1]}.weight_b`, f.b);
        layer.ranks[m[2] as 'q' | 'v'] = o.rank;
      } else if (/^mlp\.(up|gate)\.(weight|bias)$/.test(rest)) {
        out.set(to, sliceRows(t, keep));
      } else if (rest === 'mlp.down.weight') {
        out.set(to, sliceCols(t, keep));
      } else {
        out.set(to, t);
      }
    }
    layers.push(layer);
  });
  return { spec: { ...spec, layers }, weights: out };
}

/** The full model with its first `bottom` and last `top` blocks perturbed (as tuned adapters would be). */
export function buildTestPlugin(spec: ModelSpec, weights: WeightMap, seed: number, bottom = 1, top = 1, std = 0.02): WeightMap {
  const L = spec.layers.length;
  const g = gaussian(seed);
  const out: WeightMap = new Map();
  for (const [name, t] of weights) {
    const m = /^layers\.(\d+)\./.exec(name);
    const i = m ? Number(m[1]) : -1;
    if (i >= 0 && (i < bottom || i >= L - top)) {
      const d = Float32Array.from(t.data, (v) => v + std * g());
      out.set(name, { dtype: 'F32', shape: [...t.shape], data: d });
    } else {
      out.set(name, t);
    }
  }
  return out;
}

/** Our engine's logits [B*T*V] on the CPU backend (the reference for ONNX comparisons). */
export async function engineLogits(spec: ModelSpec, weights: WeightMap, ids: Int32Array, B: number, T: number): Promise<Float32Array> {
  const dec = decoderFromWeights(new CpuBackend(), spec, weights);
  const y = noGrad(() => dec.forward(ids, B, T));
  const out = await y.read();
  y.free();
  dec.free();
  return out instanceof Float32Array ? out : Float32Array.from(out);
}

/** max |a - b| / max |b|: the relative error we report for logits (elementwise ratios blow up near 0). */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxRelErr: lengths ${a.length} and ${b.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}

/** Deterministic token ids in [0, vocab). */
export function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const g = gaussian(seed);
  return Int32Array.from({ length: n }, () => Math.floor(Math.abs(g() * 1e6)) % vocab);
}
