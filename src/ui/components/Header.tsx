import { useUi, type View } from '../../store/ui';
import { describeBackend } from '../format';
import { describeRun, runSummary } from '../../engine/webgpu/run-info';
import { formatBytes } from '../studio';

/** "CPU backend: 4 threads, wasm-relaxed-simd" or "CPU backend: 1 thread (why), wasm-simd". */
function cpuLine(c: NonNullable<ReturnType<typeof useUi.getState>['backend']>['cpu']): string {
  if (!c) return '';
  return `CPU backend: ${c.threads} thread${c.threads === 1 ? '' : 's'}${c.reason ? ` (${c.reason})` : ''}, ${c.kernel}`;
}

function BackendBadge() {
  const b = useUi((s) => s.backend);
  if (!b) {
    return (
      <span className="badge pending" data-testid="backend-badge">
        detecting backend…
      </span>
    );
  }
  if (b.kind === 'cpu' && b.lost) {
    return (
      <span className="badge cpu lost" data-testid="backend-badge" title={b.reason}>
        CPU — WebGPU device lost, the job resumed on the CPU
        <span className="tip">
          <strong>What happened:</strong> {b.reason}
        </span>
      </span>
    );
  }
  // The badge names what the jobs run on (not merely what the browser offers) and says why; beside it, what
  // runs there: the CPU pool's threads (and why one) or the WebGPU kernel variants in use (f16, subgroups).
  const d = describeBackend(b);
  const summary = b.run ? <span data-testid="backend-run"> · {runSummary(b.run)}</span> : null;
  // The same line the CLI prints at the start of a job.
  const runLine = b.run ? (
    <>
      <strong>Runs:</strong> <code data-testid="backend-run-line">{describeRun(b.run)}</code>
      <br />
    </>
  ) : null;
  if (b.kind === 'cpu') {
    return (
      <span className="badge cpu" data-testid="backend-badge" title={d.why} tabIndex={0}>
        Runs on {d.label}
        {summary}
        <em className="flag">CPU fallback: no WebGPU</em>
        <span className="tip">
          <strong>Why:</strong> {d.why}
          <br />
          {runLine ??
            (b.cpu ? (
              <>
                {cpuLine(b.cpu)}
                <br />
              </>
            ) : null)}
          Enable WebGPU (Chrome/Edge 113+, or chrome://flags/#enable-unsafe-webgpu on Linux) for GPU speed.
        </span>
      </span>
    );
  }
  const l = b.limits ?? {};
  return (
    <span className={`badge ${d.runsOn === 'CPU' ? 'cpu' : 'webgpu'}`} data-testid="backend-badge" tabIndex={0} title={d.why}>
      Runs on {d.label}
      {summary}
      {d.runsOn === 'CPU' ? (
        <em className="flag">
          WebGPU · {b.architecture || (b.adapterName ?? 'adapter').split(' · ')[0]} is a software fallback: CPU is faster
        </em>
      ) : null}
      <span className="tip">
        <strong>Why:</strong> {d.why}.
        <br />
        {runLine}
        <strong>WebGPU adapter:</strong> {b.adapterName}
        {b.cpu ? (
          <>
            <br />
            {cpuLine(b.cpu)}
          </>
        ) : null}
        <table className="limits">
          <tbody>
            <tr>
              <td>maxBufferSize</td>
              <td>{formatBytes(l.maxBufferSize ?? 0)}</td>
            </tr>
            <tr>
              <td>maxStorageBufferBindingSize</td>
              <td>{formatBytes(l.maxStorageBufferBindingSize ?? 0)}</td>
            </tr>
            <tr>
              <td>invocations / workgroup</td>
              <td>{l.maxComputeInvocationsPerWorkgroup}</td>
            </tr>
            <tr>
              <td>workgroup storage</td>
              <td>{formatBytes(l.maxComputeWorkgroupStorageSize ?? 0)}</td>
            </tr>
            <tr>
              <td>storage buffers / stage</td>
              <td>{l.maxStorageBuffersPerShaderStage}</td>
            </tr>
            <tr>
              <td>workgroups / dimension</td>
              <td>{l.maxComputeWorkgroupsPerDimension}</td>
            </tr>
            {KEY_FEATURES.map((f) => (
              <tr key={f}>
                <td>{f}</td>
                <td>{b.features?.includes(f) ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <span className="muted">
          source: {b.source === 'engine' ? "the engine's WebGPU backend" : 'adapter probe (engine backend not in this build)'}
        </span>
      </span>
    </span>
  );
}

const KEY_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'];

const TABS: { id: View; label: string; hint: string }[] = [
  { id: 'model', label: 'Model owner', hint: 'open a model, build an emulator, ship the package' },
  { id: 'data', label: 'Data owner', hint: 'tune adapters on your data against the emulator' },
  { id: 'research', label: 'Researcher', hint: 'compare settings: the five OT numbers, Pareto' },
];

export function Header() {
  const view = useUi((s) => s.view);
  const setView = useUi((s) => s.setView);
  return (
    <header className="app-head">
      <div className="brand">
        <span className="logo" aria-hidden>
          ◆
        </span>
        <span className="name">GradOT Studio</span>
        <span className="sub">offsite-tuning with gradient-preserving emulators</span>
      </div>
      <nav className="tabs" role="tablist">
        {TABS.map((t) => (
          <button
            key={t.id}
            role="tab"
            aria-selected={view === t.id}
            className={view === t.id ? 'tab active' : 'tab'}
            title={t.hint}
            data-testid={`tab-${t.id}`}
            onClick={() => setView(t.id)}
          >
            {t.label}
          </button>
        ))}
      </nav>
      <BackendBadge />
    </header>
  );
}

export function PrivacyBar() {
  return (
    <div className="privacy" data-testid="privacy">
      <svg className="lock" width="12" height="14" viewBox="0 0 12 14" aria-hidden>
        <rect x="1" y="6" width="10" height="7.5" rx="1.5" fill="currentColor" />
        <path d="M3.2 6V4.2a2.8 2.8 0 0 1 5.6 0V6" fill="none" stroke="currentColor" strokeWidth="1.6" />
      </svg>
      <span>
        <strong>Nothing leaves this machine.</strong> Files are read locally; only downloads you click create files.
      </span>
      <span className="csp" title="connect-src 'self' blob: data:; no analytics, no remote fonts or scripts">
        CSP: same-origin only
      </span>
    </div>
  );
}
