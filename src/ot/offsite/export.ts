/**
 * Adapter export and loading.
 *
 * Every adapter: `adapter.safetensors` — the dense tensors the adapter changes, under the BASE model's own
 * Hugging Face names and layer indices (the source blocks; e.g. `model.layers.7.self_attn.q_proj.weight`),
 * only adapter-block tensors — plus `adapter.json` (base model id and hash, split, method, LoRA config,
 * the source blocks). For LoRA the dense tensors are the merged linears W + (alpha/r)·B·A.
 *
 * LoRA also in PEFT's layout: `adapter_config.json` (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha,
 * lora_dropout, target_modules as HF module names, layers_to_transform, bias none, fan_in_fan_out for
 * GPT-2's Conv1D) and `adapter_model.safetensors` with `base_model.model.<module>.lora_A.weight` [r, in] and
 * `.lora_B.weight` [out, r] — what `PeftModel.from_pretrained(base, dir)` loads. GPT-2's c_attn LoRA has
 * one A and B = [B_q; B_k; B_v] (out = 3·d).
 *
 * `adapter.json` is written last by the CLI: a folder without it is not an adapter.
 */
import type { Backend } from '../../engine/backend';
import { canonicalToHF, fromHFWeights, toHFWeights } from '../../model/hf';
import { ModelFormatError, ShapeMismatchError } from '../../model/errors';
import { parseSafetensors, serializeSafetensors } from '../../model/safetensors';
import type { ModelSource } from '../../model/source';
import type { Family, ModelSpec } from '../../model/spec';
import type { HostTensor, WeightMap } from '../../model/weights';
import { loraAName, loraBName, loraModules, type LoraConfig, type LoraModule } from './lora';
import { blockMapFor, denseAdapterWeights } from './plugin';
import { renameBlock, type Split } from '../emulator/split';
import type { TrainedAdapter, TuneMethod } from './tune';

export const ADAPTER_FORMAT = 'gradot-adapter';
export const ADAPTER_JSON = 'adapter.json';
export const ADAPTER_WEIGHTS = 'adapter.safetensors';
export const PEFT_CONFIG = 'adapter_config.json';
export const PEFT_WEIGHTS = 'adapter_model.safetensors';

export interface AdapterMeta {
  format: typeof ADAPTER_FORMAT;
  version: 1;
  method: TuneMethod;
  split: Split;
  baseModel: { modelId: string; sha256: string | null; numLayers: number; family: Family; modelType: string };
  /** Source (base-model) indices of the adapter blocks. */
  blocks: number[];
  lora?: LoraConfig;
  /** Free-form provenance (emulator method/keep, training summary). */
  info?: Record<string, unknown>;
  files: string[];
}

export interface BaseModelInfo {
  /** The full model, or an emulator of it (its adapter blocks are the full model's; names use sources). */
  spec: ModelSpec;
  /** Canonical weights of that model: LoRA merges into its adapter-block linears. */
  weights: WeightMap;
  modelId: string;
  sha256?: string | null;
  /** Block count of the full model (default spec's). */
  numLayers?: number;
}

const enc = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o, null, 2) + '\n');

/** The HF module path of a LoRA module in the base model (no `.weight`). */
function hfModule(family: Family, m: LoraModule, source: number): string {
  const hf = canonicalToHF(family, `${m.linears[0]}.weight`, { layerIndex: () => source }).hf;
  return hf.replace(/\.weight$/, '');
}

/** PEFT target_modules entry for a module path: its last component, or the last two where the last is ambiguous (GPT-2's c_proj). */
function targetName(family: Family, module: string): string {
  const parts = module.split('.');
  const last = parts[parts.length - 1]!;
  return family === 'gpt2' && last === 'c_proj' ? parts.slice(-2).join('.') : last;
}

const LAYERS_PATTERN: Record<Family, string> = { gpt2: 'h', opt: 'layers', llama: 'layers' };

function f32(shape: number[], data: Float32Array): HostTensor {
  return { dtype: 'F32', shape, data };
}

function concatRows(parts: HostTensor[]): HostTensor {
  const cols = parts[0]!.shape[1]!;
  const rows = parts.reduce((s, p) => s + p.shape[0]!, 0);
  const data = new Float32Array(rows * cols);
  let o = 0;
  for (const p of parts) {
    data.set(p.data, o);
    o += p.data.length;
  }
  return f32([rows, cols], data);
}

/** PEFT files for a LoRA adapter (module paths in the base model's naming). */
export function peftFiles(adapter: TrainedAdapter, base: { spec: ModelSpec; modelId: string }): Map<string, Uint8Array> {
  if (adapter.method !== 'lora' || !adapter.lora) throw new Error('PEFT export needs a LoRA adapter');
  const spec = base.spec;
  const family = spec.family;
  // Work in the base model's indexing (adapter blocks are dense, so their shapes are the base model's).
  const map = blockMapFor(adapter, spec);
  const mods = loraModules(
    spec,
    adapter.blocks.map((b) => map.get(b)!),
    adapter.lora,
  );
  const weights: WeightMap = new Map();
  for (const [name, t] of adapter.weights) weights.set(renameBlock(name, map), t);
  const tensors: WeightMap = new Map();
  const targets = new Set<string>();
  for (const m of mods) {
    const module = hfModule(family, m, spec.layers[m.layer]!.source);
    targets.add(targetName(family, module));
    const A = weights.get(loraAName(m));
    if (!A) throw new Error(`PEFT export: missing ${loraAName(m)}`);
    const Bs = m.linears.map((_, i) => {
      const B = weights.get(loraBName(m, i));
      if (!B) throw new Error(`PEFT export: missing ${loraBName(m, i)}`);
      return B;
    });
    tensors.set(`base_model.model.${module}.lora_A.weight`, f32([...A.shape], A.data));
    tensors.set(`base_model.model.${module}.lora_B.weight`, Bs.length === 1 ? f32([...Bs[0]!.shape], Bs[0]!.data) : concatRows(Bs));
  }
  const config = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: base.modelId,
    bias: 'none',
    fan_in_fan_out: family === 'gpt2',
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: LAYERS_PATTERN[family],
    layers_to_transform: [...new Set(adapter.blockSources)].sort((a, b) => a - b),
    lora_alpha: adapter.lora.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: adapter.lora.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...targets].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
  return new Map([
    [PEFT_WEIGHTS, serializeSafetensors(tensors, { dtype: 'F32', metadata: { format: 'pt' } })],
    [PEFT_CONFIG, enc(config)],
  ]);
}

/**
 * All export files of an adapter. `adapter.json` is last in the map (write in order: a crash before it
 * leaves no adapter.json, so no half-written folder passes for an adapter).
 */
export async function exportAdapter(
  adapter: TrainedAdapter,
  base: BaseModelInfo,
  o: { info?: Record<string, unknown>; backend?: Backend } = {},
): Promise<Map<string, Uint8Array>> {
  const dense = await denseAdapterWeights(adapter, base.spec, base.weights, o.backend);
  const files = new Map<string, Uint8Array>();
  // HF layer indices are the base model's: the source block of each of `base.spec`'s blocks (identity for
  // the full model; the original indices when exporting against the emulator, as a data owner does).
  const hf = toHFWeights(base.spec, dense, { layerIndex: (i) => base.spec.layers[i]!.source });
  files.set(ADAPTER_WEIGHTS, serializeSafetensors(hf, { dtype: 'F32', metadata: { format: 'pt' } }));
  if (adapter.method === 'lora') for (const [k, v] of peftFiles(adapter, base)) files.set(k, v);
  const meta: AdapterMeta = {
    format: ADAPTER_FORMAT,
    version: 1,
    method: adapter.method,
    split: { ...adapter.split },
    baseModel: {
      modelId: base.modelId,
      sha256: base.sha256 ?? null,
      numLayers: base.numLayers ?? base.spec.layers.length,
      family: base.spec.family,
      modelType: base.spec.modelType,
    },
    blocks: [...adapter.blockSources],
    ...(adapter.lora ? { lora: adapter.lora } : {}),
    ...(o.info ? { info: o.info } : {}),
    files: [...files.keys(), ADAPTER_JSON].sort(),
  };
  files.set(ADAPTER_JSON, enc(meta));
  return files;
}

export async function readAdapterMeta(src: ModelSource): Promise<AdapterMeta> {
  if (!(await src.has(ADAPTER_JSON))) {
    throw new Error(`${src.label}: no ${ADAPTER_JSON} (not a GradOT adapter folder, or an export that did not finish)`);
  }
  let meta: AdapterMeta;
  try {
    meta = JSON.parse(await src.readText(ADAPTER_JSON)) as AdapterMeta;
  } catch (e) {
    throw new Error(`${src.label}/${ADAPTER_JSON}: invalid JSON (${(e as Error).message})`);
  }
  if (meta?.format !== ADAPTER_FORMAT) throw new Error(`${src.label}/${ADAPTER_JSON}: not a GradOT adapter`);
  return meta;
}

/**
 * Loads `adapter.safetensors` for a model (the full model or an emulator of it): HF layer indices are the
 * base model's, mapped to the model's own blocks through `LayerSpec.source`. The result is a dense
 * ('adapter' method) TrainedAdapter in that model's indexing, ready for `applyAdapter` / `plugIn`.
 */
export async function loadAdapter(src: ModelSource, spec: ModelSpec): Promise<{ meta: AdapterMeta; adapter: TrainedAdapter }> {
  const meta = await readAdapterMeta(src);
  if (meta.baseModel.family !== spec.family) throw new Error(`adapter is for a ${meta.baseModel.family} model, this one is ${spec.family}`);
  const { tensors } = parseSafetensors(await src.readBytes(ADAPTER_WEIGHTS), ADAPTER_WEIGHTS);
  const indexOf = (source: number): number => {
    const i = spec.layers.findIndex((l) => l.source === source);
    if (i < 0)
      throw new Error(
        `adapter block ${source} is not a block of this model (it keeps sources ${spec.layers.map((l) => l.source).join(', ')})`,
      );
    return i;
  };
  const { weights, ignored } = fromHFWeights(spec, tensors, { layerIndex: indexOf, file: ADAPTER_WEIGHTS });
  if (ignored.length) throw new Error(`${ADAPTER_WEIGHTS}: tensors that are not model tensors: ${ignored.slice(0, 5).join(', ')}`);
  const blocks = meta.blocks.map(indexOf);
  for (const name of weights.keys()) {
    const b = Number(/^layers\.(\d+)\./.exec(name)?.[1] ?? NaN);
    if (!blocks.includes(b)) throw new Error(`${ADAPTER_WEIGHTS}: ${name} is outside the adapter blocks`);
  }
  return {
    meta,
    adapter: { method: 'adapter', split: meta.split, blocks, blockSources: [...meta.blocks], numLayers: spec.layers.length, weights },
  };
}

/** adapter_config.json, as far as we read it. */
interface PeftConfig {
  peft_type?: unknown;
  r?: unknown;
  lora_alpha?: unknown;
  target_modules?: unknown;
  layers_to_transform?: unknown;
  use_dora?: unknown;
  use_rslora?: unknown;
  rank_pattern?: unknown;
  alpha_pattern?: unknown;
  base_model_name_or_path?: unknown;
}

function peftErr(file: string, msg: string, tensor?: string): ModelFormatError {
  return new ModelFormatError(msg, file, tensor);
}

/**
 * Reads and VALIDATES a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) for `spec` (the
 * full model): peft_type LORA, a positive rank, target modules that exist in this architecture, layers in
 * range, and every tensor a lora_A [r, in] / lora_B [out, r] pair of an existing module with the config's
 * rank. Each problem is a named error naming the file (and tensor).
 */
export async function loadPeftAdapter(src: ModelSource, spec: ModelSpec, split?: Split): Promise<TrainedAdapter> {
  let cfg: PeftConfig;
  try {
    cfg = JSON.parse(await src.readText(PEFT_CONFIG)) as PeftConfig;
  } catch (e) {
    throw peftErr(PEFT_CONFIG, `invalid JSON (${(e as Error).message})`);
  }
  if (cfg === null || typeof cfg !== 'object') throw peftErr(PEFT_CONFIG, 'not a JSON object');
  if (cfg.peft_type !== 'LORA') throw peftErr(PEFT_CONFIG, `peft_type ${JSON.stringify(cfg.peft_type)} is not LORA`);
  const r = cfg.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1)
    throw peftErr(PEFT_CONFIG, `'r' must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = cfg.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha))
    throw peftErr(PEFT_CONFIG, `'lora_alpha' must be a positive number, got ${JSON.stringify(alpha)}`);
  if (cfg.use_dora === true) throw peftErr(PEFT_CONFIG, 'use_dora = true (DoRA) is not supported');
  if (cfg.use_rslora === true) throw peftErr(PEFT_CONFIG, 'use_rslora = true (rank-stabilised scaling) is not supported');
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = cfg[k];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw peftErr(PEFT_CONFIG, `per-module ${k} is not supported`);
  }
  const L = spec.layers.length;
  let layers: number[];
  if (cfg.layers_to_transform === undefined || cfg.layers_to_transform === null) layers = spec.layers.map((l) => l.source);
  else {
    const raw = typeof cfg.layers_to_transform === 'number' ? [cfg.layers_to_transform] : cfg.layers_to_transform;
    if (!Array.isArray(raw) || !raw.every((x) => Number.isInteger(x)))
      throw peftErr(PEFT_CONFIG, "'layers_to_transform' must be a list of layer indices");
    layers = [...new Set(raw as number[])].sort((a, b) => a - b);
  }
  const blocks = layers.map((s) => {
    const i = spec.layers.findIndex((l) => l.source === s);
    if (i < 0) throw peftErr(PEFT_CONFIG, `layers_to_transform names layer ${s}, but the model has layers 0..${L - 1}`);
    return i;
  });
  // Every module LoRA could target in these layers, by its HF path.
  const allTargets = (
    spec.gatedMlp ? ['q', 'k', 'v', 'o', 'up', 'gate', 'down'] : ['q', 'k', 'v', 'o', 'up', 'down']
  ) as LoraConfig['targets'];
  const all = loraModules({ ...spec }, blocks, { r: 1, alpha: 1, targets: allTargets });
  const byModule = new Map(all.map((m) => [hfModule(spec.family, m, spec.layers[m.layer]!.source), m]));
  const known = new Set([...byModule.keys()].map((k) => targetName(spec.family, k)));
  const tm = cfg.target_modules;
  if (Array.isArray(tm)) {
    for (const t of tm) {
      if (typeof t !== 'string') throw peftErr(PEFT_CONFIG, "'target_modules' must be a list of module names");
      if (![...byModule.keys()].some((k) => k === t || k.endsWith(`.${t}`))) {
        throw peftErr(
          PEFT_CONFIG,
          `target module '${t}' does not exist in this ${spec.modelType} model (it has ${[...known].sort().join(', ')})`,
        );
      }
    }
  } else if (typeof tm === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${tm})$`);
    } catch {
      throw peftErr(PEFT_CONFIG, `'target_modules' ${JSON.stringify(tm)} is not a valid regular expression`);
    }
    if (![...byModule.keys()].some((k) => re.test(k)))
      throw peftErr(PEFT_CONFIG, `target_modules ${JSON.stringify(tm)} matches no module of this ${spec.modelType} model`);
  } else if (tm !== undefined && tm !== null)
    throw peftErr(PEFT_CONFIG, "'target_modules' must be a list of names or a regular expression");
  if (!(await src.has(PEFT_WEIGHTS))) throw peftErr(PEFT_WEIGHTS, `missing next to ${PEFT_CONFIG}`);
  const { tensors } = parseSafetensors(await src.readBytes(PEFT_WEIGHTS), PEFT_WEIGHTS);
  const pairs = new Map<string, { A?: HostTensor; B?: HostTensor }>();
  for (const [name, t] of tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m) throw peftErr(PEFT_WEIGHTS, 'not a LoRA tensor (expected base_model.model.<module>.lora_A/lora_B.weight)', name);
    if (!byModule.has(m[1]!)) {
      throw peftErr(
        PEFT_WEIGHTS,
        `targets module '${m[1]}', which this ${spec.modelType} model (layers ${layers.join(', ')}) does not have`,
        name,
      );
    }
    const p = pairs.get(m[1]!) ?? {};
    p[m[2] as 'A' | 'B'] = t;
    pairs.set(m[1]!, p);
  }
  if (pairs.size === 0) throw peftErr(PEFT_WEIGHTS, 'holds no LoRA tensors');
  const weights: WeightMap = new Map();
  const present: LoraModule[] = [];
  for (const [module, { A, B }] of pairs) {
    const mod = byModule.get(module)!;
    if (!A || !B) throw peftErr(PEFT_WEIGHTS, `module ${module} has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
    const out = mod.outFeatures.reduce((a, b) => a + b, 0);
    if (A.shape.length !== 2 || A.shape[0] !== r || A.shape[1] !== mod.inFeatures) {
      throw new ShapeMismatchError(
        PEFT_WEIGHTS,
        `base_model.model.${module}.lora_A.weight`,
        [r, mod.inFeatures],
        A.shape,
        `rank r=${r} from ${PEFT_CONFIG}`,
      );
    }
    if (B.shape.length !== 2 || B.shape[0] !== out || B.shape[1] !== r) {
      throw new ShapeMismatchError(
        PEFT_WEIGHTS,
        `base_model.model.${module}.lora_B.weight`,
        [out, r],
        B.shape,
        `rank r=${r} from ${PEFT_CONFIG}`,
      );
    }
    present.push(mod);
    weights.set(loraAName(mod), A);
    let row = 0;
    mod.outFeatures.forEach((o, i) => {
      weights.set(loraBName(mod, i), f32([o, r], B.data.slice(row * r, (row + o) * r)));
      row += o;
    });
  }
  const targets = [...new Set(present.flatMap((m) => m.linears.map((l) => l.split('.').pop()!)))] as LoraConfig['targets'];
  const lora: LoraConfig = { r, alpha, dropout: 0, targets };
  // Every module of every transformed layer with these targets must be present (a LoRA module set is uniform).
  const expected = loraModules(spec, blocks, lora);
  for (const m of expected) {
    if (!weights.has(loraAName(m)))
      throw peftErr(PEFT_WEIGHTS, `missing the LoRA pair of ${hfModule(spec.family, m, spec.layers[m.layer]!.source)}`);
  }
  let bottom = 0;
  while (bottom < blocks.length && blocks[bottom] === bottom) bottom++;
  const rest = blocks.slice(bottom);
  const sp: Split = split ?? { bottom, top: rest.length ? L - rest[0]! : 0 };
  return { method: 'lora', split: sp, blocks, blockSources: blocks.map((b) => spec.layers[b]!.source), numLayers: L, weights, lora };
}

/**
 * An adapter folder of either kind: GradOT's (adapter.json) or a PEFT LoRA folder alone (adapter_config.json +
 * adapter_model.safetensors, e.g. from PEFT's save_pretrained). PEFT files next to adapter.json are
 * validated too, so a folder whose two descriptions disagree is refused.
 */
export async function loadAdapterFolder(
  src: ModelSource,
  spec: ModelSpec,
): Promise<{ meta: AdapterMeta; adapter: TrainedAdapter; kind: 'gradot' | 'peft' }> {
  const hasPeft = await src.has(PEFT_CONFIG);
  if (await src.has(ADAPTER_JSON)) {
    const r = await loadAdapter(src, spec);
    if (hasPeft && r.meta.method === 'lora' && spec.layers.every((l, i) => l.source === i)) await loadPeftAdapter(src, spec, r.meta.split);
    return { ...r, kind: 'gradot' };
  }
  if (!hasPeft) {
    throw new Error(`${src.label}: neither ${ADAPTER_JSON} (a GradOT adapter) nor ${PEFT_CONFIG} (a PEFT LoRA adapter)`);
  }
  const adapter = await loadPeftAdapter(src, spec);
  const cfg = JSON.parse(await src.readText(PEFT_CONFIG)) as PeftConfig;
  const meta: AdapterMeta = {
    format: ADAPTER_FORMAT,
    version: 1,
    method: 'lora',
    split: adapter.split,
    baseModel: {
      modelId: typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : '(PEFT adapter)',
      sha256: null,
      numLayers: spec.layers.length,
      family: spec.family,
      modelType: spec.modelType,
    },
    blocks: [...adapter.blockSources],
    lora: adapter.lora,
    files: [PEFT_CONFIG, PEFT_WEIGHTS],
  };
  return { meta, adapter, kind: 'peft' };
}
