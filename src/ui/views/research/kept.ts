/**
 * What a run's emulator kept of each source matrix, read from the compression record its report carries
 * (src/ot/emulator/package.ts EmulatorReport layers): the components a spectrum marks as kept.
 */
import type { OTRun } from '../../../jobs/studio-api';

const MLP = new Set(['gate', 'up', 'down']);

export interface RecordLayer {
  source: number;
  role: string;
  ranks?: Record<string, number>;
  mlpWidth: number;
  /** Kept components of each factorized matrix as [start, end) runs (EmulatorReport). */
  keptRanges?: Record<string, [number, number][]>;
}

function expand(ranges: [number, number][]): number[] {
  return ranges.flatMap(([a, b]) => Array.from({ length: Math.max(0, b - a) }, (_, k) => a + k));
}

export function recordLayers(r: OTRun): RecordLayer[] {
  const layers = (r.report as { compressRecord?: { emulator?: { layers?: RecordLayer[] } } } | undefined)?.compressRecord?.emulator?.layers;
  return Array.isArray(layers) ? layers : [];
}

/** What one run kept of one source matrix, in σ order, and how the view should say it. */
export interface KeptOfMatrix {
  /** Component indices kept (filled on the spectrum). */
  kept: number[];
  /** One line: what the compressor did to this matrix. */
  note: string;
  /** Rank of a factorized matrix (drawn as the cut); absent when kept whole, pruned or dropped. */
  cut?: number;
}

/**
 * Kept components of block `layer`'s matrix `proj` in run `r`, whose source matrix has `n` singular values
 * and whose MLP is `intermediate` wide. Recorded components when the report has them; an older report's
 * rank is drawn as the top components (what svd keeps), and says so.
 */
export function keptOfMatrix(r: OTRun, layer: number, proj: string, n: number, intermediate: number): KeptOfMatrix {
  const layers = recordLayers(r);
  const rec = layers.find((l) => l.source === layer);
  if (!rec) return { kept: [], note: layers.length ? 'block dropped: nothing kept' : 'no compression record' };
  if (rec.role !== 'middle') return { kept: Array.from({ length: n }, (_, k) => k), note: 'adapter block: kept whole' };
  const rank = rec.ranks?.[proj];
  const runs = rec.keptRanges?.[proj];
  const comps = Array.isArray(runs) ? expand(runs) : undefined;
  if (typeof rank !== 'number') {
    if (MLP.has(proj) && rec.mlpWidth < intermediate)
      return { kept: [], note: `MLP channels pruned to ${rec.mlpWidth}/${intermediate}: no σ cut` };
    return { kept: Array.from({ length: n }, (_, k) => k), note: `kept whole (${n}/${n})` };
  }
  if (Array.isArray(comps)) {
    const outside = comps.filter((k) => k >= comps.length).length;
    return {
      kept: comps,
      cut: comps.length,
      note: `keeps ${comps.length}/${n}${outside ? `, ${outside} of them outside the top ${comps.length}` : ', the top ones'}`,
    };
  }
  return {
    kept: Array.from({ length: Math.min(rank, n) }, (_, k) => k),
    cut: rank,
    note: `keeps ${rank}/${n} (components not recorded: drawn as the top ${rank})`,
  };
}
