/**
 * The data owner's export as a job: a tuned adapter -> the files returned to the model owner (our layout,
 * plus the PEFT layout for LoRA), named by the base model's own tensor names.
 */
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { EmulatorMeta } from '../ot/emulator/package';
import { exportAdapter } from '../ot/offsite/export';
import type { TrainedAdapter } from '../ot/offsite/tune';

export interface ExportBase {
  spec: ModelSpec;
  weights: WeightMap;
  /** The emulator package's record, when tuned on one (names the source model and its hash). */
  meta: EmulatorMeta | null;
  /** Fallback model id when there is no emulator record. */
  modelId: string;
}

/** adapter.safetensors (+ PEFT files for LoRA) and adapter.json, with `info` recorded in adapter.json. */
export async function exportJob(
  adapter: TrainedAdapter,
  base: ExportBase,
  info: Record<string, unknown>,
): Promise<Map<string, Uint8Array>> {
  const m = base.meta;
  return exportAdapter(
    adapter,
    {
      spec: base.spec,
      weights: base.weights,
      modelId: m?.source.modelId ?? base.modelId,
      sha256: m?.source.sha256 ?? null,
      numLayers: m?.source.numLayers ?? base.spec.layers.length,
    },
    { info: { emulator: m ? { method: m.method, keep: m.keep } : null, ...info } },
  );
}
