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

export interface TokenizerOptions {
  /** Opt-in only; the loader never fetches anything itself either way. */
  allowRemote?: boolean;
}

type TransformersModule = typeof import('@huggingface/transformers');
let modP: Promise<TransformersModule> | null = null;

async function transformers(opts: TokenizerOptions): Promise<TransformersModule> {
  modP ??= import('@huggingface/transformers');
  const m = await modP;
  m.env.allowRemoteModels = opts.allowRemote ?? false;
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
  constructor(readonly inner: PreTrainedTokenizer, json: Record<string, unknown>) {
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
  opts: TokenizerOptions = {},
): Promise<Tokenizer> {
  const m = await transformers(opts);
  // Same class choice as AutoTokenizer.from_pretrained, minus the file loading.
  const clsName = typeof tokenizerConfig.tokenizer_class === 'string' ? tokenizerConfig.tokenizer_class.replace(/Fast$/, '') : 'PreTrainedTokenizer';
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

/** Loads tokenizer.json (+ tokenizer_config.json when present) from a model folder. */
export async function loadTokenizer(source: ModelSource, opts: TokenizerOptions = {}): Promise<Tokenizer> {
  if (!(await source.has('tokenizer.json'))) {
    throw new ModelFormatError(`no tokenizer.json in ${source.label} (only the fast-tokenizer JSON format is supported)`, 'tokenizer.json');
  }
  const json = await readJsonObject(source, 'tokenizer.json');
  const config = (await source.has('tokenizer_config.json')) ? await readJsonObject(source, 'tokenizer_config.json') : {};
  return tokenizerFromJSON(json, config, opts);
}
