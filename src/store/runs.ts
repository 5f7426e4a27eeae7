/**
 * Researcher runs, kept in this browser's IndexedDB (idb-keyval) so they survive reloads; nothing is sent
 * anywhere. Falls back to memory when IndexedDB is unavailable (private windows in some browsers).
 */
import { TUNE_DEFAULTS } from '../jobs/tune-defaults';
import { create } from 'zustand';
import { get as idbGet, set as idbSet } from 'idb-keyval';
import type { CompressMethod, OTRun } from '../jobs/studio-api';

const KEY = 'gradot-studio/runs/v1';

export interface GridSettings {
  methods: CompressMethod[];
  keeps: number[];
  lambdas: number[];
  bottom: number;
  top: number;
  /** Tuning recipe shared by every setting (and Full FT). */
  lr: number;
  epochs: number;
  batchSize: number;
  seqLen: number;
  supportExamples: number;
  fullFT: boolean;
  /** Tuning seeds run per setting (several give error bars). */
  seeds: number[];
  /** First N training / test examples per setting (0 = all): a grid on a CPU finishes in minutes. */
  trainLimit: number;
  testLimit: number;
}

interface RunsState {
  runs: OTRun[];
  loaded: boolean;
  persistent: boolean;
  grid: GridSettings;
  setGrid(p: Partial<GridSettings>): void;
  load(): Promise<void>;
  add(runs: OTRun[]): Promise<void>;
  remove(id: string): Promise<void>;
  clear(): Promise<void>;
}

async function save(runs: OTRun[]): Promise<boolean> {
  try {
    await idbSet(KEY, runs);
    return true;
  } catch {
    return false;
  }
}

export const useRuns = create<RunsState>((set, get) => ({
  runs: [],
  loaded: false,
  persistent: true,
  grid: {
    methods: ['gradot', 'svd', 'drop'],
    keeps: [0.2, 0.3, 0.5],
    lambdas: [1],
    bottom: 2,
    top: 2,
    // The protocol's default budget (src/jobs/tune-defaults.ts), the same as `gradot ot`'s.
    lr: TUNE_DEFAULTS.full.lr,
    epochs: TUNE_DEFAULTS.full.epochs,
    batchSize: TUNE_DEFAULTS.full.batch,
    seqLen: 128,
    supportExamples: 32,
    fullFT: false,
    seeds: [0],
    trainLimit: TUNE_DEFAULTS.full.examples,
    testLimit: 100,
  },
  setGrid: (p) => set((s) => ({ grid: { ...s.grid, ...p } })),
  async load() {
    try {
      const runs = (await idbGet<OTRun[]>(KEY)) ?? [];
      set({ runs, loaded: true, persistent: true });
    } catch {
      set({ loaded: true, persistent: false });
    }
  },
  async add(runs) {
    const next = [...get().runs.filter((r) => !runs.some((n) => n.id === r.id)), ...runs];
    set({ runs: next, persistent: await save(next) });
  },
  async remove(id) {
    const next = get().runs.filter((r) => r.id !== id);
    set({ runs: next, persistent: await save(next) });
  },
  async clear() {
    set({ runs: [], persistent: await save([]) });
  },
}));

export const RUN_COLUMNS = [
  'id',
  'createdAt',
  'model',
  'task',
  'method',
  'keep',
  'lambdaAttn',
  'lambdaMlp',
  'adapters',
  'fullZS',
  'emulatorZS',
  'emulatorFT',
  'plugIn',
  'fullFT',
  'delta',
  'deltaStderr',
  'compressionRatio',
  'metric',
  'origin',
  'hides',
  'hidesStderr',
  'deltaVerdict',
  'hidesVerdict',
  'plugInVerdict',
  'lambdaMode',
] as const;

/**
 * How a gradot run read λ ('raw' | 'balanced', from its compression record's λ reading id): λ = 1 means
 * very different emulators under the two (docs/ot-compression.md, "λ"). null for other methods or when the
 * run carries no record.
 */
export function lambdaModeOfRun(r: OTRun): string | null {
  if (r.setting.method !== 'gradot') return null;
  const id = (r.report as { compressRecord?: { emulator?: { readings?: Record<string, unknown> } } } | undefined)?.compressRecord?.emulator
    ?.readings?.lambda;
  return typeof id === 'string' && id.startsWith('lambda/') ? (id.split('/')[1]!.split('-')[0] ?? null) : null;
}

/**
 * The privacy side of a run: Full ZS − Emulator ZS (Emulator ZS loss − Full ZS loss for loss metrics), so
 * larger always means the emulator hides more of the model; null when either is missing.
 */
export function hidesOf(r: Pick<OTRun, 'fullZS' | 'emulatorZS' | 'metric'>): number | null {
  if (r.fullZS === null || r.emulatorZS === null) return null;
  return r.metric === 'loss' ? r.emulatorZS - r.fullZS : r.fullZS - r.emulatorZS;
}

function flat(r: OTRun): Record<(typeof RUN_COLUMNS)[number], string | number | null> {
  return {
    id: r.id,
    createdAt: r.createdAt,
    model: r.model,
    task: r.task,
    method: r.setting.method,
    keep: r.setting.keep,
    lambdaAttn: r.setting.lambdaAttn,
    lambdaMlp: r.setting.lambdaMlp,
    adapters: `${r.setting.adapters.bottom}:${r.setting.adapters.top}`,
    fullZS: r.fullZS,
    emulatorZS: r.emulatorZS,
    emulatorFT: r.emulatorFT,
    plugIn: r.plugIn,
    fullFT: r.fullFT,
    delta: r.delta,
    deltaStderr: r.deltaStderr ?? null,
    compressionRatio: r.compressionRatio,
    metric: r.metric,
    origin: r.origin,
    hides: hidesOf(r),
    hidesStderr: r.hidesStderr ?? null,
    deltaVerdict: r.verdicts?.deltaPositive ?? null,
    hidesVerdict: r.verdicts?.emulatorHides ?? null,
    plugInVerdict: r.verdicts?.plugInBeatsFullZS ?? null,
    lambdaMode: lambdaModeOfRun(r),
  };
}

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function runsToCsv(runs: OTRun[]): string {
  const lines = [RUN_COLUMNS.join(',')];
  for (const r of runs) {
    const f = flat(r);
    lines.push(RUN_COLUMNS.map((c) => csvCell(f[c])).join(','));
  }
  return `${lines.join('\n')}\n`;
}

export function runsToJson(runs: OTRun[]): string {
  return `${JSON.stringify({ format: 'gradot-studio-runs', version: 1, runs }, null, 2)}\n`;
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const VERDICTS = new Set(['yes', 'no', 'inside noise', 'untested']);
/** An imported row's verdicts are kept only when every one is a known verdict. */
function validVerdicts(v: unknown): v is NonNullable<OTRun['verdicts']> {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return ['deltaPositive', 'plugInBeatsFullZS', 'emulatorHides'].every((k) => VERDICTS.has(o[k] as string));
}

/**
 * Accepts our own export ({format, runs}) or a bare array of runs; rejects anything else with a reason.
 * Imported rows are marked origin 'import' so the table says they were not produced in this browser.
 */
export function parseRunsJson(text: string): OTRun[] {
  const data = JSON.parse(text) as unknown;
  const list = Array.isArray(data) ? data : (data as { runs?: unknown }).runs;
  if (!Array.isArray(list)) throw new Error('expected an array of runs or {"runs": [...]}');
  return list.map((raw, i) => {
    const r = raw as Partial<OTRun> & { setting?: Partial<OTRun['setting']> };
    if (!r || typeof r !== 'object' || !r.setting || typeof r.setting.method !== 'string') {
      throw new Error(`run ${i}: missing setting.method`);
    }
    const plugIn = numOrNull(r.plugIn);
    const emulatorFT = numOrNull(r.emulatorFT);
    return {
      id: typeof r.id === 'string' ? r.id : `import-${i}-${Date.now().toString(36)}`,
      createdAt: typeof r.createdAt === 'string' ? r.createdAt : new Date().toISOString(),
      model: String(r.model ?? '?'),
      task: String(r.task ?? '?'),
      setting: {
        method: r.setting.method as CompressMethod,
        keep: Number(r.setting.keep ?? 1),
        lambdaAttn: Number(r.setting.lambdaAttn ?? 0),
        lambdaMlp: Number(r.setting.lambdaMlp ?? 0),
        adapters: { bottom: Number(r.setting.adapters?.bottom ?? 2), top: Number(r.setting.adapters?.top ?? 2) },
      },
      fullZS: numOrNull(r.fullZS),
      emulatorZS: numOrNull(r.emulatorZS),
      emulatorFT,
      plugIn,
      fullFT: numOrNull(r.fullFT),
      delta: numOrNull(r.delta) ?? (plugIn !== null && emulatorFT !== null ? plugIn - emulatorFT : null),
      ...(numOrNull(r.deltaStderr) !== null ? { deltaStderr: numOrNull(r.deltaStderr) } : {}),
      ...(numOrNull(r.hidesStderr) !== null ? { hidesStderr: numOrNull(r.hidesStderr) } : {}),
      ...(validVerdicts(r.verdicts) ? { verdicts: r.verdicts } : {}),
      compressionRatio: numOrNull(r.compressionRatio),
      metric: String(r.metric ?? 'acc'),
      ...(typeof r.seed === 'number' ? { seed: r.seed } : {}),
      // The browser run's report (its compression record): an exported run can be compared again.
      ...(r.report && typeof r.report === 'object' ? { report: r.report } : {}),
      origin: 'import',
    };
  });
}

// ---------------------------------------------------------------- comparing settings

/** A setting: the runs that differ only by seed share this key. */
export function settingKey(r: OTRun): string {
  const s = r.setting;
  return JSON.stringify([
    r.model,
    r.task,
    r.metric,
    s.method,
    s.keep,
    s.lambdaAttn,
    s.lambdaMlp,
    s.adapters.bottom,
    s.adapters.top,
    r.limits ?? null,
  ]);
}

export type UtilityAxis = 'plugIn' | 'delta';

/** One setting on the privacy–utility plane: mean over its seeds, and the spread when there are several. */
export interface SettingPoint {
  method: CompressMethod;
  keep: number;
  lambda: number;
  /** How much the emulator hides: Full ZS − Emulator ZS for accuracy, Emulator ZS − Full ZS for a loss
   *  (larger = more private either way). */
  hides: number;
  hidesStd: number;
  /** The y value, larger = better: Δ, Plug-in accuracy, or minus the Plug-in loss. */
  utility: number;
  utilityStd: number;
  seeds: number;
  runs: OTRun[];
}

function sampleStd(v: number[], mean: number): number {
  return v.length > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (v.length - 1)) : 0;
}

/** Groups runs by setting (seeds averaged) into plane points; runs missing a needed number are skipped. */
export function settingPoints(runs: OTRun[], y: UtilityAxis): SettingPoint[] {
  const groups = new Map<string, OTRun[]>();
  for (const r of runs) {
    if (r.fullZS === null || r.emulatorZS === null || r[y] === null || r[y] === undefined) continue;
    const k = settingKey(r);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    // The plane reads "up and right is better": a loss (lower is better) is turned around. Δ already is.
    const loss = rs[0]!.metric === 'loss';
    const h = rs.map((r) => (loss ? r.emulatorZS! - r.fullZS! : r.fullZS! - r.emulatorZS!));
    const u = rs.map((r) => (loss && y === 'plugIn' ? -(r[y] as number) : (r[y] as number)));
    const hm = h.reduce((a, x) => a + x, 0) / h.length;
    const um = u.reduce((a, x) => a + x, 0) / u.length;
    const s = rs[0]!.setting;
    return {
      method: s.method,
      keep: s.keep,
      lambda: s.lambdaAttn,
      hides: hm,
      hidesStd: sampleStd(h, hm),
      utility: um,
      utilityStd: sampleStd(u, um),
      seeds: rs.length,
      runs: rs,
    };
  });
}

/** What a run's emulator kept per middle block (from its compression record), for side-by-side heatmaps. */
export interface KeptRanks {
  /** Source block index of each row. */
  blocks: number[];
  cols: string[];
  /** Kept rank per (block, matrix); null = kept dense; and the MLP width. */
  ranks: (number | null)[][];
  mlpWidth: number[];
}

export function keptRanks(r: OTRun): KeptRanks | null {
  const rec = (
    r.report as
      | {
          compressRecord?: { emulator?: { layers?: { source: number; role: string; ranks?: Record<string, number>; mlpWidth: number }[] } };
        }
      | undefined
  )?.compressRecord?.emulator?.layers;
  if (!Array.isArray(rec)) return null;
  const middle = rec.filter((l) => l.role === 'middle');
  if (middle.length === 0) return null;
  const cols = [...new Set(middle.flatMap((l) => Object.keys(l.ranks ?? {})))];
  const order = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
  const pos = (c: string) => (order.includes(c) ? order.indexOf(c) : order.length);
  cols.sort((a, b) => pos(a) - pos(b));
  return {
    blocks: middle.map((l) => l.source),
    cols,
    ranks: middle.map((l) => cols.map((c) => (l.ranks && typeof l.ranks[c] === 'number' ? l.ranks[c]! : null))),
    mlpWidth: middle.map((l) => l.mlpWidth),
  };
}
