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
  const mods = loraModules(spec, adapter.blocks.map((b) => map.get(b)!), adapter.lora);
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
  adapter: TrainedAdapter, base: BaseModelInfo, o: { info?: Record<string, unknown>; backend?: Backend } = {},
): Promise<Map<string, Uint8Array>> {
  const dense = await denseAdapterWeights(adapter, base.spec, base.weights, o.backend);
  const files = new Map<string, Uint8Array>();
  // HF layer indices are the base model's: the source block of each of `base.spec`'s blocks (identity for
  // the full model; the original indices when exporting against the emulator, as a data owner does).
  const hf = toHFWeights(base.spec, dense, { layerIndex: (i) => base.spec.layers[i]!.source });
  files.set(ADAPTER_WEIGHTS, serializeSafetensors(hf, { dtype: 'F32', metadata: { format: 'pt' } }));
  if (adapter.method === 'lora') for (const [k, v] of peftFiles(adapter, base)) files.set(k, v);
  const meta: AdapterMeta = {
    format: ADAPTER_FORMAT, version: 1, method: adapter.method, split: { ...adapter.split },
    baseModel: {
      modelId: base.modelId, sha256: base.sha256 ?? null, numLayers: base.numLayers ?? base.spec.layers.length, family: base.spec.family, modelType: base.spec.modelType,
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
    if (i < 0) throw new Error(`adapter block ${source} is not a block of this model (it keeps sources ${spec.layers.map((l) => l.source).join(', ')})`);
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

/** Reads a PEFT LoRA folder written by `peftFiles` back into a LoRA TrainedAdapter for `spec` (full model). */
export async function loadPeftAdapter(src: ModelSource, spec: ModelSpec, split: Split): Promise<TrainedAdapter> {
  const cfg = JSON.parse(await src.readText(PEFT_CONFIG)) as { r: number; lora_alpha: number; layers_to_transform: number[]; peft_type: string };
  if (cfg.peft_type !== 'LORA') throw new Error(`${PEFT_CONFIG}: peft_type ${cfg.peft_type} is not LORA`);
  const { tensors } = parseSafetensors(await src.readBytes(PEFT_WEIGHTS), PEFT_WEIGHTS);
  const family = spec.family;
  const blocks = cfg.layers_to_transform.map((s) => spec.layers.findIndex((l) => l.source === s));
  // Recover targets from module names.
  const all = loraModules(spec, blocks, { r: cfg.r, alpha: cfg.lora_alpha, targets: spec.gatedMlp ? ['q', 'k', 'v', 'o', 'up', 'gate', 'down'] : ['q', 'k', 'v', 'o', 'up', 'down'] });
  const present = all.filter((m) => tensors.has(`base_model.model.${hfModule(family, m, spec.layers[m.layer]!.source)}.lora_A.weight`));
  const targets = [...new Set(present.flatMap((m) => m.linears.map((l) => l.split('.').pop()!)))] as LoraConfig['targets'];
  const lora: LoraConfig = { r: cfg.r, alpha: cfg.lora_alpha, dropout: 0, targets };
  const weights: WeightMap = new Map();
  for (const m of present) {
    const module = `base_model.model.${hfModule(family, m, spec.layers[m.layer]!.source)}`;
    weights.set(loraAName(m), tensors.get(`${module}.lora_A.weight`)!);
    const B = tensors.get(`${module}.lora_B.weight`)!;
    let row = 0;
    m.outFeatures.forEach((o, i) => {
      const cols = B.shape[1]!;
      weights.set(loraBName(m, i), f32([o, cols], B.data.slice(row * cols, (row + o) * cols)));
      row += o;
    });
  }
  return { method: 'lora', split, blocks, blockSources: blocks.map((b) => spec.layers[b]!.source), numLayers: spec.layers.length, weights, lora };
}
