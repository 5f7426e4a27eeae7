/**
 * The OT split seen from the tuning side: which blocks of a model (full or emulator) are adapters, and how
 * an emulator's adapter blocks line up with the full model's. Bottom block i of the emulator is bottom block
 * i of the full model; top block j counted from the top (j = 1 is the last) is top block j of the full
 * model, whatever the middle kept in between. Blocks carry their source index (`LayerSpec.source`), so an
 * exported adapter can be named after the base model's own layers.
 */
import type { ModelSpec } from '../../model/spec';
import type { Split } from './budget';

export type { Split } from './budget';

export function checkSplit(spec: ModelSpec, split: Split): void {
  const L = spec.layers.length;
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 0;
  if (!ok(split.bottom) || !ok(split.top))
    throw new RangeError(`adapter split ${split.bottom}:${split.top}: sizes must be non-negative integers`);
  if (split.bottom + split.top === 0) throw new RangeError('adapter split 0:0 has no adapter blocks to tune');
  if (split.bottom + split.top > L) throw new RangeError(`adapter split ${split.bottom}:${split.top} does not fit a ${L}-block model`);
}

/** Indices (into spec.layers) of the adapter blocks: [0, bottom) then [L − top, L). */
export function adapterBlocks(spec: ModelSpec, split: Split): number[] {
  checkSplit(spec, split);
  const L = spec.layers.length;
  const out: number[] = [];
  for (let i = 0; i < split.bottom; i++) out.push(i);
  for (let i = L - split.top; i < L; i++) out.push(i);
  return out;
}

/** Whether a canonical tensor name belongs to one of `blocks`. */
export function inBlocks(name: string, blocks: readonly number[]): boolean {
  const m = /^layers\.(\d+)\./.exec(name);
  return m !== null && blocks.includes(Number(m[1]));
}

/**
 * Emulator block index -> full-model block index for every adapter block (bottom by position, top by
 * distance from the top). Throws when the two models disagree on the adapters' source blocks, which means
 * the emulator was not built from this model with this split.
 */
export function adapterBlockMap(emulator: ModelSpec, full: ModelSpec, split: Split): Map<number, number> {
  checkSplit(emulator, split);
  checkSplit(full, split);
  const Le = emulator.layers.length;
  const Lf = full.layers.length;
  const map = new Map<number, number>();
  for (let i = 0; i < split.bottom; i++) map.set(i, i);
  for (let j = 1; j <= split.top; j++) map.set(Le - j, Lf - j);
  for (const [e, f] of map) {
    const se = emulator.layers[e]!.source;
    const sf = full.layers[f]!.source;
    if (se !== sf) {
      throw new Error(
        `adapter block ${e} of the emulator comes from source block ${se}, but the full model's block ${f} is source block ${sf}: wrong split or wrong base model`,
      );
    }
  }
  return map;
}

/** Renames `layers.{e}.…` to `layers.{map(e)}.…` (adapter tensors from emulator to full-model indices). */
export function renameBlock(name: string, map: ReadonlyMap<number, number>): string {
  const m = /^layers\.(\d+)\.(.*)$/.exec(name);
  if (!m) throw new Error(`not a block tensor: ${name}`);
  const to = map.get(Number(m[1]));
  if (to === undefined) throw new Error(`${name} is not in an adapter block`);
  return `layers.${to}.${m[2]}`;
}

/** "2:2" -> {bottom: 2, top: 2}. */
export function parseAdapters(s: string): Split {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(s);
  if (!m) throw new Error(`adapters must look like 2:2 (bottom:top), got '${s}'`);
  return { bottom: Number(m[1]), top: Number(m[2]) };
}
