/**
 * Evaluation (Emulator ZS / FT on the data owner's side) and plug-in (Full ZS / Plug-in on the model
 * owner's side) over src/jobs evaluate and plug-in.
 */
import { readDatasetBlob, withoutSpecialTokens } from '../../src/data';
import { type Decoder } from '../../src/model/decoder';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer';
import { loadAdapterFor, plugIntoDecoder } from '../../src/jobs/plug-in';
import { headline, type EncodedTask, type EvalMetrics } from '../../src/ot/offsite/evaluate';
import { evaluateJob, prepareEvalTask } from '../../src/jobs/evaluate';
import type { ModelSpec } from '../../src/model/spec';
import {
  type PlugInOptions,
  type PlugInResult,
  type EvalOptions,
  type EvalReport,
  type EvalResult,
  type InputFile,
  type ProgressEvent,
  type ProgressFn,
} from '../../src/jobs/studio-api';
import { onBackend } from './backend';
import { fail, sourceOf, rethrow, readPackage } from './files';
import { decoderOverHost } from './host-decoder';
import { openModels, openPackages, openAdaptersMap, openDatasets, tunedRuns } from './state';
import { startControlledJob, loadOpenModel } from './jobs';

/** Frees a decoder's storages; on a lost device there is nothing left to free, and that must not hide why. */
function freeQuietly(dec: Decoder): void {
  try {
    dec.free();
  } catch {
    // the device is gone
  }
}

export function toEvalResult(m: EvalMetrics): EvalResult {
  const h = headline(m);
  return {
    metric: h.metric,
    value: h.value,
    higherIsBetter: h.higherIsBetter,
    n: m.n,
    loss: m.loss,
    perplexity: m.perplexity,
    acc: m.acc,
    accNorm: m.accNorm,
    exactMatch: m.exactMatch,
    seconds: m.seconds,
  };
}

/** One evaluation by src/jobs/evaluate.ts (the rules `gradot eval` uses): the first N records, whole context. */
export async function evalOn(
  dec: Decoder,
  tok: Tokenizer,
  file: InputFile,
  spec: ModelSpec,
  label: string,
  report: (p: Omit<ProgressEvent, 'jobId' | 'elapsedS' | 'etaS'>) => void,
  signal: AbortSignal,
  limit?: number,
  /** This pass's place in the job (e.g. ZS then FT): the job's fraction covers every pass, so its ETA
   *  (elapsed × (1 − f) / f, from the job's start) does not restart at the second pass. */
  pass: { index: number; of: number } = { index: 0, of: 1 },
): Promise<EvalMetrics> {
  const textTok = withoutSpecialTokens(tok);
  let task: EncodedTask;
  try {
    // The first N records in file order, so ZS/FT (and Full ZS/Plug-in) see the same ones.
    task = prepareEvalTask(
      { name: file.path, bytes: new Uint8Array(0), dataset: await readDatasetBlob(file.data, file.path) },
      textTok,
      spec,
      { ...(limit ? { limit } : {}) },
    );
  } catch (e) {
    rethrow(e, file.path);
  }
  return evaluateJob(
    dec,
    task,
    { tokenizer: textTok },
    {
      signal,
      onProgress: ({ done, total }) =>
        report({
          phase: `evaluating ${label}`,
          fraction: total ? (pass.index + done / total) / pass.of : null,
          message: `${done}/${total}`,
        }),
    },
  );
}

export async function evaluateRun(opts: EvalOptions, onProgress: ProgressFn): Promise<EvalReport> {
  const run = opts.runId ? tunedRuns.get(opts.runId) : undefined;
  const opened = opts.packageId ? openPackages.get(opts.packageId) : undefined;
  const pkgFiles = run?.pkgFiles ?? opened?.files;
  const pkgName = run?.packageName ?? opened?.summary.name ?? 'package';
  if (!pkgFiles) fail(undefined, 'open an emulator package (or finish a tuning run) first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'open an evaluation file first');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading the emulator', fraction: null });
    // Decoded for this job only (the worker keeps the package's files, not its weights).
    const pkg = await readPackage(pkgFiles, pkgName);
    const tok = await loadTokenizer(sourceOf(pkgFiles, 'package')).catch((e: unknown) => rethrow(e, 'package'));
    const spec = pkg.meta.spec;
    // On a lost GPU device the evaluation starts again on the CPU backend.
    return await onBackend(
      'auto',
      async (be) => {
        const zsDec = decoderOverHost(be, spec, pkg.weights);
        try {
          const passes = run ? 2 : 1;
          const zs = await evalOn(zsDec, tok, d.file, spec, 'Emulator ZS', report, abort.signal, opts.limit, { index: 0, of: passes });
          let ft: EvalMetrics | null = null;
          if (run) {
            // In place, as plug-in does (no read-back of the emulator's weights for a LoRA merge).
            await plugIntoDecoder(zsDec, { spec, weights: pkg.weights }, run.result.adapter);
            ft = await evalOn(zsDec, tok, d.file, spec, 'Emulator FT', report, abort.signal, opts.limit, { index: 1, of: 2 });
          }
          return { file: d.file.path, emulatorZS: toEvalResult(zs), emulatorFT: ft ? toEvalResult(ft) : null, backend: be.name };
        } finally {
          freeQuietly(zsDec);
        }
      },
      { signal: abort.signal, onFallback: (message) => report({ phase: message, fraction: null, message }) },
    );
  } finally {
    end();
  }
}

export async function plugInJob(opts: PlugInOptions, onProgress: ProgressFn): Promise<PlugInResult> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open the full model first');
  const a = openAdaptersMap.get(opts.adapterId);
  if (!a) fail(undefined, 'drop the returned adapters first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'drop an evaluation task first');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading the full model', fraction: null });
    const { model: full, tok } = await loadOpenModel(cur, (done, total, etaS) =>
      report({
        phase: 'loading the full model',
        fraction: null,
        etaS,
        message: `${(done / 2 ** 20).toFixed(0)} of ${(total / 2 ** 20).toFixed(0)} MiB`,
      }),
    );
    let adapter;
    try {
      const aSource = sourceOf(a.files, a.summary.name);
      // GradOT adapters and PEFT-only LoRA folders alike; PEFT configs are validated against the model.
      adapter = (await loadAdapterFor(full, aSource)).adapter;
    } catch (e) {
      rethrow(e, a.summary.name);
    }
    return await onBackend(
      'auto',
      async (be) => {
        // One copy of the full model: Full ZS runs on it, then the adapter's tensors replace theirs in place
        // (the same tensors plugIn would give a second decoder) and Plug-in runs on the same decoder.
        const dec = decoderOverHost(be, full.spec, full.weights);
        try {
          const zs = await evalOn(dec, tok, d.file, full.spec, 'Full ZS', report, abort.signal, opts.limit, { index: 0, of: 2 });
          report({ phase: 'plugging the adapter in', fraction: null });
          const replaced = await plugIntoDecoder(dec, full, adapter);
          const pl = await evalOn(dec, tok, d.file, full.spec, 'Plug-in', report, abort.signal, opts.limit, { index: 1, of: 2 });
          return {
            file: d.file.path,
            fullZS: toEvalResult(zs),
            plugIn: toEvalResult(pl),
            replaced: replaced.length,
            backend: be.name,
          };
        } finally {
          freeQuietly(dec);
        }
      },
      { signal: abort.signal, onFallback: (message) => report({ phase: message, fraction: null, message }) },
    );
  } finally {
    end();
  }
}
