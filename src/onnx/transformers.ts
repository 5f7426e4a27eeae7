/**
 * Text generation with transformers.js from an exported folder held in memory (the files of
 * `exportTransformersJsFolder`), for the studio's "try it" box and for tests. Browser-safe: no Node
 * imports; nothing is fetched. transformers.js is pointed at a custom cache that answers from the Map, its
 * `fetch` is replaced by one that answers 404 for anything else (optional files it probes), remote models
 * and the browser/FS caches are off while loading, and every env setting is restored afterwards.
 *
 * In the browser, call `setOrtWasmPaths` (browser.ts) first so onnxruntime-web loads its wasm from this
 * origin: transformers.js defaults to a CDN.
 */
import type { PreTrainedModel, PreTrainedTokenizer, Tensor } from '@huggingface/transformers';

type TransformersModule = typeof import('@huggingface/transformers');

export interface TjsLoadOptions {
  /** 'webgpu' | 'wasm' in browsers, 'cpu' in Node; default: the library's default for the platform. */
  device?: 'webgpu' | 'wasm' | 'cpu';
}

export interface TjsGenerateOptions extends TjsLoadOptions {
  maxNewTokens: number;
  /** Greedy unless true (then temperature / topK apply). */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  /** Called with each new token id as it is produced. */
  onToken?: (id: number) => void;
}

export interface TjsGenerateResult {
  /** Decoded new text (special tokens skipped). */
  text: string;
  promptTokens: number[];
  /** New token ids only. */
  tokens: number[];
}

export interface LoadedTjsModel {
  model: PreTrainedModel;
  tokenizer: PreTrainedTokenizer;
  tf: TransformersModule;
}

let counter = 0;
/** Loads run one at a time: each swaps transformers.js's global env for its duration. */
let loadChain: Promise<unknown> = Promise.resolve();
const loaded = new WeakMap<Map<string, Uint8Array>, Promise<LoadedTjsModel>>();

function memoryCache(
  id: string,
  files: Map<string, Uint8Array>,
): { match(k: string): Promise<Response | undefined>; put(): Promise<void> } {
  const marker = `${id}/`;
  return {
    async match(key: string) {
      const at = key.indexOf(marker);
      if (at < 0) return undefined;
      let rest = key.slice(at + marker.length);
      rest = rest.replace(/^resolve\/[^/]+\//, ''); // remote-style keys: {id}/resolve/{revision}/{file}
      const bytes = files.get(rest);
      if (!bytes) return undefined;
      return new Response(bytes as unknown as BodyInit, { status: 200, headers: { 'content-length': String(bytes.byteLength) } });
    },
    async put() {
      // never store anything: the files are already in memory
    },
  };
}

/** Loads (once per Map) the tokenizer and causal LM from in-memory files. */
export function loadTransformersJsModel(files: Map<string, Uint8Array>, opts: TjsLoadOptions = {}): Promise<LoadedTjsModel> {
  const hit = loaded.get(files);
  if (hit) return hit;
  const load = async (): Promise<LoadedTjsModel> => {
    for (const f of ['config.json', 'onnx/model.onnx'])
      if (!files.has(f)) throw new Error(`generateWithTransformersJs: missing ${f} in the exported files`);
    if (!files.has('tokenizer.json')) throw new Error('generateWithTransformersJs: missing tokenizer.json in the exported files');
    // transformers.js requires tokenizer_config.json; an empty one means "everything from tokenizer.json".
    const served = files.has('tokenizer_config.json')
      ? files
      : new Map([...files, ['tokenizer_config.json', new TextEncoder().encode('{}')]]);
    const tf = await import('@huggingface/transformers');
    const env = tf.env as unknown as Record<string, unknown>;
    const keys = [
      'allowRemoteModels',
      'allowLocalModels',
      'useCustomCache',
      'customCache',
      'useBrowserCache',
      'useFSCache',
      'useFS',
      'fetch',
      'useWasmCache',
    ];
    const saved = Object.fromEntries(keys.map((k) => [k, env[k]]));
    const id = `gradot-mem-${++counter}`;
    Object.assign(env, {
      allowRemoteModels: false,
      allowLocalModels: true,
      useCustomCache: true,
      customCache: memoryCache(id, served),
      useBrowserCache: false,
      useFSCache: false,
      useFS: false,
      useWasmCache: false,
      fetch: async () => new Response(null, { status: 404 }),
    });
    try {
      const tokenizer = await tf.AutoTokenizer.from_pretrained(id, { local_files_only: true });
      const model = await tf.AutoModelForCausalLM.from_pretrained(id, {
        local_files_only: true,
        dtype: 'fp32',
        ...(opts.device ? { device: opts.device } : {}),
      });
      return { model, tokenizer, tf };
    } finally {
      // Restore the caller's settings, except that remote loading stays off: a local load must never
      // leave transformers.js able to fetch models from the hub (the library's default is on).
      Object.assign(env, saved, { allowRemoteModels: false });
    }
  };
  const p = loadChain.then(load, load);
  loadChain = p.catch(() => undefined);
  loaded.set(files, p);
  p.catch(() => loaded.delete(files));
  return p;
}

/**
 * Generates a continuation of `prompt` (text, or token ids) with transformers.js running the exported
 * ONNX graph; greedy by default.
 */
export async function generateWithTransformersJs(
  files: Map<string, Uint8Array>,
  prompt: string | readonly number[],
  opts: TjsGenerateOptions,
): Promise<TjsGenerateResult> {
  const { model, tokenizer, tf } = await loadTransformersJsModel(files, opts);
  let inputIds: Tensor;
  let attentionMask: Tensor;
  if (typeof prompt === 'string') {
    const enc = tokenizer(prompt) as { input_ids: Tensor; attention_mask: Tensor };
    inputIds = enc.input_ids;
    attentionMask = enc.attention_mask;
  } else {
    if (prompt.length === 0) throw new RangeError('generateWithTransformersJs: empty prompt');
    inputIds = new tf.Tensor(
      'int64',
      BigInt64Array.from(prompt, (v) => BigInt(v)),
      [1, prompt.length],
    );
    attentionMask = new tf.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
  }
  const promptTokens = Array.from(inputIds.data as BigInt64Array, Number);
  class TokenStreamer extends tf.BaseStreamer {
    first = true;
    override put(value: bigint[][]): void {
      if (this.first) {
        this.first = false; // the prompt
        return;
      }
      for (const id of value[0] ?? []) opts.onToken?.(Number(id));
    }
    override end(): void {}
  }
  const out = (await model.generate({
    input_ids: inputIds,
    attention_mask: attentionMask,
    max_new_tokens: opts.maxNewTokens,
    do_sample: opts.doSample ?? false,
    ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
    ...(opts.topK !== undefined ? { top_k: opts.topK } : {}),
    ...(opts.onToken ? { streamer: new TokenStreamer() } : {}),
  } as Parameters<PreTrainedModel['generate']>[0])) as Tensor;
  const all = Array.from(out.data as BigInt64Array, Number);
  const tokens = all.slice(promptTokens.length);
  return { text: tokenizer.decode(tokens, { skip_special_tokens: true }), promptTokens, tokens };
}
