/**
 * Plug-in (OT step 4): the adapter blocks trained on the emulator go back into the full model, whose middle
 * is the original one. The result is a plain full spec + canonical weights (an HF folder away from
 * `saveHFModel`).
 *
 * - Adapter-block tuning: the tuned blocks' tensors replace the full model's at the matching blocks
 *   (bottom by position, top by distance from the top; source indices are checked).
 * - LoRA: W + (alpha/r)·B·A merged into the full model's own adapter-block weights, with the same engine
 *   ops the tuning forward used, so a merged model computes exactly what the tuned one did.
 */
import type { Backend } from '../../engine/backend';
import { CpuBackend } from '../../engine/cpu/backend';
import { Tensor } from '../../engine/tensor';
import type { Decoder } from '../../model/decoder';
import { validateWeights } from '../../model/hf';
import type { ModelSpec } from '../../model/spec';
import type { HostTensor, WeightMap } from '../../model/weights';
import { sameShape } from '../../model/weights';
import { LoraAdapter } from './lora';
import { checkSplit, renameBlock } from '../emulator/split';
import type { TrainedAdapter } from './tune';

/** Tuned-model block -> target-model block for each adapter block, source indices checked. */
export function blockMapFor(adapter: TrainedAdapter, target: ModelSpec): Map<number, number> {
  checkSplit(target, adapter.split);
  const Lt = target.layers.length;
  const map = new Map<number, number>();
  adapter.blocks.forEach((b, i) => {
    const to = b < adapter.split.bottom ? b : Lt - (adapter.numLayers - b);
    const want = adapter.blockSources[i]!;
    const got = target.layers[to]?.source;
    if (got !== want) {
      throw new Error(
        `adapter block ${b} was source block ${want}, but the target's block ${to} is source block ${got}: the adapter was not trained for this model/split`,
      );
    }
    map.set(b, to);
  });
  return map;
}

/**
 * The dense tensors an adapter changes, in the TARGET model's naming: the adapter blocks' tensors
 * (adapter method) or the merged linears (LoRA, merged into `targetWeights`).
 */
export async function denseAdapterWeights(
  adapter: TrainedAdapter,
  target: ModelSpec,
  targetWeights: WeightMap,
  backend: Backend = new CpuBackend(),
): Promise<WeightMap> {
  const map = blockMapFor(adapter, target);
  const out: WeightMap = new Map();
  if (adapter.method === 'adapter') {
    for (const [name, t] of adapter.weights) {
      const to = renameBlock(name, map);
      const base = targetWeights.get(to);
      if (!base) throw new Error(`plug-in: the target model has no ${to}`);
      if (!sameShape(base.shape, t.shape))
        throw new Error(`plug-in: ${name} is [${t.shape.join(', ')}] but ${to} is [${base.shape.join(', ')}]`);
      out.set(to, t);
    }
    return out;
  }
  if (!adapter.lora) throw new Error('plug-in: LoRA adapter without its config');
  // Re-index the LoRA tensors onto the target's blocks, then merge with the target's own weights.
  const blocks = adapter.blocks.map((b) => map.get(b)!);
  const w: WeightMap = new Map();
  for (const [name, t] of adapter.weights) w.set(renameBlock(name, map), t);
  const lora = LoraAdapter.fromWeights(backend, target, blocks, adapter.lora, w);
  const base = new Map<string, Tensor>();
  try {
    for (const m of lora.modules) {
      for (const lin of m.linears) {
        const t = targetWeights.get(`${lin}.weight`);
        if (!t) throw new Error(`plug-in: the target model has no ${lin}.weight`);
        base.set(`${lin}.weight`, new Tensor(backend, t.shape, backend.fromArray(t.data)));
      }
    }
    return await lora.mergedWeights(base);
  } finally {
    for (const t of base.values()) t.free();
    lora.free();
  }
}

/** The full model with the adapter plugged in: same spec, new weights (untouched tensors shared). */
export async function plugIn(
  full: { spec: ModelSpec; weights: WeightMap },
  adapter: TrainedAdapter,
  backend?: Backend,
): Promise<{ spec: ModelSpec; weights: WeightMap; replaced: string[] }> {
  const dense = await denseAdapterWeights(adapter, full.spec, full.weights, backend);
  const weights: WeightMap = new Map();
  for (const [name, t] of full.weights) weights.set(name, dense.get(name) ?? t);
  validateWeights(full.spec, weights, 'plug-in');
  return { spec: full.spec, weights, replaced: [...dense.keys()] };
}

/** Writes an adapter's dense tensors into a live decoder (e.g. the emulator, for Emulator FT). */
export async function applyAdapter(dec: Decoder, adapter: TrainedAdapter): Promise<void> {
  const base: WeightMap = new Map();
  if (adapter.method === 'lora') {
    for (const [name, t] of dec.params) {
      if (!name.endsWith('.weight')) continue;
      const d = await t.read();
      base.set(name, {
        dtype: 'F32',
        shape: [...t.shape],
        data: d instanceof Float32Array ? d : Float32Array.from(d),
      } satisfies HostTensor);
    }
  } else {
    for (const [name, t] of dec.params) base.set(name, { dtype: 'F32', shape: [...t.shape], data: new Float32Array(0) });
  }
  const dense = await denseAdapterWeights(adapter, dec.spec, base, dec.backend);
  for (const [name, t] of dense) {
    const p = dec.params.get(name)!;
    const s = dec.backend.fromArray(t.data);
    dec.backend.free(p.storage);
    p.storage = s;
  }
}
