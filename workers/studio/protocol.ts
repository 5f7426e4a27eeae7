import { makeBatch, withoutSpecialTokens } from '../../src/data';
import { type EvalMetrics } from '../../src/ot/offsite/evaluate';
import { defaultCompress, runProtocol, type TuneSummary } from '../../src/ot/offsite/protocol';
import { prepareEval, prepareTraining, type PreparedTraining } from '../../src/ot/offsite/task-data';
import type { LoraTarget } from '../../src/ot/offsite/lora';
import { type SupportBatch } from '../../src/ot/emulator/support';
import { type InputFile, type OTRun, type ProtocolRequest, type ProgressFn } from '../../src/jobs/studio-api';
import { pickBackend } from './backend';
import { fail, rethrow, baseName } from './files';
import { openModels, newId } from './state';
import { startControlledJob, loadOpenModel } from './jobs';

// ---------------------------------------------------------------- the OT protocol (src/ot runProtocol)

/** Full ZS / Full FT per (model, task, recipe): several methods side by side compute them once. */
export const protocolReuse = new Map<string, { fullZS?: EvalMetrics; fullFT?: { metrics: EvalMetrics; tune: TuneSummary } }>();

export function pickTaskFile(files: InputFile[], word: string): InputFile | undefined {
  return files.find((f) => baseName(f.path).toLowerCase().includes(word));
}

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
    const tt = withoutSpecialTokens(tok);
    const bytes = async (f: InputFile) => ({ name: f.path, bytes: new Uint8Array(await f.data.arrayBuffer()) });
    let prepared: PreparedTraining;
    let test;
    try {
      prepared = prepareTraining(await bytes(trainF), validF ? await bytes(validF) : null, tt, { contextLength: C, addBos: spec.family === 'llama', seed: req.tune.seed });
      test = prepareEval(await bytes(testF), tt, { contextLength: spec.maxPositions, addBos: spec.family === 'llama' });
    } catch (e) {
      rethrow(e, trainF.path);
    }
    const padId = tok.padId ?? tok.eosId ?? 0;
    const sup = prepared.train.slice(0, Math.max(1, req.supportExamples));
    const support: SupportBatch[] = [];
    for (let i = 0; i < sup.length; i += 4) {
      const b = makeBatch(sup, Array.from({ length: Math.min(4, sup.length - i) }, (_, k) => i + k), { padId });
      support.push({ ids: b.ids, targets: b.targets, B: b.batchSize, T: b.seqLen });
    }
    const be = await pickBackend('auto');
    const t = req.tune;
    const recipe = { lr: t.lr, epochs: t.epochs, batchSize: t.batchSize, gradAccum: t.gradAccum, seed: t.seed, padId,
      method: t.mode === 'lora' ? ('lora' as const) : ('adapter' as const),
      lora: t.mode === 'lora' ? { r: t.lora.rank, alpha: t.lora.alpha, dropout: 0, targets: t.lora.targets as LoraTarget[] } : undefined };
    const key = JSON.stringify([cur.summary.name, taskFiles.map((f) => [f.path, f.data.size]), recipe, C, req.setting.adapters]);
    const reuse = protocolReuse.get(key) ?? {};
    const phases: Record<string, number> = { 'full-zs': 0.05, compress: 0.15, 'emulator-zs': 0.25, tune: 0.3, 'emulator-ft': 0.8, 'plug-in': 0.88, 'full-ft-tune': 0.9, 'full-ft': 0.98 };
    const r = await runProtocol({ spec, weights: model.weights, modelId: cur.summary.name }, {
      method: req.setting.method, keep: req.setting.keep, split: req.setting.adapters,
      compress: defaultCompress(support, { lambdaAttn: req.setting.lambdaAttn, lambdaMlp: req.setting.lambdaMlp }),
      task: { name: baseName(testF.path), train: prepared.train, valid: prepared.valid, test },
      tune: recipe, fullFT: req.fullFT, backend: be, padId, reuse, signal: abort.signal,
      onProgress: (p) => {
        const base = phases[p.phase] ?? null;
        const frac = p.phase === 'tune' && p.tune && p.tune.totalSteps ? 0.3 + 0.5 * (p.tune.step / p.tune.totalSteps) : base;
        report({
          phase: `${req.setting.method} keep ${req.setting.keep}: ${p.phase}${p.result ? ' ✓' : ''}`, fraction: frac,
          step: p.tune?.step, totalSteps: p.tune?.totalSteps, loss: p.tune?.loss, tokensPerS: p.tune?.tokensPerSec,
        });
      },
    }).catch((e: unknown) => rethrow(e, cur.summary.name));
    protocolReuse.set(key, {
      fullZS: r.details.fullZS,
      ...(r.details.fullFT && r.fullTune ? { fullFT: { metrics: r.details.fullFT, tune: r.fullTune } } : reuse.fullFT ? { fullFT: reuse.fullFT } : {}),
    });
    return {
      id: newId('ot'), createdAt: new Date().toISOString(), model: r.model, task: r.task, setting: req.setting,
      fullZS: r.fullZS, emulatorZS: r.emulatorZS, emulatorFT: r.emulatorFT, plugIn: r.plugIn, fullFT: r.fullFT,
      delta: r.delta, deltaStderr: r.deltaStderr ?? null, compressionRatio: r.compressionRatio, metric: r.metric, origin: 'browser', report: JSON.parse(JSON.stringify(r)),
    };
  } finally {
    end();
  }
}
