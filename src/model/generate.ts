/**
 * Text generation over a Decoder: greedy, temperature and top-k sampling with a seeded PRNG, so a run is
 * reproducible from (weights, prompt, options).
 *
 * Each step re-runs the whole (cropped) prefix: O(T²) work per generated token, which is fine for the short
 * completions the studio shows. A KV cache (keeping per-layer k/v and running only the new token) is future
 * work; the Backend's `rope` already takes a `positionOffset` for it.
 */

import { Rng } from '../engine/random';
import { noGrad, tidy } from '../engine/tensor';
import type { Decoder } from './decoder';

export interface SampleOptions {
  /** 0 or absent: greedy argmax. */
  temperature?: number;
  /** Sample only among the k most likely tokens; 0/absent: all. */
  topK?: number;
}

export interface GenerateOptions extends SampleOptions {
  maxNewTokens: number;
  /** PRNG seed for sampling (ignored by greedy decoding). Default 0. */
  seed?: number;
  /** Stop after emitting any of these ids (the stop token is included in the output). */
  eosTokenId?: number | readonly number[];
  /** Called with each new token as soon as it is chosen (streaming UIs). */
  onToken?: (id: number, step: number) => void;
}

export interface GenerateResult {
  /** The new tokens only (prompt excluded). */
  tokens: Int32Array;
  /** 'eos' when a stop token was produced, else 'length'. */
  stop: 'eos' | 'length';
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** The token ids kept by top-k (ties at the cut broken by lower id, so the set never depends on sort stability). */
export function topKIds(row: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  if (!(k > 0 && k < row.length)) return idx;
  idx.sort((a, b) => row[b]! - row[a]! || a - b);
  return idx.slice(0, k);
}

/** Sampling probabilities over `ids` at `temperature` (softmax of logits / temperature, max-shifted). */
export function sampleProbs(row: ArrayLike<number>, ids: readonly number[], temperature: number): Float64Array {
  let m = -Infinity;
  for (const i of ids) m = Math.max(m, row[i]!);
  const p = new Float64Array(ids.length);
  let total = 0;
  ids.forEach((i, j) => {
    p[j] = Math.exp((row[i]! - m) / temperature);
    total += p[j]!;
  });
  for (let j = 0; j < p.length; j++) p[j]! /= total;
  return p;
}

/** Picks one token id from a row of unnormalised logits. */
export function sampleToken(row: ArrayLike<number>, opts: SampleOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 0;
  if (!(temperature > 0)) return argmax(row);
  const ids = topKIds(row, opts.topK ?? 0);
  const p = sampleProbs(row, ids, temperature);
  let u = rng.next();
  for (let j = 0; j < ids.length; j++) {
    u -= p[j]!;
    if (u < 0) return ids[j]!;
  }
  return ids[ids.length - 1]!; // rounding left u a hair above 0
}

/** Generates up to `maxNewTokens` tokens after `prompt` (one sequence). */
export async function generate(dec: Decoder, prompt: ArrayLike<number>, opts: GenerateOptions): Promise<GenerateResult> {
  if (prompt.length === 0) throw new RangeError('generate: empty prompt (pass at least a BOS token)');
  const window = dec.spec.maxPositions;
  const eos = new Set(opts.eosTokenId === undefined ? [] : typeof opts.eosTokenId === 'number' ? [opts.eosTokenId] : opts.eosTokenId);
  const rng = new Rng(opts.seed ?? 0);
  const seq = Array.from(prompt);
  const out: number[] = [];
  for (let step = 0; step < opts.maxNewTokens; step++) {
    // Keep the most recent tokens that fit the model's positions.
    const ctx = Int32Array.from(seq.length > window ? seq.slice(seq.length - window) : seq);
    // tidy: the forward's intermediates are GPU buffers, freed here rather than left to GC.
    const logits = tidy(() => noGrad(() => dec.lastLogits(ctx, 1, ctx.length)));
    const row = await logits.read();
    logits.free();
    const id = sampleToken(row, opts, rng);
    seq.push(id);
    out.push(id);
    opts.onToken?.(id, step);
    if (eos.has(id)) return { tokens: Int32Array.from(out), stop: 'eos' };
  }
  return { tokens: Int32Array.from(out), stop: 'length' };
}
