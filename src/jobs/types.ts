/** What every job takes besides its inputs and options. */
export interface JobControl<P> {
  /** Aborting stops the job between steps with the signal's reason; finished work (checkpoints) stays. */
  signal?: AbortSignal;
  /** While paused, the job waits between steps. */
  pause?: { readonly paused: boolean; wait(): Promise<void> };
  onProgress?: (p: P) => void;
}

/** Rounds for reports: null for a non-finite number (JSON has none). */
export const round = (x: number | null | undefined, digits: number): number | null =>
  x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits;
