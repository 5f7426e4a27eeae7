/**
 * The model owner's last step as a job: a returned adapter folder is checked against the full model (its
 * family and block count; optionally the weights hash it was trained against) and put into it.
 */
import type { Backend } from '../engine/backend';
import type { ModelSource } from '../model/source';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import { weightsSha256 } from '../ot/emulator/package';
import { loadAdapterFolder, type AdapterMeta } from '../ot/offsite/export';
import { denseAdapterWeights, plugIn } from '../ot/offsite/plugin';
import type { Decoder } from '../model/decoder';
import type { TrainedAdapter } from '../ot/offsite/tune';

export interface PlugInJobOutput {
  spec: ModelSpec;
  weights: WeightMap;
  /** Tensors of the full model the adapter replaced. */
  replaced: string[];
  meta: AdapterMeta;
  adapter: TrainedAdapter;
  warnings: string[];
}

/**
 * Reads and checks an adapter folder (GradOT's, or a PEFT LoRA folder alone, validated) against the full
 * model. With `checkHash`, weights other than those it was trained against are an error unless `force`.
 */
export async function loadAdapterFor(
  model: { spec: ModelSpec; weights: WeightMap },
  source: ModelSource,
  o: { checkHash?: boolean; force?: boolean } = {},
): Promise<{ meta: AdapterMeta; adapter: TrainedAdapter; warnings: string[] }> {
  const { meta, adapter } = await loadAdapterFolder(source, model.spec);
  const warnings: string[] = [];
  if (meta.baseModel.numLayers !== model.spec.layers.length) {
    throw new Error(`the adapter is for a ${meta.baseModel.numLayers}-block model; this one has ${model.spec.layers.length} blocks`);
  }
  // Hashing serializes the whole model: the CLI does it, the browser skips it for large models' sake.
  if (o.checkHash && meta.baseModel.sha256) {
    const sha = await weightsSha256(model.weights);
    if (sha !== meta.baseModel.sha256) {
      const msg = `the adapter was trained against weights with hash ${meta.baseModel.sha256.slice(0, 12)}…, this model's is ${sha.slice(0, 12)}…`;
      if (!o.force) throw new Error(`${source.label}: ${msg} (another model, or other weights); pass --force to plug it in anyway`);
      warnings.push(msg);
    }
  }
  return { meta, adapter, warnings };
}

export async function plugInJob(
  model: { spec: ModelSpec; weights: WeightMap },
  source: ModelSource,
  o: { checkHash?: boolean; force?: boolean; backend?: Backend } = {},
): Promise<PlugInJobOutput> {
  const { meta, adapter, warnings } = await loadAdapterFor(model, source, o);
  const plugged = await plugIn(model, adapter, o.backend);
  return { ...plugged, meta, adapter, warnings };
}

/**
 * Plugs an adapter into a live decoder of the full model (the one Full ZS ran on), in place: only the
 * tensors the adapter changes get storages of their own, so the plug-in model is evaluated without a
 * second copy of the full model. The decoder then holds exactly the tensors a decoder built from
 * `plugIn(full, adapter)`'s weights holds. `full` is the host model the decoder was built from (LoRA merges
 * into its weights). Returns the replaced tensors' names.
 */
export async function plugIntoDecoder(
  dec: Decoder,
  full: { spec: ModelSpec; weights: WeightMap },
  adapter: TrainedAdapter,
): Promise<string[]> {
  const dense = await denseAdapterWeights(adapter, full.spec, full.weights, dec.backend);
  for (const [name, t] of dense) {
    const p = dec.params.get(name);
    if (!p) throw new Error(`plug-in: the decoder has no ${name}`);
    if (p.shape.length !== t.shape.length || p.shape.some((n, i) => n !== t.shape[i]))
      throw new Error(`plug-in: ${name} is [${t.shape.join(', ')}] but the model's is [${p.shape.join(', ')}]`);
    const s = dec.backend.fromArray(t.data);
    dec.backend.free(p.storage);
    p.storage = s;
  }
  return [...dense.keys()];
}
