/**
 * Inference on exported graphs through onnxruntime: onnxruntime-node in Node (tests, CLI, bench) and
 * onnxruntime-web in the browser (WebGPU EP, WASM fallback). Both implement onnxruntime-common's API, so
 * everything here takes the module as a value and never imports a runtime statically (this file is
 * bundled for the browser; `loadOrt('node')` only resolves onnxruntime-node when called in Node).
 *
 * In the browser, point onnxruntime-web at locally served wasm files before creating a session (see
 * `browser.ts`): transformers.js otherwise fills in a CDN path.
 */
import type { InferenceSession, Tensor as OrtTensorType } from 'onnxruntime-common';
import type { Batch } from '../data/batch';
import type { ModelSpec } from '../model/spec';
import { rowScoresFromLogits, type BatchRowScores } from '../ot/offsite/metrics';
import { cacheNames } from './names';

/** The part of an onnxruntime module (node or web) we use. */
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array, opts?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: new (type: 'int64' | 'float32', data: BigInt64Array | Float32Array, dims: readonly number[]) => OrtTensorType;
}

/** onnxruntime-node (Node only) or onnxruntime-web. */
export async function loadOrt(kind: 'node' | 'web'): Promise<OrtModule> {
  // Specifiers in variables so browser bundles never try to resolve onnxruntime-node.
  const name = kind === 'node' ? 'onnxruntime-node' : 'onnxruntime-web';
  const m = (await import(/* @vite-ignore */ name)) as OrtModule & { default?: OrtModule };
  return m.InferenceSession ? m : (m.default as OrtModule);
}

export interface OrtModelInfo {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
}

export function ortInfoFromSpec(spec: ModelSpec): OrtModelInfo {
  return { numLayers: spec.layers.length, numKvHeads: spec.numKvHeads, headDim: spec.headDim, vocabSize: spec.vocabSize };
}

export interface KvCache {
  /** Cached length (past_sequence_length of the next call). */
  length: number;
  /** present.{i}.key/value of the previous call, keyed by the past_key_values.* input name. */
  tensors: Map<string, OrtTensorType>;
}

export interface ForwardResult {
  /** [B, S, vocab] row-major. */
  logits: Float32Array;
  cache: KvCache;
}

function i64(vals: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(vals.length);
  for (let i = 0; i < vals.length; i++) out[i] = BigInt(vals[i]!);
  return out;
}

/** An exported decoder graph in an onnxruntime session. */
export class OrtDecoder {
  private constructor(
    readonly ort: OrtModule,
    readonly session: InferenceSession,
    readonly info: OrtModelInfo,
  ) {}

  static async create(
    ort: OrtModule,
    model: Uint8Array,
    info: OrtModelInfo,
    opts: InferenceSession.SessionOptions = {},
  ): Promise<OrtDecoder> {
    const session = await ort.InferenceSession.create(model, opts);
    return new OrtDecoder(ort, session, info);
  }

  /**
   * One call of the graph: `ids` [B, S] new tokens after `cache` (none: empty past). Every row must have
   * the same past length; `attentionMask` [B, past + S] defaults to all ones, position ids follow it as
   * transformers.js builds them (cumsum - 1, pads at 1).
   */
  async forward(ids: ArrayLike<number>, B: number, S: number, cache?: KvCache, attentionMask?: ArrayLike<number>): Promise<ForwardResult> {
    const { ort, info } = this;
    if (ids.length !== B * S) throw new RangeError(`OrtDecoder: ${ids.length} ids for B=${B}, S=${S}`);
    const past = cache?.length ?? 0;
    const T = past + S;
    const mask = attentionMask ?? new Array<number>(B * T).fill(1);
    if (mask.length !== B * T) throw new RangeError(`OrtDecoder: attention mask has ${mask.length} entries, want ${B * T}`);
    const pos = new Array<number>(B * S);
    for (let b = 0; b < B; b++) {
      let c = 0;
      for (let t = 0; t < T; t++) {
        c += mask[b * T + t]!;
        if (t >= past) pos[b * S + t - past] = mask[b * T + t] ? c - 1 : 1;
      }
    }
    const feeds: Record<string, OrtTensorType> = {
      input_ids: new ort.Tensor('int64', i64(ids), [B, S]),
      attention_mask: new ort.Tensor('int64', i64(mask), [B, T]),
      position_ids: new ort.Tensor('int64', i64(pos), [B, S]),
    };
    const { past: pastNames, present } = cacheNames(info.numLayers);
    for (const n of pastNames) {
      feeds[n] = cache?.tensors.get(n) ?? new ort.Tensor('float32', new Float32Array(0), [B, info.numKvHeads, 0, info.headDim]);
    }
    const out = await this.session.run(feeds);
    const logits = out.logits!;
    const tensors = new Map<string, OrtTensorType>();
    present.forEach((n, i) => tensors.set(pastNames[i]!, out[n]!));
    const data = (await logits.getData()) as Float32Array;
    return { logits: data, cache: { length: T, tensors } };
  }

  /** Logits [B*T, vocab] of a batch without a cache (what evaluation needs). */
  async logits(ids: ArrayLike<number>, B: number, T: number): Promise<Float32Array> {
    return (await this.forward(ids, B, T)).logits;
  }

  /** A ScoreBatch for src/ot/metrics (evaluateMultipleChoice / evaluatePerplexity). */
  scorer(): (batch: Batch) => Promise<BatchRowScores> {
    return async (batch) => {
      const logits = await this.logits(batch.ids, batch.batchSize, batch.seqLen);
      return rowScoresFromLogits(logits, batch.targets, batch.batchSize, batch.seqLen, this.info.vocabSize);
    };
  }

  /** Greedy decoding with the KV cache: prefill the prompt, then one token per call. */
  async generateGreedy(prompt: ArrayLike<number>, maxNewTokens: number, eosTokenId?: number): Promise<number[]> {
    const V = this.info.vocabSize;
    let r = await this.forward(prompt, 1, prompt.length);
    const out: number[] = [];
    for (let step = 0; step < maxNewTokens; step++) {
      const row = r.logits.subarray(r.logits.length - V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
      out.push(best);
      if (best === eosTokenId || step + 1 === maxNewTokens) break;
      r = await this.forward([best], 1, 1, r.cache);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
