/**
 * Parameter counts straight from a spec's tensor list (canonicalShapes), so low-rank factors, pruned MLP
 * widths and dropped blocks are counted exactly as stored.
 */
import { canonicalShapes } from './hf';
import type { LayerSpec, ModelSpec } from './spec';
import { numel } from './weights';

export interface BlockParams {
  /** Index in this model. */
  index: number;
  /** Index in the original model. */
  source: number;
  /** q, k, v, o weights (or factors) and biases. */
  attention: number;
  /** up, gate, down weights (or factors) and biases. */
  mlp: number;
  /** ln1, ln2. */
  norms: number;
  total: number;
  ranks: LayerSpec['ranks'];
  mlpWidth: number;
}

export interface ParamCounts {
  total: number;
  /** Token embeddings plus learned positions. */
  embeddings: number;
  /** Untied LM head (0 when tied to the embeddings). */
  lmHead: number;
  finalNorm: number;
  blocks: BlockParams[];
  blocksTotal: number;
}

export function paramCounts(spec: ModelSpec): ParamCounts {
  const blocks: BlockParams[] = spec.layers.map((l, i) => ({
    index: i,
    source: l.source,
    attention: 0,
    mlp: 0,
    norms: 0,
    total: 0,
    ranks: { ...l.ranks },
    mlpWidth: l.mlpWidth,
  }));
  let embeddings = 0;
  let lmHead = 0;
  let finalNorm = 0;
  for (const [name, shape] of canonicalShapes(spec)) {
    const n = numel(shape);
    const m = /^layers\.(\d+)\.(ln1|ln2|attn|mlp)\./.exec(name);
    if (m) {
      const b = blocks[Number(m[1])]!;
      if (m[2] === 'attn') b.attention += n;
      else if (m[2] === 'mlp') b.mlp += n;
      else b.norms += n;
      b.total += n;
    } else if (name.startsWith('embed.') || name.startsWith('pos.')) embeddings += n;
    else if (name.startsWith('lm_head.')) lmHead += n;
    else finalNorm += n;
  }
  const blocksTotal = blocks.reduce((s, b) => s + b.total, 0);
  return { total: embeddings + lmHead + finalNorm + blocksTotal, embeddings, lmHead, finalNorm, blocks, blocksTotal };
}

export interface SplitParams {
  /** Blocks [0, l). */
  bottom: number;
  /** Blocks [l, L - r): what the emulator compresses. */
  middle: number;
  /** Blocks [L - r, L). */
  top: number;
  adapters: number;
  /** Embeddings, final norm and LM head (frozen, uncompressed). */
  frozen: number;
  total: number;
}

/**
 * Counts for an adapter split l:r. For an emulator, L is its own block count (the middle is whatever sits
 * between the adapters, however many blocks it kept).
 */
export function splitParamCounts(spec: ModelSpec, l: number, r: number): SplitParams {
  const L = spec.layers.length;
  if (!(Number.isInteger(l) && Number.isInteger(r) && l >= 0 && r >= 0 && l + r <= L)) {
    throw new RangeError(`adapter split ${l}:${r} does not fit a ${L}-block model`);
  }
  const p = paramCounts(spec);
  const sum = (a: number, b: number): number => p.blocks.slice(a, b).reduce((s, x) => s + x.total, 0);
  const bottom = sum(0, l);
  const top = sum(L - r, L);
  const middle = sum(l, L - r);
  const frozen = p.embeddings + p.lmHead + p.finalNorm;
  return { bottom, middle, top, adapters: bottom + top, frozen, total: p.total };
}

/** Fraction of the original middle's parameters an emulator's middle keeps (same split on both). */
export function middleKeptFraction(original: ModelSpec, emulator: ModelSpec, l: number, r: number): number {
  const o = splitParamCounts(original, l, r).middle;
  return o === 0 ? 1 : splitParamCounts(emulator, l, r).middle / o;
}

/** Parses an adapter split "L:R". */
export function parseSplit(s: string): { l: number; r: number } {
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`adapter split must look like 2:2, got '${s}'`);
  return { l: Number(m[1]), r: Number(m[2]) };
}
