/**
 * Job control: ids, progress with elapsed time and ETA, pause / resume / cancel (an abort signal and a
 * pauser the loops read), and loading the open model with its tokenizer.
 */
import { loadHFModel } from '../../src/model/hf';
import { loadTokenizer } from '../../src/model/tokenizer';
import { PauseController } from '../../src/ot/offsite/tune';
import { encodeStudioError, type InputFile, type ProgressEvent, type ProgressFn } from '../../src/jobs/studio-api';
import { sourceOf, rethrow } from './files';
import { newId, JobControl, jobs, jobControls } from './state';

export class Cancelled extends Error {
  constructor() {
    super(encodeStudioError({ message: 'cancelled' }));
  }
}

export function startJob(onProgress: ProgressFn): {
  jobId: string;
  ctl: JobControl;
  report: (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'> & { etaS?: number | null }) => void;
  check: () => Promise<void>;
} {
  const jobId = newId('job');
  const ctl: JobControl = { paused: false, cancelled: false };
  jobs.set(jobId, ctl);
  const t0 = performance.now();
  const report = (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'> & { etaS?: number | null }) => {
    const elapsedS = (performance.now() - t0) / 1000;
    const etaS = p.etaS !== undefined ? p.etaS : p.fraction && p.fraction > 0.02 ? (elapsedS * (1 - p.fraction)) / p.fraction : null;
    onProgress({ ...p, jobId, elapsedS, etaS });
  };
  // Lets pause/cancel messages in: comlink calls are delivered between macrotasks.
  const check = async () => {
    await new Promise((r) => setTimeout(r, 0));
    while (ctl.paused && !ctl.cancelled) await new Promise((r) => setTimeout(r, 100));
    if (ctl.cancelled) throw new Cancelled();
  };
  return { jobId, ctl, report, check };
}

/**
 * A job the UI can pause, resume and cancel mid-loop (tuning, evaluation, plug-in, protocol): startJob plus
 * the abort signal and pauser the loops read, registered under the job id; `end()` (in a finally)
 * unregisters both.
 */
export function startControlledJob(onProgress: ProgressFn) {
  const job = startJob(onProgress);
  const abort = new AbortController();
  const pauser = new PauseController();
  jobControls.set(job.jobId, { abort, pauser });
  const end = (): void => {
    jobControls.delete(job.jobId);
    jobs.delete(job.jobId);
  };
  return { ...job, abort, pauser, end };
}

/**
 * Loads a model's weights for a job, with progress: bytes read and an ETA from the rate so far (a real-size
 * model takes tens of seconds to read and widen to f32).
 */
export async function loadModelWeights(
  files: InputFile[],
  label: string,
  onLoad?: (doneBytes: number, totalBytes: number, etaS: number | null) => void,
  signal?: AbortSignal,
) {
  const t0 = performance.now();
  return loadHFModel(sourceOf(files, label), {
    ...(signal ? { signal } : {}),
    onProgress: (d, total) => {
      const s = (performance.now() - t0) / 1000;
      onLoad?.(d, total, d > 0 && s > 1 ? (s / d) * (total - d) : null);
    },
  }).catch((e: unknown) => rethrow(e, label));
}

/** The model open in the Model owner view, loaded with its tokenizer; errors name the model. */
export async function loadOpenModel(
  cur: { files: InputFile[]; summary: { name: string } },
  onLoad?: (doneBytes: number, totalBytes: number, etaS: number | null) => void,
) {
  const source = sourceOf(cur.files, cur.summary.name);
  const model = await loadModelWeights(cur.files, cur.summary.name, onLoad);
  const tok = await loadTokenizer(source).catch((e: unknown) => rethrow(e, cur.summary.name));
  return { model, tok };
}
