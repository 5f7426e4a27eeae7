import { useEffect, useMemo, useState } from 'react';
import type { CompressMethod, InputFile, OTRun, OTSetting, ProtocolRequest } from '../../jobs/studio-api';
import { parseRunsJson, runsToCsv, runsToJson, useRuns } from '../../store/runs';
import { useUi } from '../../store/ui';
import { ScatterChart } from '../charts/ScatterChart';
import { CapButton, Empty, NumField, Panel, Progress } from '../components/common';
import { FileDrop } from '../components/FileDrop';
import { reportIssue } from './DataOwnerView';
import { download, fetchFiles, progressProxy, reportError, reportInfo, studio } from '../studio';

/** Task folders shipped under public/data (train/valid/test JSONL each). */
const BUNDLED_TASKS = ['genre-short-mc', 'genre-mc', 'imdb-sentiment-mc', 'imdb-sentiment-qa', 'wordnet-def-mc'];

const ALL_METHODS: CompressMethod[] = ['gradot', 'svd', 'prune', 'drop', 'none'];
const METHOD_COLOR: Record<CompressMethod, string> = { gradot: '#2563eb', svd: '#d97706', prune: '#7c3aed', drop: '#dc2626', none: '#4b5563' };

function parseList(text: string): number[] | null {
  const parts = text.split(/[,\s]+/).filter(Boolean).map(Number);
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
    <th className={num ? 'num sortable' : 'sortable'} onClick={() => setSort((s) => ({ key, dir: s.key === key ? (s.dir === 1 ? -1 : 1) : -1 }))}>
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
              <td className="num">{fmt(r.plugIn)}</td>
              <td className="num">{fmt(r.fullFT)}</td>
              <td
                className={`num ${r.delta !== null && r.delta > 0 ? 'good' : 'bad-val'}`}
                title={r.deltaStderr != null ? 'Δ ± its paired standard error over the test items' : undefined}
              >
                {fmt(r.delta)}
                {r.deltaStderr != null && <span className="muted small"> ± {fmt(r.deltaStderr)}</span>}
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
  const [job, setJob] = useState<{ running: boolean; index: number; total: number; progress: import('../../jobs/studio-api').ProgressEvent | null }>({
    running: false, index: 0, total: 0, progress: null,
  });

  useEffect(() => {
    if (!loaded) void load();
  }, [loaded, load]);

  const settings = useMemo(() => expandGrid(grid.methods, grid.keeps, grid.lambdas, grid.bottom, grid.top), [grid]);

  const runGrid = async () => {
    setJob({ running: true, index: 0, total: settings.length, progress: null });
    try {
      for (let i = 0; i < settings.length; i++) {
        setJob((j) => ({ ...j, index: i }));
        const req: ProtocolRequest = {
          setting: settings[i]!,
          tune: { lr: grid.lr, epochs: grid.epochs, batchSize: grid.batchSize, gradAccum: 1, seqLen: grid.seqLen, seed: 0, mode: 'full', lora: { rank: 8, alpha: 16, targets: ['q', 'v'] } },
          supportExamples: grid.supportExamples,
          fullFT: grid.fullFT,
        };
        const run = await studio().runProtocol(req, task, progressProxy((p) => setJob((j) => ({ ...j, progress: p }))));
        await add([run]);
      }
    } catch (e) {
      reportError(e);
    } finally {
      setJob((j) => ({ ...j, running: false }));
    }
  };

  const pareto = useMemo(() => {
    // Colour = method; filled = Plug-in (utility, want high), hollow = Emulator FT (privacy, want low).
    const withRatio = runs.filter((r) => r.compressionRatio !== null);
    const methods = ALL_METHODS.filter((m) => withRatio.some((r) => r.setting.method === m));
    const pick = (m: CompressMethod, f: (r: OTRun) => number | null) =>
      withRatio.filter((r) => r.setting.method === m && f(r) !== null).map((r) => ({ x: r.compressionRatio!, y: f(r)! }));
    return methods.flatMap((m) => [
      { label: `${m} Plug-in`, points: pick(m, (r) => r.plugIn), color: METHOD_COLOR[m] },
      { label: `${m} Emu FT`, points: pick(m, (r) => r.emulatorFT), color: METHOD_COLOR[m], hollow: true },
    ]);
  }, [runs]);

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
              <ListField label="keep" value={grid.keeps} onChange={(keeps) => setGrid({ keeps })} hint="comma-separated fractions of middle parameters kept" />
              <ListField label="λ (attn = mlp)" value={grid.lambdas} onChange={(lambdas) => setGrid({ lambdas })} hint="GradOT only" />
              <NumField label="L" value={grid.bottom} min={0} step={1} onChange={(v) => setGrid({ bottom: Math.round(v) })} width={44} />
              <NumField label="R" value={grid.top} min={0} step={1} onChange={(v) => setGrid({ top: Math.round(v) })} width={44} />
            </div>
            <div className="muted small">
              {settings.length} setting{settings.length === 1 ? '' : 's'} · model: {model ? model.name : 'open one in the Model owner view'}
            </div>
            <div className="row wrap">
              <NumField label="lr" value={grid.lr} step={1e-5} onChange={(v) => setGrid({ lr: v })} width={76} />
              <NumField label="epochs" value={grid.epochs} min={1} step={1} onChange={(v) => setGrid({ epochs: Math.max(1, Math.round(v)) })} width={48} />
              <NumField label="batch" value={grid.batchSize} min={1} step={1} onChange={(v) => setGrid({ batchSize: Math.max(1, Math.round(v)) })} width={48} />
              <NumField label="seq len" value={grid.seqLen} min={8} step={8} onChange={(v) => setGrid({ seqLen: Math.max(8, Math.round(v)) })} width={56} />
              <NumField label="support ex." value={grid.supportExamples} min={1} step={1} onChange={(v) => setGrid({ supportExamples: Math.max(1, Math.round(v)) })} width={56} />
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
                      setTask(await fetchFiles(`./data/${t}/`, ['train.jsonl', 'test.jsonl'], ['valid.jsonl']));
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
              label={task.length ? `task: ${task.map((f) => f.path).join(', ')}` : 'Drop the task files: *train*.jsonl and *test*.jsonl (+ optional *valid*)'}
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
                {job.running ? `Running ${job.index + 1}/${job.total}…` : `Run ${settings.length} setting${settings.length === 1 ? '' : 's'}`}
              </CapButton>
            </div>
            <Progress progress={job.running ? job.progress : null} running={job.running} />
          </Panel>
        </div>
        <div className="col-right">
          <Panel title="Pareto: compression vs utility and privacy">
            {runs.some((r) => r.compressionRatio !== null) ? (
              <ScatterChart groups={pareto} xLabel="compression (middle params, full / emulator)" yLabel={`score (${runs.find((r) => r.compressionRatio !== null)?.metric ?? 'acc'})`} />
            ) : (
              <Empty>Each run adds a Plug-in point (utility) and an Emulator FT point (privacy: the gap to Plug-in is Δ) at its compression ratio.</Empty>
            )}
          </Panel>
        </div>
      </div>
      <Panel
        title={`Runs (${runs.length})`}
        actions={
          <>
            <span className="muted small">{persistent ? 'kept in this browser (IndexedDB)' : 'IndexedDB unavailable: runs kept until reload'}</span>
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
            <button className="secondary" disabled={!runs.length} onClick={() => download('gradot-runs.json', runsToJson(runs), 'application/json')}>
              Export JSON
            </button>
            <button className="secondary" disabled={!runs.length} onClick={() => download('gradot-runs.csv', runsToCsv(runs), 'text/csv')}>
              Export CSV
            </button>
            <button className="secondary" disabled={!runs.length} onClick={() => confirm('Delete all runs kept in this browser?') && void clear()}>
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
