/**
 * The data owner's tuning runs: a run's package, data and options saved in OPFS next to its checkpoints, so a
 * reload (or a lost GPU device) resumes it; adapter export.
 */
import { backendLabel } from '../../src/ui/format';
import { readDatasetBlob, withoutSpecialTokens } from '../../src/data';
import { withRunLock } from '../../src/faults/web-lock';
import { loadTokenizer } from '../../src/model/tokenizer';
import { EMULATOR_JSON, EMULATOR_WEIGHTS, readEmulatorPackage, type EmulatorPackage } from '../../src/ot/emulator/package';
import { opfsCheckpointStore } from '../../src/storage';
import { ADAPTER_JSON, ADAPTER_WEIGHTS, PEFT_CONFIG, PEFT_WEIGHTS } from '../../src/ot/offsite/export';
import type { PreparedTraining } from '../../src/ot/offsite/task-data';
import { exportJob } from '../../src/jobs/export';
import { prepareTuneData, tuneJob, withRecipeDefaults, type TuneRecipe } from '../../src/jobs/tune';
import type { TuneResult as OtTuneResult } from '../../src/ot/offsite/tune';
import type { LoraTarget } from '../../src/ot/offsite/lora';
import { zipSync } from 'fflate';
import {
  RUNS_DIR,
  type CheckpointInfo,
  type RunRecord,
  type DownloadFile,
  type InputFile,
  type ProgressFn,
  type TuneOptions,
  type TuneResult,
} from '../../src/jobs/studio-api';
import { onBackend } from './backend';
import type { Backend } from '../../src/engine/backend';
import { fail, sourceOf, rethrow, expandZip, readPackage } from './files';
import { readBlob } from './blob-source';
import { openPackages, openDatasets, activeRuns, tunedRuns } from './state';
import { startControlledJob } from './jobs';

/** The backend a run ended on (the CPU one after a lost GPU device). */
const backendName = (be: Backend | null): string => be?.name ?? 'none';

export async function runsDir(): Promise<FileSystemDirectoryHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(RUNS_DIR, { create: false });
  } catch {
    return null;
  }
}

export async function readRunRecord(dir: FileSystemDirectoryHandle): Promise<RunRecord | null> {
  try {
    return JSON.parse(await (await (await dir.getFileHandle('run.json')).getFile()).text()) as RunRecord;
  } catch {
    return null;
  }
}

export async function checkpoint(): Promise<CheckpointInfo | null> {
  const dir = await runsDir();
  if (!dir) return null;
  let best: CheckpointInfo | null = null;
  for await (const [name, handle] of dir as unknown as AsyncIterable<[string, FileSystemHandle]>) {
    if (handle.kind !== 'directory' || activeRuns.has(name)) continue;
    try {
      const entry = await opfsCheckpointStore(`${RUNS_DIR}/${name}`).latest();
      // 'done' is a finished run; only a run with a 'last' (or 'best') checkpoint and no 'done' resumes.
      if (!entry || entry.id === 'done') continue;
      const meta = (entry.meta ?? {}) as { step?: number; totalSteps?: number };
      const rec = await readRunRecord(handle as FileSystemDirectoryHandle);
      const info: CheckpointInfo = {
        runId: name,
        checkpointId: entry.id,
        step: meta.step ?? 0,
        totalSteps: meta.totalSteps ?? 0,
        savedAt: entry.committedAt,
        packageName: rec?.packageName ?? '?',
        datasetName: rec?.datasetName ?? '?',
      };
      if (!best || info.savedAt > best.savedAt) best = info;
    } catch {
      // a run whose manifest is unreadable cannot be resumed: not offered
    }
  }
  return best;
}

export async function discardCheckpoint(runId: string): Promise<void> {
  const dir = await runsDir();
  if (dir) await dir.removeEntry(runId, { recursive: true }).catch(() => undefined);
}

export async function writeOpfs(dir: FileSystemDirectoryHandle, name: string, data: Blob | string): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(data);
  await w.close();
}

export function toZip(files: InputFile[]): Promise<Blob> {
  return Promise.all(files.map(async (f) => [f.path, await readBlob(f.data, f.path)] as const)).then((list) => {
    const entries: Record<string, Uint8Array> = {};
    for (const [p, b] of list) entries[p] = b;
    return new Blob([zipSync(entries, { level: 0 }) as Uint8Array<ArrayBuffer>], { type: 'application/zip' });
  });
}

export async function runTune(
  runId: string,
  pkgFiles: InputFile[],
  pkg: EmulatorPackage,
  packageName: string,
  datasetFile: InputFile,
  options: RunRecord['options'],
  onProgress: ProgressFn,
): Promise<TuneResult> {
  const { jobId, ctl, report, abort, pauser, end } = startControlledJob(onProgress);
  activeRuns.add(runId);
  try {
    report({ phase: 'tokenizer', fraction: null });
    const tok = await loadTokenizer(sourceOf(pkgFiles, packageName)).catch((e: unknown) =>
      rethrow(
        new Error(`the package has no usable tokenizer (${(e as Error).message}); packages built by the studio include tokenizer.json`),
        packageName,
      ),
    );
    const spec = pkg.meta.spec;
    const C = Math.max(8, Math.min(options.seqLen, spec.maxPositions));
    const textTok = withoutSpecialTokens(tok);
    let prepared: PreparedTraining;
    try {
      // Multiple choice trains on the correct choice as an answer (src/ot task-data), like the CLI.
      prepared = prepareTuneData(
        {
          train: { name: datasetFile.path, bytes: new Uint8Array(0), dataset: await readDatasetBlob(datasetFile.data, datasetFile.path) },
          valid: null,
        },
        textTok,
        spec,
        { contextLength: C, validFraction: options.validFraction, seed: options.seed },
      );
    } catch (e) {
      rethrow(e, datasetFile.path);
    }
    const { train, valid } = prepared;
    if (train.length === 0) fail(datasetFile.path, 'no training examples after encoding');
    const store = opfsCheckpointStore(`${RUNS_DIR}/${runId}`);
    let lastGradNorm: number | null = null;
    const t0 = performance.now();
    let result: OtTuneResult;
    let be: Backend | null = null;
    try {
      const recipe: TuneRecipe = withRecipeDefaults({
        method: options.mode === 'lora' ? 'lora' : 'adapter',
        ...(options.mode === 'lora'
          ? { lora: { r: options.lora.rank, alpha: options.lora.alpha, dropout: 0, targets: options.lora.targets as LoraTarget[] } }
          : {}),
        lr: options.lr,
        epochs: options.epochs,
        batchSize: options.batchSize,
        gradAccum: options.gradAccum,
        seed: options.seed,
        ...(valid.length ? { evalEvery: options.checkpointEvery } : {}),
        checkpointEvery: options.checkpointEvery,
      });
      // On a lost GPU device the run starts again on the CPU and resumes from its last OPFS checkpoint.
      // One tab per run: the Web Lock is held while the job lives (released if the tab dies).
      result = await withRunLock(runId, () =>
        onBackend(
          'auto',
          (b) => {
            be = b;
            report({
              phase: `loading emulator on ${backendLabel(b.name)}`,
              fraction: null,
              message: `${train.length} training and ${valid.length} validation examples, context ${C}`,
            });
            return tuneJob(
              { spec, weights: pkg.weights },
              prepared,
              { split: pkg.meta.split, recipe, backend: b, tokenizer: textTok, store },
              {
                signal: abort.signal,
                pause: pauser,
                onProgress: (p) => {
                  const el = (performance.now() - t0) / 1000;
                  // The engine's 'done' event carries gradNorm 0 as a placeholder (no step ran): show the last real one.
                  if (p.phase !== 'done') lastGradNorm = p.gradNorm;
                  report({
                    phase: p.phase === 'eval' ? 'validating' : p.phase === 'done' ? 'done' : `training on ${backendLabel(b.name)}`,
                    fraction: p.totalSteps ? p.step / p.totalSteps : null,
                    step: p.step,
                    totalSteps: p.totalSteps,
                    loss: p.loss,
                    validLoss: p.valLoss,
                    tokensPerS: p.tokensPerSec,
                    etaS: Number.isFinite(p.etaSeconds) ? p.etaSeconds : null,
                    message: `lr ${p.lr.toExponential(2)} · grad norm ${lastGradNorm === null ? '—' : lastGradNorm.toFixed(3)}${p.bestValLoss !== undefined ? ` · best valid ${p.bestValLoss.toFixed(4)}` : ''} · ${el.toFixed(0)}s`,
                  });
                },
              },
            );
          },
          { signal: abort.signal, onFallback: (message) => report({ phase: message, fraction: null, message }) },
        ),
      );
    } catch (e) {
      if (abort.signal.aborted || ctl.cancelled) {
        // The adapters trained up to the cancel stay usable: evaluate, export and try them like a finished run's.
        const partial = (e as { partial?: OtTuneResult } | null)?.partial;
        if (partial) {
          tunedRuns.set(runId, { result: partial, meta: pkg.meta, pkgFiles, packageName, datasetName: datasetFile.path });
          return {
            jobId,
            runId,
            status: 'cancelled',
            steps: partial.steps,
            totalSteps: partial.totalSteps,
            trainLoss: partial.trainLoss,
            bestValLoss: partial.bestValLoss,
            bestStep: partial.bestStep,
            weightsFrom: partial.weightsFrom,
            trainableParams: partial.trainableParams,
            tokens: partial.tokens,
            seconds: partial.seconds,
            tokensPerSec: partial.tokensPerSec,
            resumedFrom: typeof partial.resumedFrom === 'number' ? partial.resumedFrom : 0,
            backend: backendName(be),
            packageName,
            datasetName: datasetFile.path,
            mode: options.mode,
          };
        }
        return {
          jobId,
          runId,
          status: 'cancelled',
          steps: 0,
          totalSteps: 0,
          trainLoss: NaN,
          bestValLoss: null,
          bestStep: null,
          weightsFrom: null,
          trainableParams: 0,
          tokens: 0,
          seconds: (performance.now() - t0) / 1000,
          tokensPerSec: 0,
          resumedFrom: 0,
          backend: backendName(be),
          packageName,
          datasetName: datasetFile.path,
          mode: options.mode,
        };
      }
      rethrow(e, datasetFile.path);
    }
    tunedRuns.set(runId, { result, meta: pkg.meta, pkgFiles, packageName, datasetName: datasetFile.path });
    return {
      jobId,
      runId,
      status: 'done',
      steps: result.steps,
      totalSteps: result.totalSteps,
      trainLoss: result.trainLoss,
      bestValLoss: result.bestValLoss,
      bestStep: result.bestStep,
      weightsFrom: result.weightsFrom,
      trainableParams: result.trainableParams,
      tokens: result.tokens,
      seconds: result.seconds,
      tokensPerSec: result.tokensPerSec,
      resumedFrom: result.resumedFrom,
      backend: backendName(be),
      packageName,
      datasetName: datasetFile.path,
      mode: options.mode,
    };
  } finally {
    activeRuns.delete(runId);
    end();
  }
}

export async function startTune(opts: TuneOptions, onProgress: ProgressFn): Promise<TuneResult> {
  const p = openPackages.get(opts.packageId);
  if (!p) fail(undefined, 'open an emulator package first');
  const d = openDatasets.get(opts.datasetId);
  if (!d) fail(undefined, 'open a dataset first');
  const runId = `run-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const { packageId: _p, datasetId: _d, ...options } = opts;
  // Save what a resume needs next to the checkpoints: only in this browser's private storage.
  const root = await navigator.storage.getDirectory();
  const dir = await (await root.getDirectoryHandle(RUNS_DIR, { create: true })).getDirectoryHandle(runId, { create: true });
  const datasetFile = `dataset${d.file.path.slice(d.file.path.lastIndexOf('.'))}`;
  await writeOpfs(dir, 'package.zip', await toZip(p.files));
  await writeOpfs(dir, datasetFile, d.file.data);
  const rec: RunRecord = {
    runId,
    createdAt: new Date().toISOString(),
    packageName: p.summary.name,
    datasetName: d.file.path,
    datasetFile,
    options,
  };
  await writeOpfs(dir, 'run.json', JSON.stringify(rec, null, 1));
  return runTune(runId, p.files, await readPackage(p.files, p.summary.name), p.summary.name, d.file, options, onProgress);
}

export async function resumeRun(runId: string, onProgress: ProgressFn): Promise<TuneResult> {
  const root = await navigator.storage.getDirectory();
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await (await root.getDirectoryHandle(RUNS_DIR)).getDirectoryHandle(runId);
  } catch {
    fail(undefined, `run ${runId} is no longer in this browser's storage`);
  }
  const rec = await readRunRecord(dir);
  if (!rec) fail(undefined, `run ${runId}: run.json is missing, cannot resume`);
  const zip = await (await dir.getFileHandle('package.zip')).getFile();
  const files = await expandZip({ path: 'package.zip', data: zip });
  const map = new Map<string, Uint8Array>();
  for (const f of files) if (f.path === EMULATOR_JSON || f.path === EMULATOR_WEIGHTS) map.set(f.path, await readBlob(f.data, f.path));
  const pkg = readEmulatorPackage(map);
  const data = await (await dir.getFileHandle(rec.datasetFile)).getFile();
  return runTune(runId, files, pkg, rec.packageName, { path: rec.datasetName, data }, rec.options, onProgress);
}

export async function exportAdaptersJob(runId: string, format: 'safetensors' | 'peft'): Promise<DownloadFile[]> {
  const run = tunedRuns.get(runId);
  if (!run) fail(undefined, 'this run is not in memory (page reloaded?): resume or re-run it, then export');
  const m = run.meta;
  const pkg = await readPackage(run.pkgFiles, run.packageName);
  const files = await exportJob(
    run.result.adapter,
    { spec: m.spec, weights: pkg.weights, meta: m, modelId: m.source.modelId },
    {
      run: runId,
      steps: run.result.steps,
      trainLoss: run.result.trainLoss,
      bestValLoss: run.result.bestValLoss,
    },
  );
  const keep = format === 'peft' ? [PEFT_CONFIG, PEFT_WEIGHTS] : [ADAPTER_JSON, ADAPTER_WEIGHTS];
  const entries: Record<string, Uint8Array> = {};
  for (const k of keep) {
    const b = files.get(k);
    if (!b)
      fail(
        undefined,
        format === 'peft' ? 'PEFT layout exists for LoRA runs only; this run trained full adapter blocks' : `export is missing ${k}`,
      );
    entries[k] = b;
  }
  const base = `${run.packageName.replace(/\.zip$/, '').replace(/[^\w.-]+/g, '_')}-${runId}`;
  return [
    { name: `${base}-${format === 'peft' ? 'peft' : 'adapter'}.zip`, bytes: zipSync(entries, { level: 0 }), mime: 'application/zip' },
  ];
}
