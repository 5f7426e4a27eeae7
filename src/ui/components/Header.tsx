import { useUi, type View } from '../../store/ui';
import { formatBytes } from '../studio';

function BackendBadge() {
  const b = useUi((s) => s.backend);
  if (!b) {
    return (
      <span className="badge pending" data-testid="backend-badge">
        detecting backend…
      </span>
    );
  }
  if (b.kind === 'cpu') {
    return (
      <span className="badge cpu" data-testid="backend-badge" title={b.reason}>
        CPU fallback — WebGPU unavailable
        <span className="tip">
          <strong>Why:</strong> {b.reason}
          <br />
          Enable WebGPU (Chrome/Edge 113+, or chrome://flags/#enable-unsafe-webgpu on Linux) for GPU speed.
        </span>
      </span>
    );
  }
  const l = b.limits ?? {};
  return (
    <span className={`badge webgpu ${b.isFallbackAdapter ? 'fallback' : ''}`} data-testid="backend-badge" tabIndex={0}>
      WebGPU · {b.adapterName}
      {b.isFallbackAdapter ? <em className="flag">software fallback (SwiftShader?) — slow</em> : null}
      <span className="tip">
        <strong>Adapter</strong> {b.adapterName} {b.isFallbackAdapter ? '(fallback adapter)' : ''}
        <br />
        maxBufferSize {formatBytes(l.maxBufferSize ?? 0)} · maxStorageBufferBindingSize {formatBytes(l.maxStorageBufferBindingSize ?? 0)}
        <br />
        invocations/workgroup {l.maxComputeInvocationsPerWorkgroup} · workgroup storage {formatBytes(l.maxComputeWorkgroupStorageSize ?? 0)} ·
        storage buffers/stage {l.maxStorageBuffersPerShaderStage}
        <br />
        features: {(b.features ?? []).join(', ') || 'none'}
        <br />
        source: {b.source === 'engine' ? 'engine WebGPU backend' : 'adapter probe (engine backend not loaded yet)'}
      </span>
    </span>
  );
}

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
      <span className="lock" aria-hidden>
        🔒
      </span>
      <span>
        <strong>Nothing leaves this machine.</strong> Files are read locally; only downloads you click create files.
      </span>
      <span className="csp" title="connect-src 'self' blob: data:; no analytics, no remote fonts or scripts">
        CSP: same-origin only
      </span>
    </div>
  );
}
