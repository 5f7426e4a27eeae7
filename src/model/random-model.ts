/**
 * Deterministic random models for tests, demos and benchmarks: GPT-2-style init (N(0, 0.02), residual
 * output projections scaled by 1/sqrt(2L), norms at 1/0, biases 0) from a seeded PRNG, so every test that
 * needs "a model" gets the same one on every machine.
 */

import { mulberry32 } from '../engine/random';
import { canonicalShapes, saveHFModel, type SaveHFOptions } from './hf';
import { denseLayers, type ModelSpec } from './spec';
import type { HostTensor, WeightMap } from './weights';
import { numel } from './weights';

export { mulberry32 };

/** Standard normal sampler (Box-Muller) over a seeded uniform source. */
export function gaussian(seed: number): () => number {
  const u = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let a = u();
    while (a <= 1e-12) a = u();
    const b = u();
    const r = Math.sqrt(-2 * Math.log(a));
    spare = r * Math.sin(2 * Math.PI * b);
    return r * Math.cos(2 * Math.PI * b);
  };
}

export interface RandomModelOptions {
  /** Std of weight matrices (default 0.02, GPT-2's). */
  std?: number;
  /** Std of noise added to norm weights (around 1) and biases (around 0). Default 0: GPT-2 init exactly. */
  normJitter?: number;
  /** Std of bias entries. Default 0. */
  biasStd?: number;
}

/** Canonical weights for `spec`, deterministic in `seed`. Low-rank linears get factors whose product has std ≈ `std`. */
export function randomModel(spec: ModelSpec, seed: number, opts: RandomModelOptions = {}): WeightMap {
  const std = opts.std ?? 0.02;
  const jitter = opts.normJitter ?? 0;
  const biasStd = opts.biasStd ?? 0;
  const residStd = std / Math.sqrt(2 * Math.max(1, spec.layers.length));
  const g = gaussian(seed);
  const out: WeightMap = new Map();
  for (const [name, shape] of canonicalShapes(spec)) {
    const n = numel(shape);
    const data = new Float32Array(n);
    const isNorm = /(^|\.)(ln1|ln2|norm)\.(weight|bias)$/.test(name);
    if (isNorm) {
      const base = name.endsWith('.weight') ? 1 : 0;
      for (let i = 0; i < n; i++) data[i] = base + jitter * g();
    } else if (name.endsWith('.bias')) {
      for (let i = 0; i < n; i++) data[i] = biasStd * g();
    } else {
      const resid = /\.(attn\.o|mlp\.down)\.weight/.test(name);
      let s = resid ? residStd : std;
      if (name.endsWith('.weight_a') || name.endsWith('.weight_b')) {
        // entries of A·B sum `rank` products: give each factor std sqrt(s / sqrt(rank)).
        const rank = name.endsWith('.weight_a') ? shape[1]! : shape[0]!;
        s = Math.sqrt(s / Math.sqrt(rank));
      }
      for (let i = 0; i < n; i++) data[i] = s * g();
    }
    out.set(name, { dtype: 'F32', shape: [...shape], data } satisfies HostTensor);
  }
  return out;
}

/** randomModel with non-trivial norms and biases, so gradients through them are not degenerate in tests. */
export function randomTestModel(spec: ModelSpec, seed: number): WeightMap {
  return randomModel(spec, seed, { std: 0.05, normJitter: 0.1, biasStd: 0.02 });
}

export type SmallFamily = 'gpt2' | 'opt' | 'llama' | 'qwen2' | 'mistral';

export interface SmallSpecOverrides extends Partial<ModelSpec> {
  numLayers?: number;
}

/** A tiny spec of each family for tests: 2 layers, d=32, 4 heads, vocab 64, 32 positions. */
export function smallSpec(family: SmallFamily, overrides: SmallSpecOverrides = {}): ModelSpec {
  const { numLayers: nl = 2, ...rest } = overrides;
  const d = rest.hiddenSize ?? 32;
  const h = rest.numHeads ?? 4;
  let base: ModelSpec;
  if (family === 'gpt2' || family === 'opt') {
    base = {
      family,
      modelType: family,
      vocabSize: 64,
      hiddenSize: d,
      numHeads: h,
      numKvHeads: h,
      headDim: d / h,
      intermediateSize: 4 * d,
      maxPositions: 32,
      norm: 'layernorm',
      normEps: 1e-5,
      activation: family === 'gpt2' ? 'gelu_tanh' : 'relu',
      gatedMlp: false,
      positions: 'learned',
      positionOffset: family === 'opt' ? 2 : 0,
      ropeTheta: 0,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      tieWordEmbeddings: true,
      layers: [],
    };
  } else {
    base = {
      family: 'llama',
      modelType: family,
      vocabSize: 64,
      hiddenSize: d,
      numHeads: h,
      numKvHeads: Math.max(1, h / 2),
      headDim: d / h,
      intermediateSize: 2 * d,
      maxPositions: 32,
      norm: 'rmsnorm',
      normEps: 1e-6,
      activation: 'silu',
      gatedMlp: true,
      positions: 'rope',
      positionOffset: 0,
      ropeTheta: family === 'qwen2' ? 1_000_000 : 10_000,
      qkvBias: family === 'qwen2',
      oBias: false,
      mlpBias: false,
      tieWordEmbeddings: family === 'qwen2',
      layers: [],
    };
  }
  const spec: ModelSpec = { ...base, ...rest };
  if (rest.headDim === undefined && (rest.hiddenSize !== undefined || rest.numHeads !== undefined))
    spec.headDim = spec.hiddenSize / spec.numHeads;
  if (rest.layers === undefined) spec.layers = denseLayers(nl, spec.intermediateSize);
  return spec;
}

/** Writes an HF folder (config.json + model.safetensors, HF names) for `spec`/`weights`. Node only. */
export async function writeHFFolder(
  dir: string,
  spec: ModelSpec,
  weights: WeightMap,
  opts: SaveHFOptions & { extraFiles?: Record<string, string | Uint8Array> } = {},
): Promise<string[]> {
  // Specifiers in variables: this module is also bundled for browser workers, which must not resolve `fs`.
  const fsName = 'node:fs/promises';
  const pathName = 'node:path';
  const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises');
  const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
  await fs.mkdir(dir, { recursive: true });
  const files = saveHFModel(spec, weights, opts);
  for (const [k, v] of Object.entries(opts.extraFiles ?? {})) files.set(k, typeof v === 'string' ? new TextEncoder().encode(v) : v);
  for (const [name, bytes] of files) await fs.writeFile(path.join(dir, name), bytes);
  return [...files.keys()].sort();
}
