/**
 * The researcher grid's time estimate before it runs, from a speed measured on this backend
 * (StudioApi.calibrate: one timed forward pass of the open model, one exact SVD of a middle matrix) and
 * the grid's sizes. A cost model, not a promise; the view says so.
 *
 * Per setting (workers/studio/protocol.ts runs these phases), in forward-token units F = seconds per token
 * of the whole model's forward pass:
 * - tune:        TRAIN_FACTOR × train examples × epochs × train tokens × emulator share × F
 *                (a training step ≈ forward + backward ≈ 3 forward passes);
 * - evaluations: test items × test tokens × F × (2 × emulator share [Emulator ZS, Emulator FT] + 1 [Plug-in]);
 * - compression: gradot: support pass (TRAIN_FACTOR × support examples × seq len × F) + one SVD per middle
 *                matrix (its scoring is counted in the support pass); svd: one SVD per middle matrix;
 *                prune, drop, none: nothing worth counting.
 * - loading:     the model's load time (each setting loads it again).
 * Once per grid: Full ZS (test items × test tokens × F) and, if asked, Full FT (its tuning and evaluation
 * on the whole model). Seeds repeat every setting.
 */
import type { Calibration, CompressMethod } from '../jobs/studio-api';

/** Forward + backward of a training step, in forward passes (backward ≈ 2 forwards). */
export const TRAIN_FACTOR = 3;
/** Characters per token of English BPE text, to turn a task file's size into tokens. */
export const CHARS_PER_TOKEN = 4;

export interface GridShape {
  settings: { method: CompressMethod; keep: number }[];
  seeds: number;
  /** Whole model parameters and those of the middle blocks (what the emulator compresses). */
  params: { total: number; middle: number };
  /** Weight matrices in the middle blocks (svd and GradOT factor each). */
  middleMatrices: number;
  trainExamples: number;
  testItems: number;
  epochs: number;
  /** Tokens per training example (at most the grid's seq len). */
  trainTokens: number;
  /** Tokens scored per test item (every choice of a multiple-choice item). */
  testTokens: number;
  supportExamples: number;
  seqLen: number;
  fullFT: boolean;
}

export interface GridEstimate {
  seconds: number;
  /** Seconds of one seed of each setting, in the order given. */
  perSetting: number[];
  /** Seconds of the parts computed once per grid (Full ZS, Full FT). */
  once: number;
}

/** Share of the whole model's parameters an emulator of `keep` (fraction of the middle kept) still has. */
export function emulatorShare(params: GridShape['params'], method: CompressMethod, keep: number): number {
  if (params.total <= 0) return 1;
  const k = method === 'none' ? 1 : Math.min(1, Math.max(0, keep));
  return Math.max(0, params.total - params.middle * (1 - k)) / params.total;
}

/**
 * An evaluation's time before it has run once, from the tuning run's measured training speed on the same
 * emulator: a forward pass costs about 1 / TRAIN_FACTOR of a training step per token. `passes` = how many
 * models are evaluated (Emulator ZS, and Emulator FT when adapters are open).
 */
export function estimateEvalSeconds(items: number, meanScoredChars: number, passes: number, trainTokensPerSec: number): number | null {
  if (!(trainTokensPerSec > 0) || !(meanScoredChars > 0) || items <= 0) return null;
  const tokens = items * passes * (meanScoredChars / CHARS_PER_TOKEN);
  return tokens / (TRAIN_FACTOR * trainTokensPerSec);
}

export function estimateGrid(
  g: GridShape,
  cal: Pick<Calibration, 'forwardSecPerToken' | 'svdSecondsPerMatrix'> & { loadSeconds?: number },
): GridEstimate {
  const F = cal.forwardSecPerToken;
  const evalFull = g.testItems * g.testTokens * F;
  const trainFull = TRAIN_FACTOR * g.trainExamples * g.epochs * g.trainTokens * F;
  const perSetting = g.settings.map(({ method, keep }) => {
    const share = emulatorShare(g.params, method, keep);
    const tune = trainFull * share;
    const evals = evalFull * (2 * share + 1);
    const svd = g.middleMatrices * cal.svdSecondsPerMatrix;
    const compress = method === 'gradot' ? TRAIN_FACTOR * g.supportExamples * g.seqLen * F + svd : method === 'svd' ? svd : 0;
    return tune + evals + compress + (cal.loadSeconds ?? 0);
  });
  const once = evalFull + (g.fullFT ? trainFull + evalFull : 0);
  const seconds = Math.max(1, g.seeds) * perSetting.reduce((a, b) => a + b, 0) + once;
  return { seconds, perSetting, once };
}

/** Tokens of an average row (its characters over CHARS_PER_TOKEN, JSON keys included: errs high), capped
 *  at `cap` (the context the row is cut to); `cap` when the size is unknown. */
export function tokensPerRow(charsPerRow: number, cap: number): number {
  if (!(charsPerRow > 0)) return cap;
  return Math.max(1, Math.min(cap, Math.round(charsPerRow / CHARS_PER_TOKEN)));
}

export interface TaskSample {
  /** Rows in the file (extrapolated from the sample when the file is larger). */
  rows: number;
  /** Average characters per row. */
  charsPerRow: number;
  /** Average choices per row (1 for text rows: one sequence scored per item). */
  choices: number;
}

/**
 * Sizes of a JSONL task file from its first `sample` characters (the whole file when it is small):
 * rows, characters per row, and choices per multiple-choice item (rows with a `choices` array).
 */
export function sampleTask(sample: string, totalBytes: number): TaskSample {
  const complete = sample.length >= totalBytes;
  // A sample cut mid-row: its last partial line is left out.
  const lines = sample.split('\n');
  if (!complete) lines.pop();
  const rows = lines.filter((l) => l.trim().length > 0);
  if (rows.length === 0) return { rows: 0, charsPerRow: 0, choices: 1 };
  const chars = rows.reduce((a, l) => a + l.length + 1, 0);
  let choices = 0;
  let parsed = 0;
  for (const l of rows.slice(0, 200)) {
    try {
      const o = JSON.parse(l) as { choices?: unknown };
      choices += Array.isArray(o.choices) && o.choices.length > 0 ? o.choices.length : 1;
      parsed++;
    } catch {
      // csv / txt rows: one sequence each
    }
  }
  const charsPerRow = chars / rows.length;
  return {
    rows: complete ? rows.length : Math.round(totalBytes / charsPerRow),
    charsPerRow,
    choices: parsed ? choices / parsed : 1,
  };
}
