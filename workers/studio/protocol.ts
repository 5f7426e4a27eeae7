/**
 * The researcher's grid: one protocol setting per call over src/jobs protocol, with Full ZS / Full FT reused
 * across settings of one model, task and recipe.
 */
import { readDatasetBlob, withoutSpecialTokens } from '../../src/data';
import type { LoraTarget } from '../../src/ot/offsite/lora';
import {
  prepareProtocolData,
  reuseFrom,
  runProtocolJob as runProtocolSetting,
  type ProtocolData,
  type ProtocolJobOptions,
} from '../../src/jobs/protocol';
import { withRecipeDefaults } from '../../src/jobs/tune';
import type { InputFile, OTRun, ProtocolRequest, ProgressFn } from '../../src/jobs/studio-api';
import { runVerdicts } from '../../src/ot/offsite/verdicts';
import { onBackend } from './backend';
import { fail, rethrow, baseName } from './files';
import { openModels, newId } from './state';
import { startControlledJob, loadOpenModel } from './jobs';

/** Full ZS / Full FT per (model, task, recipe): several methods side by side compute them once. */
export const protocolReuse = new Map<string, NonNullable<ProtocolJobOptions['reuse']>>();

/** The task's name: its folder when the files are plainly named train/test/valid (a task folder), else the test file's name. */
export function taskName(testPath: string): string {
  const parts = testPath.split('/').filter(Boolean);
  const file = parts[parts.length - 1] ?? testPath;
  return parts.length > 1 && /^(train|test|valid)\.[a-z]+$/i.test(file) ? parts[parts.length - 2]! : baseName(testPath);
}

export function pickTaskFile(files: InputFile[], word: string): InputFile | undefined {
  return files.find((f) => baseName(f.path).toLowerCase().includes(word));
}

/** One setting of the protocol on the open model (src/jobs/protocol.ts, the job `gradot ot` runs). */
export async function runProtocolJob(req: ProtocolRequest, taskFiles: InputFile[], onProgress: ProgressFn): Promise<OTRun> {
  const cur = openModels.get('current');
  if (!cur) fail(undefined, 'open a model in the Model owner view first');
  const trainF = pickTaskFile(taskFiles, 'train');
  const testF = pickTaskFile(taskFiles, 'test');
  if (!trainF || !testF) {
    fail(taskFiles[0]?.path, `the protocol needs a *train* and a *test* file (got ${taskFiles.map((f) => f.path).join(', ') || 'none'})`);
  }
  const validF = pickTaskFile(taskFiles, 'valid');
  const { report, abort, end } = startControlledJob(onProgress);
  try {
    report({ phase: 'loading model and task', fraction: null });
    const { model, tok } = await loadOpenModel(cur);
    const spec = model.spec;
    const C = Math.max(8, Math.min(req.tune.seqLen, spec.maxPositions));
    // Streamed from the Files (no whole-file copies); DatasetErrors name the file and line.
    const file = async (f: InputFile) => ({ name: f.path, bytes: new Uint8Array(0), dataset: await readDatasetBlob(f.data, f.path) });
    let data: ProtocolData;
    try {
      data = prepareProtocolData(
        { name: taskName(testF.path), train: await file(trainF), valid: validF ? await file(validF) : null, test: await file(testF) },
        withoutSpecialTokens(tok),
        spec,
        {
          // Training on the recipe's context; evaluation on the model's whole context.
          contextLength: C,
          evalContextLength: spec.maxPositions,
          seed: req.tune.seed,
          needSupport: req.setting.method === 'gradot',
          supportExamples: req.supportExamples,
          // Example limits keep a grid small (0 = all).
          ...(req.trainLimit ? { limitTrain: req.trainLimit } : {}),
          ...(req.testLimit ? { limitTest: req.testLimit } : {}),
        },
      );
    } catch (e) {
      rethrow(e, trainF.path);
    }
    const t = req.tune;
    const recipe: ProtocolJobOptions['tune'] = withRecipeDefaults({
      lr: t.lr,
      epochs: t.epochs,
      batchSize: t.batchSize,
      gradAccum: t.gradAccum,
      seed: t.seed,
      method: t.mode === 'lora' ? 'lora' : 'adapter',
      ...(t.mode === 'lora' ? { lora: { r: t.lora.rank, alpha: t.lora.alpha, dropout: 0, targets: t.lora.targets as LoraTarget[] } } : {}),
    });
    const key = JSON.stringify([
      cur.summary.name,
      taskFiles.map((f) => [f.path, f.data.size]),
      recipe,
      C,
      req.setting.adapters,
      req.trainLimit ?? 0,
      req.testLimit ?? 0,
    ]);
    const reuse = protocolReuse.get(key) ?? {};
    const phases: Record<string, number> = {
      'full-zs': 0.05,
      compress: 0.15,
      'emulator-zs': 0.25,
      tune: 0.3,
      'emulator-ft': 0.8,
      'plug-in': 0.88,
      'full-ft-tune': 0.9,
      'full-ft': 0.98,
    };
    // On a lost GPU device the setting starts again on the CPU backend.
    const r = await onBackend(
      'auto',
      (be) =>
        runProtocolSetting(
          { spec, weights: model.weights, modelId: cur.summary.name },
          data,
          {
            method: req.setting.method,
            keep: req.setting.keep,
            split: req.setting.adapters,
            lambdaAttn: req.setting.lambdaAttn,
            lambdaMlp: req.setting.lambdaMlp,
            tune: recipe,
            fullFT: req.fullFT,
            backend: be,
            reuse,
          },
          {
            signal: abort.signal,
            onProgress: (p) => {
              const base = phases[p.phase] ?? null;
              const frac = p.phase === 'tune' && p.tune && p.tune.totalSteps ? 0.3 + 0.5 * (p.tune.step / p.tune.totalSteps) : base;
              report({
                phase: `${req.setting.method} keep ${req.setting.keep}: ${p.phase}${p.result ? ' ✓' : ''}`,
                fraction: frac,
                step: p.tune?.step,
                totalSteps: p.tune?.totalSteps,
                loss: p.tune?.loss,
                tokensPerS: p.tune?.tokensPerSec,
              });
            },
          },
        ),
      { signal: abort.signal, onFallback: (message) => report({ phase: message, fraction: null, message }) },
    ).catch((e: unknown) => rethrow(e, cur.summary.name));
    protocolReuse.set(key, reuseFrom(r, reuse));
    return {
      id: newId('ot'),
      createdAt: new Date().toISOString(),
      model: r.model,
      task: r.task,
      setting: req.setting,
      fullZS: r.fullZS,
      emulatorZS: r.emulatorZS,
      emulatorFT: r.emulatorFT,
      plugIn: r.plugIn,
      fullFT: r.fullFT,
      delta: r.delta,
      deltaStderr: r.deltaStderr ?? null,
      hidesStderr: r.privacyGapStderr ?? null,
      verdicts: runVerdicts(r),
      compressionRatio: r.compressionRatio,
      metric: r.metric,
      origin: 'browser',
      report: JSON.parse(JSON.stringify(r)),
    };
  } finally {
    end();
  }
}
