import { useEffect, useMemo, useState, type ReactNode } from 'react';
import type {
  AdapterSummary,
  CompressMethod,
  CompressOptions,
  CompressResult,
  DatasetPreview,
  InputFile,
  ModelSummary,
  PlugInResult,
  Spectrum,
} from '../../jobs/studio-api';
import { useUi } from '../../store/ui';
import { BarChart } from '../charts/BarChart';
import { Heatmap } from '../charts/Heatmap';
import { SpectrumChart } from '../charts/SpectrumChart';
import { CancelButton, CapButton, Details, Empty, KV, MetricsTable, NumField, Panel, Progress, type JobEnd } from '../components/common';
import { FileDrop } from '../components/FileDrop';
import { TryIt } from '../components/TryIt';
import { idleLocalJob, reportIssue, type LocalJob } from './DataOwnerView';
import { BUNDLED_TASKS, fetchBundledFile } from '../bundled';
import { backendLabel, describeBackend, explainPackageSize } from '../format';
import { download, fetchFiles, formatBytes, formatCount, isCancelError, progressProxy, reportError, reportInfo, studio } from '../studio';
import { DEFAULT_EVAL_LIMIT } from '../../store/ui';
import {
  estimatePeakMemory,
  studioMemoryBudget,
  DEFAULT_ESTIMATE_BUDGET,
  fitVerdict,
  gib,
  modelShapeOf,
  PAGE_RUNTIME_BYTES,
  tabMemory,
  type FitVerdict,
} from '../../jobs/memory-estimate';

const METHODS: { id: CompressMethod; label: string; hint: string }[] = [
  { id: 'gradot', label: 'GradOT', hint: 'DRD on attention + SCP on MLP, scored by gradient-change sensitivity' },
  { id: 'svd', label: 'SVD', hint: 'plain truncated SVD by σ everywhere (baseline)' },
  { id: 'prune', label: 'Prune', hint: 'magnitude channel pruning of the MLP (baseline)' },
  { id: 'drop', label: 'Layer drop', hint: 'OT†: keep evenly spaced middle blocks (baseline)' },
  { id: 'none', label: 'None', hint: 'no compression (sanity check: no privacy)' },
];

const DEMO_BASE = './models/demo/';
/** tokenizer_config.json names the BOS token (LLaMA-family prompts start with it); generation_config.json
 *  carries the stop ids the "try it" export copies. */
const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

async function openModelFiles(name: string, files: InputFile[]): Promise<ModelSummary> {
  const ui = useUi.getState();
  ui.setModelLoading(name);
  try {
    const m = await studio().openModel(name, files);
    ui.setModel(m);
    for (const w of m.warnings) reportInfo(`${name}: ${w}`);
    return m;
  } finally {
    ui.setModelLoading(null);
  }
}

function folderName(files: InputFile[]): string {
  const first = files[0]?.path ?? 'model';
  return first.includes('/') ? first.split('/')[0]! : files.length === 1 ? first : 'local files';
}

function OpenModel() {
  const loading = useUi((s) => s.modelLoading);
  const [url, setUrl] = useState('');
  const [demo, setDemo] = useState<'checking' | 'present' | 'absent'>('checking');

  useEffect(() => {
    // Same-origin HEAD-like probe so the demo button can say up front whether the demo is bundled.
    let alive = true;
    // Only config.json is fetched here; SPA-style servers answer 200 with index.html, hence the JSON parse.
    fetch(new URL(`${DEMO_BASE}config.json`, document.baseURI))
      .then(async (r) => {
        const cfgOk =
          r.ok &&
          (await r.text().then((t) => {
            try {
              JSON.parse(t);
              return true;
            } catch {
              return false;
            }
          }));
        // HEAD only: the weights are downloaded when the user clicks.
        const w = cfgOk
          ? await fetch(new URL(`${DEMO_BASE}model.safetensors`, document.baseURI), { method: 'HEAD' }).catch(() => null)
          : null;
        const ok = cfgOk && !!w && w.ok && !(w.headers.get('content-type') ?? '').includes('text/html');
        if (alive) setDemo(ok ? 'present' : 'absent');
      })
      .catch(() => alive && setDemo('absent'));
    return () => {
      alive = false;
    };
  }, []);

  const openDemo = async () => {
    try {
      const files = await fetchFiles(DEMO_BASE, ['config.json', 'model.safetensors'], OPTIONAL_FILES);
      await openModelFiles('demo', files);
    } catch (e) {
      reportError(e, 'models/demo');
    }
  };

  const openUrl = async () => {
    const base = url.trim();
    if (!base) return;
    try {
      const files = await fetchFiles(base, ['config.json', 'model.safetensors'], OPTIONAL_FILES);
      await openModelFiles(base, files);
    } catch (e) {
      reportError(e, base);
    }
  };

  return (
    <Panel title="Open a model">
      <div className="row">
        <button className="primary" onClick={openDemo} disabled={!!loading || demo === 'absent'} data-testid="open-demo">
          Open bundled demo
        </button>
        <span className="muted small">
          {demo === 'checking'
            ? 'checking for the demo…'
            : demo === 'present'
              ? 'models/demo (config + safetensors + tokenizer)'
              : 'demo model weights not bundled in this build yet'}
        </span>
      </div>
      <FileDrop
        label="Drop a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)"
        folder
        multiple
        testId="model-drop"
        onFiles={async (files) => {
          await openModelFiles(folderName(files), files);
        }}
      />
      <div className="row">
        <input
          className="grow"
          type="url"
          placeholder="https://…/model-folder/ (same origin only)"
          title="A model folder on this site's own server: this page's CSP allows no other origin"
          value={url}
          onChange={(e) => setUrl(e.target.value)}
        />
        <button className="secondary" onClick={openUrl} disabled={!url.trim() || !!loading}>
          Open URL
        </button>
      </div>
      {loading ? <div className="muted small">reading {loading}…</div> : null}
    </Panel>
  );
}

function SplitStrip({ model }: { model: ModelSummary }) {
  const { bottom, top } = useUi((s) => s.compress);
  const n = model.numLayers;
  return (
    <div className="split" aria-label="layer split">
      {Array.from({ length: n }, (_, i) => {
        const role = i < bottom ? 'adapter' : i >= n - top ? 'adapter' : 'middle';
        return (
          <span
            key={i}
            className={`blk ${role}`}
            title={`block ${i}: ${role === 'adapter' ? (i < bottom ? 'bottom adapter' : 'top adapter') : 'middle (compressed)'}`}
          >
            {i}
          </span>
        );
      })}
    </div>
  );
}

function Inspect({ model }: { model: ModelSummary }) {
  const { bottom, top, keep } = useUi((s) => s.compress);
  const [showTensors, setShowTensors] = useState(false);
  const x = useMemo(() => model.layers.map((l) => l.index), [model]);
  const vals = useMemo(() => model.layers.map((l) => l.params), [model]);
  const middle = model.layers.filter((l) => l.index >= bottom && l.index < model.numLayers - top);
  const middleParams = middle.reduce((a, l) => a + l.params, 0);
  return (
    <Panel title={`Inspect · ${model.name}`}>
      <div className="grid2">
        <KV
          items={[
            ['architecture', `${model.modelType} (${model.family})`],
            ['layers', model.numLayers],
            ['hidden', model.hiddenSize],
            ['heads / kv heads', `${model.numHeads} / ${model.numKvHeads}`],
            ['MLP width', model.intermediateSize],
            ['vocab', model.vocabSize],
            ['context', model.maxPositions],
          ]}
        />
        <KV
          items={[
            ['parameters', <b key="p">{formatCount(model.totalParams)}</b>],
            ['in blocks', formatCount(model.totalParams - model.otherParams)],
            ['embeddings / head / norms', formatCount(model.otherParams)],
            ['middle blocks', `${formatCount(middleParams)} (${middle.length} blocks)`],
            ['target middle after keep', `${formatCount(Math.round(middleParams * keep))} (keep ${keep})`],
            [
              'dtypes',
              Object.entries(model.dtypes)
                .map(([d, n]) => `${d} ${formatCount(n)}`)
                .join(', '),
            ],
            ['files', model.files.map((f) => `${f.path} (${formatBytes(f.size)})`).join(', ')],
          ]}
        />
      </div>
      <SplitStrip model={model} />
      <Details>read by {model.parsedBy}</Details>
      <BarChart x={x} bars={{ label: 'parameters', values: vals }} xLabel="block" yLabel="parameters" height={160} />
      <button className="link" onClick={() => setShowTensors((v) => !v)}>
        {showTensors ? 'hide' : 'show'} {model.tensors.length} tensors
      </button>
      {showTensors ? (
        <div className="table-wrap tall">
          <table className="dense">
            <thead>
              <tr>
                <th>name</th>
                <th>dtype</th>
                <th>shape</th>
                <th className="num">params</th>
              </tr>
            </thead>
            <tbody>
              {model.tensors.map((t) => (
                <tr key={t.name}>
                  <td className="mono">{t.name}</td>
                  <td>{t.dtype}</td>
                  <td className="mono">[{t.shape.join(', ')}]</td>
                  <td className="num">{formatCount(t.params)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Panel>
  );
}

function Settings() {
  const s = useUi((st) => st.compress);
  const set = useUi((st) => st.setCompress);
  const model = useUi((st) => st.model);
  const support = useUi((st) => st.support);
  const setSupport = useUi((st) => st.setSupport);
  const caps = useUi((st) => st.capabilities);
  const job = useUi((st) => st.compressJob);
  const setJob = useUi((st) => st.setCompressJob);
  const setResult = useUi((st) => st.setCompressResult);
  const [supportFile, setSupportFile] = useState<InputFile | null>(null);
  const n = model?.numLayers ?? 0;
  const splitBad = !!model && s.bottom + s.top >= n;
  // Peak memory of this build and of tuning its emulator, against what the tab may use: said before starting.
  const fit = useMemo(() => (model && !splitBad ? compressFit(model, s) : null), [model, splitBad, s]);
  // "Start anyway" holds for the estimate it was given for: a new model or new settings ask again.
  const estimated = fit?.compress.estimate.bytes ?? null;
  const [anywayAt, setAnywayAt] = useState<number | null>(null);
  const anyway = anywayAt !== null && anywayAt === estimated;
  const setAnyway = (v: boolean) => setAnywayAt(v ? estimated : null);
  const blockedByMemory = !!fit && fit.compress.level === 'over' && !anyway;

  const run = async () => {
    const opts: CompressOptions = {
      method: s.method,
      keep: s.keep,
      adapters: { bottom: s.bottom, top: s.top },
      lambdaAttn: s.lambdaAttn,
      lambdaMlp: s.lambdaMlp,
      support: supportFile,
      supportExamples: s.supportExamples,
      supportSeqLen: s.supportSeqLen,
      supportBatch: s.supportBatch,
      backend: s.backend,
      seed: s.seed,
      ...(fit?.memoryBudget ? { memoryBudget: fit.memoryBudget } : {}),
    };
    setJob({ running: true, paused: false, progress: null, jobId: null, ended: null });
    let ended: JobEnd = 'failed';
    try {
      const r = await studio().compress(
        opts,
        progressProxy((p) => setJob({ progress: p, jobId: p.jobId })),
      );
      setResult(r);
      ended = 'done';
    } catch (e) {
      if (isCancelError(e)) ended = 'cancelled';
      else reportError(e);
    } finally {
      setJob({ running: false, ended });
    }
  };
  const applySupport = async (files: InputFile[]) => {
    const f = files[0]!;
    const p = await studio().openDataset(f);
    if (!p.ok) {
      reportIssue(p);
      return;
    }
    setSupport(p);
    setSupportFile(f);
  };
  const backend = useUi((st) => st.backend);
  const autoSays = backend ? describeBackend(backend) : null;

  return (
    <Panel title="Emulator settings">
      <div className="methods" role="radiogroup" aria-label="method">
        {METHODS.map((m) => (
          <label key={m.id} className={s.method === m.id ? 'chip on' : 'chip'} title={m.hint}>
            <input type="radio" name="method" checked={s.method === m.id} onChange={() => set({ method: m.id })} />
            {m.label}
          </label>
        ))}
      </div>
      <label className="field slider">
        <span>keep</span>
        <input
          type="range"
          min={0.05}
          max={1}
          step={0.05}
          value={s.keep}
          onChange={(e) => set({ keep: Number(e.target.value) })}
          disabled={s.method === 'none'}
        />
        <span className="mono">{s.method === 'none' ? '1.00' : s.keep.toFixed(2)}</span>
      </label>
      <div className="row wrap">
        <NumField
          label="adapters bottom"
          value={s.bottom}
          min={0}
          max={Math.max(0, n - 1)}
          step={1}
          onChange={(v) => set({ bottom: Math.max(0, Math.round(v)) })}
          width={52}
        />
        <NumField label="top" value={s.top} min={0} step={1} onChange={(v) => set({ top: Math.max(0, Math.round(v)) })} width={52} />
        <NumField
          label="λ attn"
          value={s.lambdaAttn}
          step={0.1}
          onChange={(v) => set({ lambdaAttn: v })}
          width={64}
          hint="attention (DRD) score: 0 keeps what preserves the adapters' gradients; 1 weighs raising the emulator's loss equally (balanced: each term scaled by its sum over the matrix); higher hides more"
        />
        <NumField
          label="λ mlp"
          value={s.lambdaMlp}
          step={0.1}
          onChange={(v) => set({ lambdaMlp: v })}
          width={64}
          hint="MLP (SCP) score: 0 keeps what preserves the adapters' gradients; 1 weighs raising the emulator's loss equally (balanced); higher hides more"
        />
        <NumField label="seed" value={s.seed} step={1} onChange={(v) => set({ seed: Math.round(v) })} width={52} />
      </div>
      {splitBad ? (
        <div className="alert error small">
          adapters {s.bottom}:{s.top} leave no middle blocks in a {n}-layer model
        </div>
      ) : null}
      {s.method === 'gradot' ? (
        <>
          <div className="subhead">Support data (gradient pass)</div>
          <div className="row wrap" data-testid="support-bundled">
            <span className="muted small">use a bundled task's training text:</span>
            {BUNDLED_TASKS.map((t) => (
              <button
                key={t}
                className={support?.file === `${t}/train.jsonl` ? 'secondary on' : 'secondary'}
                onClick={async () => {
                  try {
                    await applySupport([await fetchBundledFile(t, 'train.jsonl')]);
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
              support
                ? `${support.file}: ${support.totalRows} rows (${support.kind})`
                : 'or drop your own JSONL/CSV/TXT file with text like the tuning data; read locally'
            }
            accept=".jsonl,.json,.txt,.csv"
            testId="support-drop"
            onFiles={applySupport}
          />
        </>
      ) : null}
      {s.method === 'gradot' ? (
        <div className="row wrap">
          <NumField
            label="support examples"
            value={s.supportExamples}
            min={1}
            step={1}
            onChange={(v) => set({ supportExamples: Math.max(1, Math.round(v)) })}
            width={60}
            hint="the first N encoded examples; the pass is forward+backward over them"
          />
          <NumField
            label="context"
            value={s.supportSeqLen}
            min={8}
            step={8}
            onChange={(v) => set({ supportSeqLen: Math.max(8, Math.round(v)) })}
            width={56}
          />
          <NumField
            label="batch"
            value={s.supportBatch}
            min={1}
            step={1}
            onChange={(v) => set({ supportBatch: Math.max(1, Math.round(v)) })}
            width={48}
          />
          <label className="field">
            <span>backend</span>
            <select value={s.backend} onChange={(e) => set({ backend: e.target.value as 'auto' | 'cpu' })} title={autoSays?.why}>
              <option value="auto">
                {autoSays
                  ? `auto: ${autoSays.label}${autoSays.runsOn === 'CPU' && backend?.kind === 'webgpu' ? ' (WebGPU is a software fallback)' : ''}`
                  : 'auto'}
              </option>
              <option value="cpu">CPU</option>
            </select>
          </label>
        </div>
      ) : null}
      {fit ? <MemoryFit fit={fit} anyway={anyway} setAnyway={setAnyway} /> : null}
      <div className="row">
        <CapButton
          cap={caps?.compress}
          onClick={run}
          disabled={!model || job.running || splitBad || blockedByMemory || (s.method === 'gradot' && !supportFile)}
        >
          {job.running ? 'Running…' : `Build emulator (${s.method})`}
        </CapButton>
        <CancelButton jobId={job.jobId} running={job.running} onCancel={() => job.jobId && void studio().cancel(job.jobId)} />
        {!model ? (
          <span className="muted small">open a model first</span>
        ) : s.method === 'gradot' && !supportFile ? (
          <span className="muted small">GradOT needs support data</span>
        ) : null}
      </div>
      <Progress progress={job.progress} running={job.running} ended={job.ended} />
    </Panel>
  );
}

interface CompressFit {
  compress: FitVerdict;
  /** Tuning the resulting emulator with the data owner's defaults (4 x 128 tokens, full adapter blocks). */
  tune: FitVerdict;
  /** gradot's working-memory budget chosen to fit the tab (studioMemoryBudget), when below the default. */
  memoryBudget?: number;
}

function compressFit(model: ModelSummary, s: ReturnType<typeof useUi.getState>['compress']): CompressFit {
  const shape = modelShapeOf(model);
  const limit = tabMemory();
  const split = { bottom: s.bottom, top: s.top };
  const keep = s.method === 'none' ? 1 : s.keep;
  const common = { keep, split, runtimeBytes: PAGE_RUNTIME_BYTES, browser: true };
  const co = { ...common, job: 'compress' as const, method: s.method, batch: s.supportBatch, seq: s.supportSeqLen };
  const budget = s.method === 'gradot' ? studioMemoryBudget(shape, co, limit.bytes) : DEFAULT_ESTIMATE_BUDGET;
  const c = estimatePeakMemory(shape, { ...co, memoryBudget: budget });
  const t = estimatePeakMemory(shape, { ...common, job: 'tune', tuneMode: 'full', batch: 4, seq: Math.min(128, model.maxPositions) });
  return {
    compress: fitVerdict('Building this emulator', c, limit),
    tune: fitVerdict('Tuning its emulator (batch 4 x 128 tokens)', t, limit),
    ...(budget < DEFAULT_ESTIMATE_BUDGET ? { memoryBudget: budget } : {}),
  };
}

function MemoryFit({ fit, anyway, setAnyway }: { fit: CompressFit; anyway: boolean; setAnyway: (v: boolean) => void }) {
  const c = fit.compress;
  return (
    <div data-testid="memory-fit" data-fit={c.level}>
      {c.fits ? (
        <div className="muted small">
          memory: estimated peak {gib(c.estimate.bytes)} ({c.estimate.phase}) of {gib(c.limit.bytes)} this tab may use ({c.limit.source})
        </div>
      ) : c.level === 'tight' ? (
        <div className="alert small">{c.message}</div>
      ) : (
        <div className="alert error small">
          {c.message}{' '}
          <label>
            <input type="checkbox" checked={anyway} onChange={(e) => setAnyway(e.target.checked)} data-testid="memory-anyway" /> start
            anyway (it is an estimate)
          </label>
        </div>
      )}
      {fit.memoryBudget ? (
        <div className="muted small" data-testid="memory-budget">
          the support pass keeps {Math.round(fit.memoryBudget / 2 ** 20)} MiB of working memory instead of{' '}
          {Math.round(DEFAULT_ESTIMATE_BUDGET / 2 ** 20)} MiB to fit this tab: the build recomputes more of its SVDs (slower, the same
          emulator)
        </div>
      ) : null}
      {!fit.tune.fits ? (
        <div className="alert small" data-testid="memory-fit-tune">
          {fit.tune.message}
        </div>
      ) : null}
    </div>
  );
}

/** Column order of the kept-rank table: attention, then the MLP's matrices. */
const PROJS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

function SpectrumPanel({ r }: { r: CompressResult }) {
  const options = useMemo(() => r.matrices.filter((m) => m.kept > 0), [r]);
  const [sel, setSel] = useState(0);
  const [spec, setSpec] = useState<Spectrum | null>(null);
  const m = options[Math.min(sel, options.length - 1)];
  useEffect(() => {
    if (!m) return;
    let alive = true;
    setSpec(null);
    // σ is computed in the worker on demand (one exact SVD of the source matrix).
    studio()
      .spectrum(r.packageId, m.layer, m.proj)
      .then(
        (s) => alive && setSpec(s),
        (e) => reportError(e),
      );
    return () => {
      alive = false;
    };
  }, [r.packageId, m?.layer, m?.proj]);
  if (!m) return null;
  return (
    <>
      <div className="subhead row">
        Singular values, kept components filled
        <select value={Math.min(sel, options.length - 1)} onChange={(e) => setSel(Number(e.target.value))}>
          {options.map((o, i) => (
            <option key={`${o.layer}.${o.proj}`} value={i}>
              block {o.layer} · {o.proj} [{o.shape.join('×')}] kept {o.kept}/{o.full}
              {o.unit === 'channels' ? ' channels' : ''}
            </option>
          ))}
        </select>
      </div>
      {spec ? (
        <SpectrumChart
          sigma={spec.sigma}
          kept={spec.kept}
          cut={m.unit !== 'channels' && m.kept < m.full ? m.kept : undefined}
          title={`singular values of block ${spec.layer} ${spec.proj}`}
        />
      ) : (
        <div className="muted small">computing SVD…</div>
      )}
    </>
  );
}

function Results() {
  const r = useUi((s) => s.compressResult);
  const model = useUi((s) => s.model);
  const caps = useUi((s) => s.capabilities);
  const heat = useMemo(() => {
    if (!r) return null;
    const layers = [...new Set(r.matrices.map((m) => m.layer))].sort((a, b) => a - b);
    const projs = PROJS.filter((p) => r.matrices.some((m) => m.proj === p));
    const find = (l: number, p: string) => r.matrices.find((mm) => mm.layer === l && mm.proj === p);
    const values = layers.map((l) =>
      projs.map((p) => {
        const m = find(l, p);
        return m ? m.kept / m.full : null;
      }),
    );
    const labels = layers.map((l) =>
      projs.map((p) => {
        const m = find(l, p);
        return m ? `${m.kept}/${m.full}` : null;
      }),
    );
    return { rows: layers.map((l) => `block ${l}`), cols: projs, values, labels };
  }, [r]);

  if (!r) {
    return (
      <Panel title="Results">
        <Empty>
          Per-block parameters and GCS terms, singular-value spectra with kept components, kept ranks/channels and the parameter budget
          appear here after a compression run.
        </Empty>
      </Panel>
    );
  }
  const exportPkg = async () => {
    try {
      const f = await studio().exportPackage(r.packageId);
      download(f.name, f.bytes, f.mime);
    } catch (e) {
      reportError(e);
    }
  };
  const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(1)}%` : '—');
  const modelBytes = model ? model.files.filter((f) => f.path.endsWith('.safetensors')).reduce((a, f) => a + f.size, 0) : 0;
  const sizeWhy = model
    ? explainPackageSize({
        packageBytes: r.packageBytes,
        paramsAfter: r.paramsAfter,
        modelBytes,
        modelParams: r.paramsBefore,
        modelDtypes: Object.keys(model.dtypes),
      })
    : null;
  const kept = r.matrices.filter((m) => m.kept > 0 && m.kept < m.full).length;
  const dropped = r.matrices.filter((m) => m.kept === 0).length;
  const x = r.layers.map((l) => l.layer);
  const scored = r.layers.some((l) => l.removedGradShift !== null);
  return (
    <Panel
      title={`Results · ${r.method} keep ${r.keep}`}
      actions={
        <CapButton cap={caps?.exportPackage} onClick={exportPkg}>
          Download emulator package ({formatBytes(r.packageBytes)})
        </CapButton>
      }
    >
      <div className="summary" data-testid="compress-summary">
        The emulator keeps <b>{pct(r.middleAfter, r.middleBefore)}</b> of the middle blocks' parameters ({formatCount(r.middleAfter)} of{' '}
        {formatCount(r.middleBefore)}); the {r.split.bottom} bottom and {r.split.top} top blocks, which the data owner tunes, are kept
        whole.
        {r.matrices.length
          ? ` ${kept} of ${r.matrices.length} middle matrices were shrunk${dropped ? ` and ${dropped} removed` : ''}.`
          : ''}{' '}
        Download: {formatBytes(r.packageBytes)}
        {model && modelBytes ? ` (the model file is ${formatBytes(modelBytes)})` : ''}.
        {sizeWhy ? (
          <div className="muted small" data-testid="size-why">
            {sizeWhy}
          </div>
        ) : null}
      </div>
      <div className="grid2">
        <KV
          items={[
            ['model parameters', `${formatCount(r.paramsBefore)} → ${formatCount(r.paramsAfter)} (${pct(r.paramsAfter, r.paramsBefore)})`],
            [
              'middle blocks',
              `${formatCount(r.middleBefore)} → ${formatCount(r.middleAfter)} (${pct(r.middleAfter, r.middleBefore)}; target ${formatCount(r.middleTarget)})`,
            ],
            ['split', `adapters ${r.split.bottom}:${r.split.top}`],
            [
              'support pass',
              r.support
                ? `${r.support.tokens} loss tokens of support text, mean loss ${r.support.meanLoss.toFixed(3)}, on ${backendLabel(r.backend)}`
                : '—',
            ],
            [
              'time',
              `${Object.values(r.timings)
                .reduce((a, v) => a + v, 0)
                .toFixed(1)}s`,
            ],
          ]}
        />
      </div>
      <Details summary="details (how each part was scored, timings, planner notes)">
        <KV
          items={[
            [
              'time per stage',
              Object.entries(r.timings)
                .map(([k, v]) => `${k.replace(/Seconds$/, '')} ${v.toFixed(2)}s`)
                .join(' · '),
            ],
            ...(r.support ? ([['support batches', String(r.support.batches)]] as [string, ReactNode][]) : []),
            ...Object.entries(r.readings).map(
              ([k, v]) =>
                [
                  `reading: ${k}`,
                  <span key={k} className="mono">
                    {v}
                  </span>,
                ] as [string, ReactNode],
            ),
          ]}
        />
        {r.notes.length ? (
          <div className="small">
            {r.notes.map((n, i) => (
              <div key={i}>{n}</div>
            ))}
          </div>
        ) : null}
      </Details>
      <div className="grid2">
        <BarChart
          x={x}
          bars={{ label: 'params after', values: r.layers.map((l) => l.paramsAfter), color: '#16a34a' }}
          overlay={{
            label: 'params before',
            values: r.layers.map((l) => l.paramsBefore),
            color: '#475569',
            unit: 'before',
            sameScale: true,
          }}
          xLabel="block"
          yLabel="parameters"
        />
        {scored ? (
          <BarChart
            x={x}
            // In the user's words: the GCS terms ‖GδA‖₁ and ⟨g,δ⟩ of the removed parts (docs/ot-compression.md).
            bars={{ label: "what was removed: shift of the adapters' gradient", values: r.layers.map((l) => l.removedGradShift) }}
            overlay={{ label: 'loss increase (first order)', values: r.layers.map((l) => l.removedLossIncrease), unit: 'loss increase' }}
            xLabel="block"
            yLabel="gradient shift"
          />
        ) : (
          <Empty>GCS terms per block are recorded by GradOT runs only (this was {r.method}).</Empty>
        )}
      </div>
      {heat ? (
        <>
          <div className="subhead">What each middle block kept: rank per matrix (kept/full; an MLP pruned by channels shows channels)</div>
          <Heatmap rows={heat.rows} cols={heat.cols} values={heat.values} labels={heat.labels} title="kept fraction per matrix" />
        </>
      ) : null}
      <SpectrumPanel r={r} />
    </Panel>
  );
}

function PlugIn() {
  const model = useUi((s) => s.model);
  const caps = useUi((s) => s.capabilities);
  const [adapter, setAdapter] = useState<AdapterSummary | null>(null);
  const [task, setTask] = useState<DatasetPreview | null>(null);
  const [limit, setLimit] = useState(DEFAULT_EVAL_LIMIT);
  const [job, setJob] = useState<LocalJob>(idleLocalJob);
  const [result, setResult] = useState<PlugInResult | null>(null);
  const run = async () => {
    if (!adapter || !task) return;
    setJob({ ...idleLocalJob, running: true });
    let ended: JobEnd = 'failed';
    try {
      setResult(
        await studio().plugIn(
          { adapterId: adapter.adapterId, datasetId: task.datasetId, limit },
          progressProxy((p) => setJob((j) => ({ ...j, progress: p }))),
        ),
      );
      ended = 'done';
    } catch (e) {
      if (isCancelError(e)) ended = 'cancelled';
      else reportError(e);
    } finally {
      setJob((j) => ({ ...j, running: false, ended }));
    }
  };
  // A model opened after the adapters were dropped makes them stale (they were checked against the old one).
  const [adapterModel, setAdapterModel] = useState<ModelSummary | null>(null);
  const plugTarget = model
    ? ({ kind: 'plugin', ...(adapter && adapterModel === model ? { adapterId: adapter.adapterId } : {}) } as const)
    : null;
  return (
    <>
      <Panel title="Plug in returned adapters">
        <FileDrop
          label={
            adapter
              ? `${adapter.name}: ${adapter.layout} layout, ${adapter.tensorCount} tensors (${formatCount(adapter.params)} parameters)`
              : 'Drop the adapters a data owner sent back (folder, .zip, or adapter.json + adapter.safetensors)'
          }
          folder
          multiple
          accept=".zip,.json,.safetensors"
          testId="adapter-drop"
          onFiles={async (files) => {
            if (!model) throw new Error('open the base model first, so the adapter names can be checked against it');
            const name = files.length === 1 ? files[0]!.path : files[0]!.path.split('/')[0]!;
            const a = await studio().openAdapters(name, files);
            setAdapter(a);
            setAdapterModel(model);
            for (const w of a.warnings) reportInfo(`${name}: ${w}`);
          }}
        />
        <FileDrop
          label={task ? `task: ${task.file} (${task.totalRows} ${task.kind} records)` : 'Drop an evaluation task (.jsonl)'}
          accept=".jsonl,.json,.csv,.txt"
          testId="plugin-task-drop"
          onFiles={async (files) => {
            const p = await studio().openDataset(files[0]!);
            if (!p.ok) {
              reportIssue(p);
              return;
            }
            setTask(p);
          }}
        />
        <div className="row">
          <NumField
            label="examples (0 = all)"
            value={limit}
            min={0}
            step={1}
            onChange={(v) => setLimit(Math.max(0, Math.round(v)))}
            width={70}
            hint="evaluate on the first N examples of the task only"
          />
          <CapButton cap={caps?.plugIn} disabled={!model || !adapter || !task || job.running} onClick={run}>
            Plug in and evaluate
          </CapButton>
          <CancelButton jobId={job.progress?.jobId} running={job.running} onCancel={() => void studio().cancel(job.progress!.jobId)} />
        </div>
        {task && !job.running ? (
          <div className="muted small">
            {limit > 0 ? Math.min(limit, task.totalRows) : task.totalRows} of {task.totalRows} examples × 2 passes (Full ZS, Plug-in)
          </div>
        ) : null}
        <Progress progress={job.running ? job.progress : null} running={job.running} ended={job.ended} />
        {result ? (
          <>
            <div className="meta">
              {result.file} · {result.replaced} tensors replaced · on {backendLabel(result.backend)}
            </div>
            <MetricsTable
              rows={[
                ['Full ZS', result.fullZS],
                ['Plug-in', result.plugIn],
              ]}
            />
          </>
        ) : null}
      </Panel>
      <TryIt target={plugTarget} hint="Open a model (and drop returned adapters to try the plug-in model)." testId="try-model" />
    </>
  );
}

export function ModelOwnerView() {
  const model = useUi((s) => s.model);
  return (
    <div className="view two-col" data-testid="view-model">
      <div className="col-left">
        <OpenModel />
        <Settings />
      </div>
      <div className="col-right">
        {model ? (
          <Inspect model={model} />
        ) : (
          <Panel title="Inspect">
            <Empty>Open a model to see its architecture, layers, widths and parameter counts.</Empty>
          </Panel>
        )}
        <Results />
        <PlugIn />
      </div>
    </div>
  );
}
