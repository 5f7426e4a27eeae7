import { useEffect, useMemo, useState, type ReactNode } from 'react';
import type { DatasetPreview, ProgressEvent } from '../../jobs/studio-api';
import { DEFAULT_EVAL_LIMIT, DEFAULT_LR, useUi } from '../../store/ui';
import { LineChart } from '../charts/LineChart';
import { estimateEvalSeconds } from '../grid-estimate';
import { CancelButton, CapButton, Empty, KV, MetricsTable, NumField, Panel, Progress, type JobEnd } from '../components/common';
import { TryIt } from '../components/TryIt';
import { FileDrop } from '../components/FileDrop';
import { download, formatCount, formatDuration, isCancelError, progressProxy, reportError, studio } from '../studio';
import { backendLabel } from '../format';

/** A job whose state lives in one panel (evaluate, plug-in, generation). */
export interface LocalJob {
  running: boolean;
  progress: ProgressEvent | null;
  ended: JobEnd;
}
export const idleLocalJob: LocalJob = { running: false, progress: null, ended: null };

/** Dataset kinds in the user's words (the code's names stay in the tooltip). */
const KIND_WORDS: Record<string, string> = { mc: 'multiple choice', lm: 'plain text', sft: 'prompt and answer' };

function DatasetTable({ d }: { d: DatasetPreview }) {
  return (
    <>
      <div className="meta">
        {d.ok ? (
          <>
            {d.file} · {d.format} · {d.totalRows} rows of{' '}
            <b title={`kind ${d.kind}; checked by ${d.validatedBy}`}>{KIND_WORDS[d.kind] ?? d.kind}</b>
          </>
        ) : (
          <>{d.file}: not usable</>
        )}
      </div>
      {d.issues.length ? (
        <div className="alert error" role="alert" data-testid="dataset-issues">
          <strong>
            {d.issues.length} problem{d.issues.length > 1 ? 's' : ''}
          </strong>
          <ul>
            {d.issues.slice(0, 8).map((i, k) => (
              <li key={k}>
                <span className="mono">
                  {i.file}
                  {i.line ? `:${i.line}` : ''}
                </span>{' '}
                {i.message}
              </li>
            ))}
            {d.issues.length > 8 ? <li>… and {d.issues.length - 8} more</li> : null}
          </ul>
        </div>
      ) : null}
      {d.warnings.length ? (
        <div className="alert warnbox">
          {d.warnings.map((w, k) => (
            <div key={k}>{w}</div>
          ))}
        </div>
      ) : null}
      {d.rows.length ? (
        <div className="table-wrap">
          <table className="dense preview">
            <thead>
              <tr>
                {d.columns.map((c) => (
                  <th key={c}>{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {d.rows.slice(0, 12).map((r, i) => (
                <tr key={i}>
                  {d.columns.map((c) => (
                    <td key={c} title={r[c]} className={c === 'line' ? 'num muted' : undefined}>
                      {r[c]}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

/** Every problem of a rejected file in one toast: the first few with their lines, then how many more. */
export function reportIssue(p: DatasetPreview): void {
  const i = p.issues[0];
  if (!i) return;
  const shown = 5;
  const rest = p.issues.slice(1, shown).map((x) => `${x.line ? `line ${x.line}: ` : ''}${x.message}`);
  const more = p.issues.length > shown ? ` (and ${p.issues.length - shown} more problems)` : '';
  const message = rest.length ? `${i.message}; ${rest.join('; ')}${more}` : i.message;
  useUi.getState().pushToast({
    level: 'error',
    file: i.file,
    line: i.line ?? undefined,
    message: `${p.issues.length > 1 ? `${p.issues.length} problems: ` : ''}${message}`,
  });
}

function ResumeBanner() {
  const ck = useUi((s) => s.checkpoint);
  const setCk = useUi((s) => s.setCheckpoint);
  const caps = useUi((s) => s.capabilities);
  const running = useUi((s) => s.tuneJob.running);
  const ended = useUi((s) => s.tuneJob.ended);
  const partial = useUi((s) => s.tuneResult);
  if (!ck || running) return null;
  // A cancel the user just clicked is not an interruption: say what happened and what is kept.
  const cancelled = ended === 'cancelled';
  return (
    <div className="alert info" data-testid="resume-banner">
      <strong>{cancelled ? 'Training cancelled.' : 'A previous run was interrupted.'}</strong> {ck.packageName} on {ck.datasetName}: last
      checkpoint at step {ck.step}/{ck.totalSteps}, saved {ck.savedAt ? new Date(ck.savedAt).toLocaleString() : '?'} (in this browser's
      private storage){cancelled ? '; resume to continue from it' : ''}.
      {cancelled && partial?.status === 'cancelled' && partial.steps > 0 ? (
        <div data-testid="partial-adapters">The adapters as trained up to step {partial.steps} can be evaluated and downloaded below.</div>
      ) : null}
      <span className="row">
        <CapButton cap={caps?.tune} disabled={running} onClick={() => void startTune(ck.runId)}>
          Resume
        </CapButton>
        <button
          className="secondary"
          onClick={async () => {
            await studio().discardCheckpoint(ck.runId);
            setCk(null);
          }}
        >
          Discard
        </button>
      </span>
    </div>
  );
}

async function startTune(resumeRunId?: string) {
  const ui = useUi.getState();
  const t = ui.tune;
  if (!resumeRunId && (!ui.pkg || !ui.dataset)) return;
  ui.setTuneJob({ running: true, paused: false, pausing: false, ended: null, progress: null, jobId: null, lossCurve: [] });
  ui.setTuneResult(null);
  const onProgress = progressProxy((p) => {
    const s = useUi.getState();
    const curve =
      p.step !== undefined && p.loss !== undefined && p.phase !== 'done'
        ? [...s.tuneJob.lossCurve.filter((c) => c.step !== p.step), { step: p.step, loss: p.loss, validLoss: p.validLoss }]
        : s.tuneJob.lossCurve;
    // An event after Pause was clicked is the step that was in flight finishing: the job is now paused.
    s.setTuneJob({ progress: p, jobId: p.jobId, lossCurve: curve, pausing: false });
  });
  let ended: 'done' | 'cancelled' | 'failed' = 'failed';
  try {
    const r = resumeRunId
      ? await studio().resumeRun(resumeRunId, onProgress)
      : await studio().tune(
          {
            packageId: ui.pkg!.packageId,
            datasetId: ui.dataset!.datasetId,
            mode: t.mode,
            lora: { rank: t.loraRank, alpha: t.loraAlpha, targets: t.loraTargets },
            lr: t.lr,
            epochs: t.epochs,
            batchSize: t.batchSize,
            gradAccum: t.gradAccum,
            seqLen: t.seqLen,
            seed: t.seed,
            checkpointEvery: t.checkpointEvery,
            validFraction: t.validFraction,
          },
          onProgress,
        );
    if (r.status === 'cancelled') {
      ended = 'cancelled';
      if (r.steps > 0) {
        // What was trained up to the cancel stays usable: evaluate it, download it, try it.
        ui.setTuneRunId(r.runId);
        useUi.getState().setTuneRunMode(r.mode ?? (resumeRunId ? null : t.mode));
        useUi.getState().setTuneResult(r);
      }
    } else {
      ended = 'done';
      ui.setTuneRunId(r.runId);
      // A resumed run's kind is whatever it was started with (the worker says which), not this session's panel.
      useUi.getState().setTuneRunMode(r.mode ?? (resumeRunId ? null : t.mode));
      useUi.getState().setTuneResult(r);
    }
  } catch (e) {
    if (isCancelError(e)) ended = 'cancelled';
    else reportError(e);
  } finally {
    useUi.getState().setTuneJob({ running: false, paused: false, pausing: false, ended });
    useUi.getState().setCheckpoint(
      await studio()
        .checkpoint()
        .catch(() => null),
    );
  }
}

function TrainingSettings() {
  const t = useUi((s) => s.tune);
  const set = useUi((s) => s.setTune);
  const caps = useUi((s) => s.capabilities);
  const job = useUi((s) => s.tuneJob);
  const setJob = useUi((s) => s.setTuneJob);
  const pkg = useUi((s) => s.pkg);
  const dataset = useUi((s) => s.dataset);
  const ready = !!pkg && !!dataset && dataset.ok;
  const targets = ['q', 'k', 'v', 'o', 'up', 'gate', 'down'];
  return (
    <Panel title="Training">
      <div className="methods" role="radiogroup" aria-label="adapter mode">
        <label className={t.mode === 'full' ? 'chip on' : 'chip'} title="train the adapter blocks' weights directly">
          <input
            type="radio"
            checked={t.mode === 'full'}
            onChange={() => set({ mode: 'full', lr: t.lr === DEFAULT_LR.lora ? DEFAULT_LR.full : t.lr })}
          />{' '}
          Full adapter blocks
        </label>
        <label className={t.mode === 'lora' ? 'chip on' : 'chip'} title="low-rank updates on the adapter blocks">
          <input
            type="radio"
            checked={t.mode === 'lora'}
            onChange={() => set({ mode: 'lora', lr: t.lr === DEFAULT_LR.full ? DEFAULT_LR.lora : t.lr })}
          />{' '}
          LoRA
        </label>
      </div>
      {t.mode === 'lora' ? (
        <div className="row wrap">
          <NumField
            label="rank"
            value={t.loraRank}
            min={1}
            step={1}
            onChange={(v) => set({ loraRank: Math.max(1, Math.round(v)) })}
            width={52}
          />
          <NumField label="alpha" value={t.loraAlpha} step={1} onChange={(v) => set({ loraAlpha: v })} width={52} />
          <span className="field">
            <span>targets</span>
            <span className="targets">
              {targets.map((x) => (
                <label key={x} className="mini">
                  <input
                    type="checkbox"
                    checked={t.loraTargets.includes(x)}
                    onChange={(e) => set({ loraTargets: e.target.checked ? [...t.loraTargets, x] : t.loraTargets.filter((y) => y !== x) })}
                  />
                  {x}
                </label>
              ))}
            </span>
          </span>
        </div>
      ) : null}
      <div className="row wrap">
        <NumField
          label="lr"
          value={t.lr}
          step={t.mode === 'lora' ? 1e-3 : 1e-5}
          onChange={(v) => set({ lr: v })}
          width={80}
          hint={`default ${DEFAULT_LR[t.mode]} for ${t.mode === 'lora' ? 'LoRA' : 'full adapter blocks'}`}
        />
        <NumField
          label="epochs"
          value={t.epochs}
          min={1}
          step={1}
          onChange={(v) => set({ epochs: Math.max(1, Math.round(v)) })}
          width={52}
        />
        <NumField
          label="batch"
          value={t.batchSize}
          min={1}
          step={1}
          onChange={(v) => set({ batchSize: Math.max(1, Math.round(v)) })}
          width={52}
        />
        <NumField
          label="grad accum"
          value={t.gradAccum}
          min={1}
          step={1}
          onChange={(v) => set({ gradAccum: Math.max(1, Math.round(v)) })}
          width={52}
        />
        <NumField
          label="seq len"
          value={t.seqLen}
          min={8}
          step={8}
          onChange={(v) => set({ seqLen: Math.max(8, Math.round(v)) })}
          width={60}
        />
        <NumField label="seed" value={t.seed} step={1} onChange={(v) => set({ seed: Math.round(v) })} width={52} />
        <NumField
          label="checkpoint every"
          value={t.checkpointEvery}
          min={1}
          step={1}
          onChange={(v) => set({ checkpointEvery: Math.max(1, Math.round(v)) })}
          width={52}
          hint="optimizer steps between resumable checkpoints (saved in this browser only)"
        />
        <NumField
          label="valid fraction"
          value={t.validFraction}
          min={0}
          max={0.5}
          step={0.05}
          onChange={(v) => set({ validFraction: Math.min(0.5, Math.max(0, v)) })}
          width={56}
          hint="share of records held out for validation (0 = none); the best-validation weights are kept"
        />
      </div>
      <div className="row">
        <CapButton cap={caps?.tune} disabled={!ready || job.running} onClick={() => void startTune()}>
          Start
        </CapButton>
        {job.running && job.jobId ? (
          <>
            {job.paused ? (
              <button
                className="secondary"
                onClick={async () => {
                  setJob({ paused: false, pausing: false });
                  await studio().resume(job.jobId!);
                }}
              >
                Resume
              </button>
            ) : (
              // Feedback at once: the worker stops at the end of the step in flight (seconds with full blocks).
              <button
                className="secondary"
                onClick={async () => {
                  setJob({ paused: true, pausing: true });
                  await studio().pause(job.jobId!);
                }}
              >
                Pause
              </button>
            )}
            <button className="secondary" data-testid="cancel" onClick={() => void studio().cancel(job.jobId!)}>
              Cancel
            </button>
          </>
        ) : null}
        {!ready ? <span className="muted small">open an emulator package and a dataset first</span> : null}
      </div>
      <Progress progress={job.progress} running={job.running} paused={job.paused && !job.pausing} pausing={job.pausing} ended={job.ended} />
    </Panel>
  );
}

function LossPanel() {
  const job = useUi((s) => s.tuneJob);
  const r = useUi((s) => s.tuneResult);
  const x = useMemo(() => job.lossCurve.map((p) => p.step), [job.lossCurve]);
  const series = useMemo(() => {
    const s = [{ label: 'train loss', values: job.lossCurve.map((p) => p.loss) as (number | null)[] }];
    if (job.lossCurve.some((p) => p.validLoss !== undefined)) {
      s.push({ label: 'valid loss', values: job.lossCurve.map((p) => p.validLoss ?? null) });
    }
    return s;
  }, [job.lossCurve]);
  return (
    <Panel title="Loss">
      {job.lossCurve.length ? (
        <LineChart x={x} series={series} xLabel="step" yLabel="loss" height={240} />
      ) : (
        <Empty>The live loss curve, tokens/s and ETA appear here while the adapters train.</Empty>
      )}
      {r ? (
        <KV
          items={[
            ['run', `${r.runId} (${r.packageName} on ${r.datasetName})`],
            [
              'steps',
              `${r.steps}/${r.totalSteps}${r.resumedFrom !== 0 ? ` (resumed from ${r.resumedFrom})` : ''}${r.status === 'cancelled' ? ' (cancelled there; these adapters are usable)' : ''}`,
            ],
            ['train loss (last step)', r.trainLoss.toFixed(4)],
            ['best valid loss', r.bestValLoss === null ? '—' : `${r.bestValLoss.toFixed(4)} at step ${r.bestStep}`],
            ['weights kept', r.weightsFrom ?? '—'],
            ['trainable parameters', formatCount(r.trainableParams)],
            ['throughput', `${r.tokensPerSec.toFixed(0)} tokens/s on ${backendLabel(r.backend)}, ${r.seconds.toFixed(1)}s`],
          ]}
        />
      ) : null}
    </Panel>
  );
}

function EvalPanel() {
  const caps = useUi((s) => s.capabilities);
  const pkg = useUi((s) => s.pkg);
  const runId = useUi((s) => s.tuneRunId);
  const result = useUi((s) => s.evalResult);
  const setResult = useUi((s) => s.setEvalResult);
  const [evalSet, setEvalSet] = useState<DatasetPreview | null>(null);
  const runMode = useUi((s) => s.tuneRunMode);
  const [limit, setLimit] = useState(DEFAULT_EVAL_LIMIT);
  const [job, setJob] = useState<LocalJob>(idleLocalJob);
  const evaluate = async () => {
    if (!evalSet) return;
    setJob({ ...idleLocalJob, running: true });
    let ended: JobEnd = 'failed';
    try {
      const r = await studio().evaluate(
        { packageId: pkg?.packageId, runId: runId ?? undefined, datasetId: evalSet.datasetId, limit },
        progressProxy((p) => setJob((j) => ({ ...j, progress: p }))),
      );
      setResult(r);
      const per = [r.emulatorZS, r.emulatorFT].filter((x) => !!x).reduce((a, x) => a + x!.seconds / Math.max(1, x!.n), 0);
      if (per > 0) setSecondsPerItem(per);
      ended = 'done';
    } catch (e) {
      if (isCancelError(e)) ended = 'cancelled';
      else reportError(e);
    } finally {
      setJob((j) => ({ ...j, running: false, ended }));
    }
  };
  const [secondsPerItem, setSecondsPerItem] = useState<number | null>(null);
  const items = evalSet ? (limit > 0 ? Math.min(limit, evalSet.totalRows) : evalSet.totalRows) : 0;
  const passes = runId ? 2 : 1;
  // Before the first evaluation: the tuning run on this emulator measured its speed.
  const tuneResult = useUi((s) => s.tuneResult);
  const fromTune =
    evalSet && tuneResult && evalSet.meanScoredChars
      ? estimateEvalSeconds(items, evalSet.meanScoredChars, passes, tuneResult.tokensPerSec)
      : null;
  const exportAdapters = async (format: 'safetensors' | 'peft') => {
    if (!runId) return;
    try {
      for (const f of await studio().exportAdapters(runId, format)) download(f.name, f.bytes, f.mime);
    } catch (e) {
      reportError(e);
    }
  };
  return (
    <Panel title="Evaluate and export">
      <FileDrop
        label={
          evalSet
            ? `evaluation file: ${evalSet.file} (${evalSet.totalRows} ${KIND_WORDS[evalSet.kind] ?? evalSet.kind} records)`
            : 'Drop an evaluation file (e.g. test.jsonl); read locally'
        }
        accept=".jsonl,.json,.csv,.txt"
        testId="eval-drop"
        onFiles={async (files) => {
          const p = await studio().openDataset(files[0]!);
          if (!p.ok) {
            reportIssue(p);
            return;
          }
          setEvalSet(p);
        }}
      />
      <div className="row wrap">
        <NumField
          label="examples (0 = all)"
          value={limit}
          min={0}
          step={1}
          onChange={(v) => setLimit(Math.max(0, Math.round(v)))}
          width={70}
          hint="evaluate on the first N examples of the file only (faster on slow backends)"
        />
        <CapButton cap={caps?.evaluate} disabled={(!pkg && !runId) || !evalSet || job.running} onClick={evaluate}>
          {runId ? 'Evaluate emulator: zero-shot and fine-tuned' : 'Evaluate emulator (zero-shot)'}
        </CapButton>
        <CancelButton jobId={job.progress?.jobId} running={job.running} onCancel={() => void studio().cancel(job.progress!.jobId)} />
        <CapButton cap={caps?.exportAdapters} kind="secondary" disabled={!runId} onClick={() => void exportAdapters('safetensors')}>
          Download adapters (.safetensors)
        </CapButton>
        <CapButton
          cap={caps?.exportAdapters}
          kind="secondary"
          disabled={!runId || runMode === 'full'}
          title={
            runMode === 'full'
              ? 'PEFT describes LoRA adapters; this run trained full adapter blocks (download .safetensors instead)'
              : undefined
          }
          onClick={() => void exportAdapters('peft')}
        >
          Download PEFT (LoRA runs)
        </CapButton>
      </div>
      {evalSet && !job.running ? (
        <div className="muted small" data-testid="eval-estimate">
          {items} of {evalSet.totalRows} examples × {passes} pass{passes > 1 ? 'es' : ''}
          {secondsPerItem
            ? ` · about ${formatDuration(items * secondsPerItem)} at the last run's speed`
            : fromTune !== null
              ? ` · about ${formatDuration(fromTune)} (estimated from the tuning run's speed: ${tuneResult!.tokensPerSec.toFixed(0)} tokens/s training ≈ 3 forward passes per token)`
              : ' · the time estimate appears after a tuning run or the first batch'}
        </div>
      ) : null}
      <Progress progress={job.running ? job.progress : null} running={job.running} ended={job.ended} />
      {result ? (
        <>
          <div className="meta">
            {result.file} · on {backendLabel(result.backend)}
          </div>
          <MetricsTable
            rows={[
              ['Emulator ZS', result.emulatorZS],
              ['Emulator FT', result.emulatorFT],
            ]}
          />
        </>
      ) : null}
    </Panel>
  );
}

/** Generation from what was tuned: the emulator with this run's adapters applied. */
function TunedTryIt() {
  const r = useUi((s) => s.tuneResult);
  const target = r && (r.status === 'done' || r.steps > 0) ? ({ kind: 'run', runId: r.runId } as const) : null;
  return <TryIt target={target} hint="Finish (or resume) a tuning run to try the emulator with your adapters." testId="try-data" />;
}

export function DataOwnerView() {
  const pkg = useUi((s) => s.pkg);
  const setPkg = useUi((s) => s.setPkg);
  const dataset = useUi((s) => s.dataset);
  const setDataset = useUi((s) => s.setDataset);
  const setCk = useUi((s) => s.setCheckpoint);

  useEffect(() => {
    studio()
      .checkpoint()
      .then(setCk, () => setCk(null));
  }, [setCk]);

  return (
    <div className="view two-col" data-testid="view-data">
      <div className="col-left">
        <ResumeBanner />
        <Panel title="Emulator package">
          <FileDrop
            label={
              pkg ? `${pkg.name}: ${pkg.method} emulator of ${pkg.sourceModel}` : 'Drop the emulator package (.zip or folder) you received'
            }
            accept=".zip,.json,.safetensors"
            folder
            multiple
            testId="package-drop"
            onFiles={async (files) => {
              const name = files.length === 1 ? files[0]!.path : files[0]!.path.split('/')[0]!;
              setPkg(await studio().openPackage(name, files));
            }}
          />
          {pkg ? (
            <KV
              items={[
                ['source model', pkg.sourceModel],
                ['method', pkg.method],
                ['tensors', `${pkg.tensorCount} (${formatCount(pkg.params)} parameters)`],
                ['files', pkg.files.map((f) => f.path).join(', ')],
                ...(pkg.warnings.length
                  ? ([
                      [
                        'warnings',
                        <span key="w" className="warn">
                          {pkg.warnings.join('; ')}
                        </span>,
                      ],
                    ] as [string, ReactNode][])
                  : []),
              ]}
            />
          ) : null}
        </Panel>
        <Panel title="Dataset">
          <FileDrop
            label="Drop your training data (.jsonl, .csv or .txt) — read locally, never uploaded"
            accept=".jsonl,.json,.csv,.txt"
            testId="dataset-drop"
            onFiles={async (files) => {
              const p = await studio().openDataset(files[0]!);
              setDataset(p);
              if (!p.ok) reportIssue(p);
            }}
          />
          {dataset ? (
            <div className="meta">
              {dataset.ok
                ? `${dataset.file}: ${dataset.totalRows} ${KIND_WORDS[dataset.kind] ?? dataset.kind} records`
                : `${dataset.file}: not usable (see preview)`}
            </div>
          ) : null}
        </Panel>
        <TrainingSettings />
      </div>
      <div className="col-right">
        <Panel title="Dataset preview">
          {dataset ? (
            <DatasetTable d={dataset} />
          ) : (
            <Empty>Rows of your dataset, with any problem named by file and line, appear here. Nothing is uploaded.</Empty>
          )}
        </Panel>
        <LossPanel />
        <EvalPanel />
        <TunedTryIt />
      </div>
    </div>
  );
}
