import { useEffect, useMemo, useRef, useState } from 'react';
import type { CompressMethod, InputFile, OTRun, OTSetting, ProgressEvent, ProtocolRequest } from '../../jobs/studio-api';
import { hidesOf, lambdaModeOfRun, parseRunsJson, runsToCsv, runsToJson, settingPoints, useRuns, type UtilityAxis } from '../../store/runs';
import { useUi } from '../../store/ui';
import { PlaneChart, type MarkerShape, type PlaneSeries } from '../charts/PlaneChart';
import { CancelButton, CapButton, Empty, NumField, Panel, Progress, type JobEnd } from '../components/common';
import { FileDrop } from '../components/FileDrop';
import { reportIssue } from './DataOwnerView';
import { BUNDLED_TASKS, fetchBundledTask } from '../bundled';
import { overallProgress } from '../format';
import { CompareRuns } from './research/CompareRuns';
import { GridEstimate } from './research/GridEstimate';
import { download, isCancelError, progressProxy, reportError, reportInfo, studio } from '../studio';

const ALL_METHODS: CompressMethod[] = ['gradot', 'svd', 'prune', 'drop', 'none'];
const METHOD_COLOR: Record<CompressMethod, string> = {
  gradot: '#2563eb',
  svd: '#d97706',
  prune: '#7c3aed',
  drop: '#dc2626',
  none: '#4b5563',
};
const METHOD_SHAPE: Record<CompressMethod, MarkerShape> = {
  gradot: 'circle',
  svd: 'square',
  prune: 'triangle',
  drop: 'diamond',
  none: 'cross',
};
const SWEEP_COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777'];

function parseList(text: string): number[] | null {
  const parts = text
    .split(/[,\s]+/)
    .filter(Boolean)
    .map(Number);
  return parts.length && parts.every((v) => Number.isFinite(v)) ? parts : null;
}

function ListField({ label, value, onChange, hint }: { label: string; value: number[]; onChange: (v: number[]) => void; hint: string }) {
  const [text, setText] = useState(value.join(', '));
  const bad = parseList(text) === null;
  return (
    <label className="field" title={hint}>
      <span>{label}</span>
      <input
        className={bad ? 'bad' : ''}
        value={text}
        style={{ width: 110 }}
        onChange={(e) => {
          setText(e.target.value);
          const v = parseList(e.target.value);
          if (v) onChange(v);
        }}
      />
    </label>
  );
}

interface GridJob {
  running: boolean;
  /** Index of the setting (× seed) running now, and how many there are. */
  index: number;
  total: number;
  progress: ProgressEvent | null;
  jobId: string | null;
  ended: JobEnd;
  startedAt: number;
  doneAt: number;
  /** Settings finished and saved in this grid. */
  kept: number;
}

function expandGrid(methods: CompressMethod[], keeps: number[], lambdas: number[], bottom: number, top: number): OTSetting[] {
  const out: OTSetting[] = [];
  for (const method of methods) {
    // λ only matters for GradOT; keep only matters for compressing methods.
    const ks = method === 'none' ? [1] : keeps;
    const ls = method === 'gradot' ? lambdas : [0];
    for (const keep of ks) for (const l of ls) out.push({ method, keep, lambdaAttn: l, lambdaMlp: l, adapters: { bottom, top } });
  }
  return out;
}

function fmt(v: number | null, digits = 3): string {
  return v === null ? '—' : v.toFixed(digits);
}

function RunsTable({ runs }: { runs: OTRun[] }) {
  const remove = useRuns((s) => s.remove);
  const [sort, setSort] = useState<{ key: keyof OTRun | 'keep' | 'method'; dir: 1 | -1 }>({ key: 'createdAt', dir: 1 });
  const sorted = useMemo(() => {
    const get = (r: OTRun): number | string => {
      if (sort.key === 'keep') return r.setting.keep;
      if (sort.key === 'method') return r.setting.method;
      const v = r[sort.key as keyof OTRun];
      return typeof v === 'number' || typeof v === 'string' ? v : -Infinity;
    };
    return [...runs].sort((a, b) => (get(a) < get(b) ? -sort.dir : get(a) > get(b) ? sort.dir : 0));
  }, [runs, sort]);
  const th = (key: typeof sort.key, label: string, num = true) => (
    <th
      className={num ? 'num sortable' : 'sortable'}
      onClick={() => setSort((s) => ({ key, dir: s.key === key ? (s.dir === 1 ? -1 : 1) : -1 }))}
    >
      {label}
      {sort.key === key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
    </th>
  );
  return (
    <div className="table-wrap tall">
      <table className="dense" data-testid="runs-table">
        <thead>
          <tr>
            {th('method', 'method', false)}
            {th('keep', 'keep')}
            <th className="num">λ attn/mlp</th>
            <th>L:R</th>
            <th>model · task</th>
            {th('fullZS', 'Full ZS')}
            {th('emulatorZS', 'Emu ZS')}
            {th('emulatorFT', 'Emu FT')}
            {th('plugIn', 'Plug-in')}
            {th('fullFT', 'Full FT')}
            {th('delta', 'Δ')}
            <th className="num" title="Full ZS − Emulator ZS: how much the emulator hides (the model owner's side)">
              hides
            </th>
            {th('compressionRatio', 'ratio')}
            <th>origin</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => (
            <tr key={r.id}>
              <td>{r.setting.method}</td>
              <td className="num">{r.setting.keep}</td>
              <td className="num">
                {r.setting.lambdaAttn}/{r.setting.lambdaMlp}
                {lambdaModeOfRun(r) && <span className="muted small"> {lambdaModeOfRun(r)}</span>}
              </td>
              <td>
                {r.setting.adapters.bottom}:{r.setting.adapters.top}
              </td>
              <td className="muted">
                {r.model} · {r.task} ({r.metric})
              </td>
              <td className="num">{fmt(r.fullZS)}</td>
              <td className="num">{fmt(r.emulatorZS)}</td>
              <td className="num">{fmt(r.emulatorFT)}</td>
              <td
                className="num"
                title={
                  r.verdicts
                    ? `Plug-in > Full ZS: ${r.verdicts.plugInBeatsFullZS} ("yes" only beyond two paired standard errors)`
                    : undefined
                }
              >
                {fmt(r.plugIn)}
              </td>
              <td className="num">{fmt(r.fullFT)}</td>
              <td
                className={`num ${(r.verdicts ? r.verdicts.deltaPositive === 'yes' : r.delta !== null && r.delta > 0) ? 'good' : 'bad-val'}`}
                title={
                  r.deltaStderr != null ? 'Δ ± its paired standard error over the test items; "yes" only beyond two of them' : undefined
                }
              >
                {fmt(r.delta)}
                {r.deltaStderr != null && <span className="muted small"> ± {fmt(r.deltaStderr)}</span>}
                {r.verdicts && <span className="muted small"> {r.verdicts.deltaPositive}</span>}
              </td>
              <td className="num" title="Full ZS − Emulator ZS ± its paired standard error; &quot;yes&quot; only beyond two of them">
                {fmt(hidesOf(r))}
                {r.hidesStderr != null && <span className="muted small"> ± {fmt(r.hidesStderr)}</span>}
                {r.verdicts && <span className="muted small"> {r.verdicts.emulatorHides}</span>}
              </td>
              <td className="num">{fmt(r.compressionRatio, 2)}</td>
              <td className="muted small">{r.origin}</td>
              <td>
                <button className="link" onClick={() => void remove(r.id)} title="delete this run">
                  ×
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ResearcherView() {
  const { runs, loaded, persistent, grid, setGrid, load, add, clear } = useRuns();
  const caps = useUi((s) => s.capabilities);
  const model = useUi((s) => s.model);
  const [task, setTask] = useState<InputFile[]>([]);
  const [job, setJob] = useState<GridJob>({
    running: false,
    index: 0,
    total: 0,
    progress: null,
    jobId: null,
    ended: null,
    startedAt: 0,
    doneAt: 0,
    kept: 0,
  });
  const cancelled = useRef(false);

  useEffect(() => {
    if (!loaded) void load();
  }, [loaded, load]);

  const settings = useMemo(() => expandGrid(grid.methods, grid.keeps, grid.lambdas, grid.bottom, grid.top), [grid]);
  const jobsTotal = settings.length * Math.max(1, grid.seeds.length);
  // A rough guide before starting, from the last grid's pace (seconds per setting) when there was one.
  const [secPerSetting, setSecPerSetting] = useState<number | null>(null);

  const runGrid = async () => {
    const seeds = grid.seeds.length ? grid.seeds : [0];
    const plan = settings.flatMap((setting) => seeds.map((seed) => ({ setting, seed })));
    cancelled.current = false;
    const t0 = Date.now();
    setJob({ running: true, index: 0, total: plan.length, progress: null, jobId: null, ended: null, startedAt: t0, doneAt: t0, kept: 0 });
    let ended: JobEnd = 'failed';
    let kept = 0;
    try {
      for (let i = 0; i < plan.length; i++) {
        if (cancelled.current) break;
        setJob((j) => ({ ...j, index: i, progress: null, jobId: null }));
        const { setting, seed } = plan[i]!;
        const req: ProtocolRequest = {
          setting,
          tune: {
            lr: grid.lr,
            epochs: grid.epochs,
            batchSize: grid.batchSize,
            gradAccum: 1,
            seqLen: grid.seqLen,
            seed,
            mode: 'full',
            lora: { rank: 8, alpha: 16, targets: ['q', 'v'] },
          },
          supportExamples: grid.supportExamples,
          fullFT: grid.fullFT,
          trainLimit: grid.trainLimit,
          testLimit: grid.testLimit,
        };
        const run = await studio().runProtocol(
          req,
          task,
          progressProxy((p) => setJob((j) => ({ ...j, progress: p, jobId: p.jobId }))),
        );
        // Each finished setting is saved at once: a cancel later keeps it.
        await add([
          { ...run, seed, ...(grid.trainLimit || grid.testLimit ? { limits: { train: grid.trainLimit, test: grid.testLimit } } : {}) },
        ]);
        kept++;
        setSecPerSetting((Date.now() - t0) / 1000 / kept);
        setJob((j) => ({ ...j, doneAt: Date.now(), kept }));
      }
      ended = cancelled.current ? 'cancelled' : 'done';
    } catch (e) {
      if (isCancelError(e) || cancelled.current) ended = 'cancelled';
      else reportError(e);
    } finally {
      setJob((j) => ({ ...j, running: false, ended }));
      if (ended === 'cancelled') reportInfo(`grid cancelled: ${kept} finished setting${kept === 1 ? '' : 's'} kept in the table`);
    }
  };
  const cancelGrid = () => {
    cancelled.current = true;
    if (job.jobId) void studio().cancel(job.jobId);
  };
  const overall = useMemo(() => {
    if (!job.running) return null;
    const elapsedS = (Date.now() - job.startedAt) / 1000;
    const o = overallProgress(job.index, job.total, job.progress?.fraction ?? null, elapsedS);
    return { done: job.kept, total: job.total, fraction: o.fraction, elapsedS, etaS: o.etaS, receivedAtMs: Date.now() };
  }, [job]);

  const [yAxis, setYAxis] = useState<UtilityAxis>('plugIn');
  const metric = runs[0]?.metric ?? 'acc';
  // A loss is plotted turned around (see settingPoints) so that up and right stay better.
  const lossMetric = metric === 'loss';
  const yName =
    yAxis === 'plugIn'
      ? lossMetric
        ? '− Plug-in loss (utility)'
        : `Plug-in ${metric} (utility)`
      : lossMetric
        ? 'Δ = Emulator FT loss − Plug-in loss'
        : 'Δ = Plug-in − Emulator FT';
  const points = useMemo(() => settingPoints(runs, yAxis), [runs, yAxis]);
  const plane = useMemo<PlaneSeries[]>(() => {
    const methods = ALL_METHODS.filter((m) => points.some((p) => p.method === m));
    return methods.map((m) => ({
      label: m,
      color: METHOD_COLOR[m],
      shape: METHOD_SHAPE[m],
      line: 'frontier' as const,
      points: points
        .filter((p) => p.method === m)
        .map((p) => ({
          x: p.hides,
          y: p.utility,
          xErr: p.hidesStd || undefined,
          yErr: p.utilityStd || undefined,
          tip: `keep ${p.keep}${m === 'gradot' ? ` λ ${p.lambda}` : ''}${p.seeds > 1 ? ` (${p.seeds} seeds)` : ''}`,
        })),
    }));
  }, [points]);
  const keepSweep = useMemo<PlaneSeries[]>(() => {
    // One line per method (GradOT: per λ), x = keep.
    const lines = new Map<string, PlaneSeries>();
    for (const p of points) {
      if (p.method === 'none') continue;
      const label =
        p.method === 'gradot' && new Set(points.filter((q) => q.method === 'gradot').map((q) => q.lambda)).size > 1
          ? `gradot λ ${p.lambda}`
          : p.method;
      const s = lines.get(label) ?? {
        label,
        color: METHOD_COLOR[p.method],
        shape: METHOD_SHAPE[p.method],
        line: 'sweep' as const,
        points: [],
      };
      s.points.push({ x: p.keep, y: p.utility, yErr: p.utilityStd || undefined, tip: `${p.seeds} seed${p.seeds > 1 ? 's' : ''}` });
      lines.set(label, s);
    }
    const out = [...lines.values()];
    out.forEach((s, i) => {
      if (s.label.startsWith('gradot λ')) s.color = SWEEP_COLORS[i % SWEEP_COLORS.length]!;
    });
    return out.filter((s) => new Set(s.points.map((p) => p.x)).size > 1);
  }, [points]);
  const lambdaSweep = useMemo<PlaneSeries[]>(() => {
    const g = points.filter((p) => p.method === 'gradot');
    const keeps = [...new Set(g.map((p) => p.keep))].sort((a, b) => a - b);
    // Coloured after the filter: a lone line is blue, not the colour of a method in the other plots.
    return keeps
      .map((k) => ({
        label: `keep ${k}`,
        color: '',
        shape: 'circle' as const,
        line: 'sweep' as const,
        points: g.filter((p) => p.keep === k).map((p) => ({ x: p.lambda, y: p.utility, yErr: p.utilityStd || undefined })),
      }))
      .filter((s) => new Set(s.points.map((p) => p.x)).size > 1)
      .map((s, i) => ({ ...s, color: SWEEP_COLORS[i % SWEEP_COLORS.length]! }));
  }, [points]);

  return (
    <div className="view" data-testid="view-research">
      <div className="two-col">
        <div className="col-left">
          <Panel title="Settings grid">
            <div className="methods">
              {ALL_METHODS.map((m) => (
                <label key={m} className={grid.methods.includes(m) ? 'chip on' : 'chip'}>
                  <input
                    type="checkbox"
                    checked={grid.methods.includes(m)}
                    onChange={(e) => setGrid({ methods: e.target.checked ? [...grid.methods, m] : grid.methods.filter((x) => x !== m) })}
                  />
                  {m}
                </label>
              ))}
            </div>
            <div className="row wrap">
              <ListField
                label="keep"
                value={grid.keeps}
                onChange={(keeps) => setGrid({ keeps })}
                hint="comma-separated fractions of middle parameters kept"
              />
              <ListField label="λ (attn = mlp)" value={grid.lambdas} onChange={(lambdas) => setGrid({ lambdas })} hint="GradOT only" />
              <NumField label="L" value={grid.bottom} min={0} step={1} onChange={(v) => setGrid({ bottom: Math.round(v) })} width={44} />
              <NumField label="R" value={grid.top} min={0} step={1} onChange={(v) => setGrid({ top: Math.round(v) })} width={44} />
            </div>
            <div className="muted small">
              {settings.length} setting{settings.length === 1 ? '' : 's'} · model: {model ? model.name : 'open one in the Model owner view'}
            </div>
            <div className="row wrap">
              <NumField label="lr" value={grid.lr} step={1e-5} onChange={(v) => setGrid({ lr: v })} width={76} />
              <NumField
                label="epochs"
                value={grid.epochs}
                min={1}
                step={1}
                onChange={(v) => setGrid({ epochs: Math.max(1, Math.round(v)) })}
                width={48}
              />
              <NumField
                label="batch"
                value={grid.batchSize}
                min={1}
                step={1}
                onChange={(v) => setGrid({ batchSize: Math.max(1, Math.round(v)) })}
                width={48}
              />
              <NumField
                label="seq len"
                value={grid.seqLen}
                min={8}
                step={8}
                onChange={(v) => setGrid({ seqLen: Math.max(8, Math.round(v)) })}
                width={56}
              />
              <NumField
                label="support ex."
                value={grid.supportExamples}
                min={1}
                step={1}
                onChange={(v) => setGrid({ supportExamples: Math.max(1, Math.round(v)) })}
                width={56}
              />
              <ListField
                label="seeds"
                value={grid.seeds}
                onChange={(seeds) => setGrid({ seeds: seeds.map((x) => Math.round(x)) })}
                hint="tuning seeds per setting; several give error bars"
              />
              <NumField
                label="train ex."
                value={grid.trainLimit}
                min={0}
                step={16}
                onChange={(v) => setGrid({ trainLimit: Math.max(0, Math.round(v)) })}
                width={56}
                hint="first N training examples per setting (0 = all)"
              />
              <NumField
                label="test ex."
                value={grid.testLimit}
                min={0}
                step={25}
                onChange={(v) => setGrid({ testLimit: Math.max(0, Math.round(v)) })}
                width={56}
                hint="first N test examples per evaluation (0 = all)"
              />
              <label className="mini" title="also fine-tune the full model's adapter blocks (the fifth number; once per task)">
                <input type="checkbox" checked={grid.fullFT} onChange={(e) => setGrid({ fullFT: e.target.checked })} /> Full FT
              </label>
            </div>
            <div className="row wrap">
              <span className="muted small">bundled task:</span>
              {BUNDLED_TASKS.map((t) => (
                <button
                  key={t}
                  className="secondary"
                  onClick={async () => {
                    try {
                      setTask(await fetchBundledTask(t));
                    } catch (e) {
                      reportError(e, `data/${t}`);
                    }
                  }}
                >
                  {t}
                </button>
              ))}
            </div>
            <FileDrop
              label={
                task.length
                  ? `task: ${task.map((f) => f.path).join(', ')}`
                  : 'Drop the task files: *train*.jsonl and *test*.jsonl (+ optional *valid*)'
              }
              accept=".jsonl,.json,.csv,.txt"
              multiple
              folder
              testId="task-drop"
              onFiles={async (files) => {
                for (const f of files) {
                  const p = await studio().openDataset(f);
                  if (!p.ok) {
                    reportIssue(p);
                    return;
                  }
                }
                const names = files.map((f) => f.path.toLowerCase());
                if (!names.some((n) => n.includes('train')) || !names.some((n) => n.includes('test'))) {
                  throw new Error('need a file named *train* and one named *test*');
                }
                setTask(files);
              }}
            />
            <div className="row">
              <CapButton cap={caps?.otProtocol} disabled={!model || !task.length || job.running || settings.length === 0} onClick={runGrid}>
                {job.running ? `Running ${job.index + 1}/${job.total}…` : `Run ${jobsTotal} setting${jobsTotal === 1 ? '' : 's'}`}
              </CapButton>
              <CancelButton jobId={job.jobId ?? 'between-settings'} running={job.running} onCancel={cancelGrid} />
              {!job.running ? <GridEstimate grid={grid} settings={settings} task={task} secPerSetting={secPerSetting} /> : null}
            </div>
            <Progress progress={job.running ? job.progress : null} running={job.running} ended={job.ended} overall={overall} />
          </Panel>
        </div>
        <div className="col-right">
          <Panel
            title="Privacy–utility plane"
            actions={
              <label className="field">
                <span>y</span>
                <select value={yAxis} onChange={(e) => setYAxis(e.target.value as UtilityAxis)} data-testid="plane-y">
                  <option value="plugIn">Plug-in (utility)</option>
                  <option value="delta">Δ (Plug-in − Emulator FT)</option>
                </select>
              </label>
            }
          >
            {plane.length ? (
              <>
                <PlaneChart
                  series={plane}
                  testId="plane-chart"
                  title="privacy-utility plane"
                  xLabel={
                    lossMetric ? 'emulator hides: Emulator ZS − Full ZS (loss) →' : `emulator hides: Full ZS − Emulator ZS (${metric}) →`
                  }
                  yLabel={`${yName} →`}
                />
                <div className="muted small">
                  Up and right is better: the emulator reveals less of the model, the returned adapters work better. Dashed: each method's
                  frontier (settings no other setting of the method beats on both). Bars: ±1 s.d. over seeds. Hover a marker for its
                  setting.
                </div>
              </>
            ) : (
              <Empty>
                Each setting adds a point: x = how much the emulator hides (Full ZS − Emulator ZS), y = Plug-in or Δ; one frontier per
                method.
              </Empty>
            )}
          </Panel>
          {keepSweep.length || lambdaSweep.length ? (
            <Panel title="Sweeps">
              <div className="sweeps">
                {keepSweep.length ? (
                  <PlaneChart
                    series={keepSweep}
                    testId="keep-sweep"
                    title="keep sweep"
                    xLabel="keep (fraction of middle parameters)"
                    yLabel={yName}
                  />
                ) : null}
                {lambdaSweep.length ? (
                  <PlaneChart
                    series={lambdaSweep}
                    testId="lambda-sweep"
                    title="lambda sweep (GradOT)"
                    xLabel="λ, GradOT (attention = MLP)"
                    yLabel={yName}
                  />
                ) : null}
              </div>
            </Panel>
          ) : null}
        </div>
      </div>
      <Panel title="Two runs side by side">
        <CompareRuns runs={runs} />
      </Panel>
      <Panel
        title={`Runs (${runs.length})`}
        actions={
          <>
            <span className="muted small">
              {persistent ? 'kept in this browser (IndexedDB)' : 'IndexedDB unavailable: runs kept until reload'}
            </span>
            <label className="button secondary">
              Import JSON
              <input
                type="file"
                hidden
                accept=".json"
                onChange={async (e) => {
                  const f = e.target.files?.[0];
                  e.target.value = '';
                  if (!f) return;
                  try {
                    const imported = parseRunsJson(await f.text());
                    await add(imported);
                    reportInfo(`imported ${imported.length} run(s) from ${f.name}`);
                  } catch (err) {
                    reportError(err, f.name);
                  }
                }}
              />
            </label>
            <button
              className="secondary"
              disabled={!runs.length}
              onClick={() => download('gradot-runs.json', runsToJson(runs), 'application/json')}
            >
              Export JSON
            </button>
            <button className="secondary" disabled={!runs.length} onClick={() => download('gradot-runs.csv', runsToCsv(runs), 'text/csv')}>
              Export CSV
            </button>
            <button
              className="secondary"
              disabled={!runs.length}
              onClick={() => confirm('Delete all runs kept in this browser?') && void clear()}
            >
              Clear
            </button>
          </>
        }
      >
        {runs.length ? (
          <RunsTable runs={runs} />
        ) : (
          <Empty>
            No runs yet. Each run records Full ZS, Emulator ZS, Emulator FT, Plug-in and Full FT, Δ = Plug-in − Emulator FT, and the
            compression ratio. Import JSON accepts a previous export.
          </Empty>
        )}
      </Panel>
    </div>
  );
}
