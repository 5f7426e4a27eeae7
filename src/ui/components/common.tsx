import { Component, useEffect, useState, type ErrorInfo, type ReactNode } from 'react';
import type { Capability, EvalResult, ProgressEvent } from '../../jobs/studio-api';
import { formatDuration } from '../studio';

export function Panel({ title, children, actions, className }: { title: string; children: ReactNode; actions?: ReactNode; className?: string }) {
  return (
    <section className={`panel ${className ?? ''}`} aria-label={title}>
      <header className="panel-head">
        <h3>{title}</h3>
        {actions ? <div className="panel-actions">{actions}</div> : null}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}

/** A control backed by a capability: disabled with the reason shown when the engine part is missing. */
export function CapButton({
  cap, onClick, children, disabled, kind = 'primary', title,
}: {
  cap: Capability | undefined;
  onClick: () => void;
  children: ReactNode;
  disabled?: boolean;
  kind?: 'primary' | 'secondary';
  title?: string;
}) {
  const unavailable = !cap || !cap.available;
  return (
    <span className="cap-button">
      <button className={kind} disabled={unavailable || disabled} onClick={onClick} title={unavailable ? cap?.note ?? 'checking…' : title}>
        {children}
      </button>
      {unavailable ? <span className="na-note">{cap ? cap.note : 'checking engine…'}</span> : null}
    </span>
  );
}

export function NotAvailable({ children }: { children: ReactNode }) {
  return <div className="na-block">{children}</div>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function KV({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="kv">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Progress({ progress, running, paused }: { progress: ProgressEvent | null; running: boolean; paused?: boolean }) {
  if (!progress && !running) return null;
  const frac = progress?.fraction ?? null;
  return (
    <div className="progress" aria-live="polite">
      <div className="progress-line">
        <span className="phase">{paused ? 'paused' : progress?.phase ?? 'starting…'}</span>
        {progress?.step !== undefined ? <span>step {progress.step}{progress.totalSteps ? `/${progress.totalSteps}` : ''}</span> : null}
        {progress?.loss !== undefined ? <span>loss {progress.loss.toFixed(4)}</span> : null}
        {progress?.tokensPerS !== undefined ? <span>{progress.tokensPerS.toFixed(0)} tok/s</span> : null}
        <span>elapsed {formatDuration(progress?.elapsedS)}</span>
        <span>ETA {formatDuration(progress?.etaS)}</span>
      </div>
      <div className={`bar ${frac === null ? 'indeterminate' : ''}`} role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={frac === null ? undefined : Math.round(frac * 100)}>
        <div style={{ width: frac === null ? '30%' : `${(frac * 100).toFixed(1)}%` }} />
      </div>
      {progress?.message ? <div className="progress-msg">{progress.message}</div> : null}
    </div>
  );
}

export function NumField({
  label, value, onChange, step, min, max, width = 70, hint,
}: { label: string; value: number; onChange: (v: number) => void; step?: number; min?: number; max?: number; width?: number; hint?: string }) {
  const [text, setText] = useState(String(value));
  useEffect(() => setText(String(value)), [value]);
  return (
    <label className="field" title={hint}>
      <span>{label}</span>
      <input
        type="number"
        value={text}
        step={step}
        min={min}
        max={max}
        style={{ width }}
        onChange={(e) => {
          setText(e.target.value);
          const v = Number(e.target.value);
          if (e.target.value !== '' && Number.isFinite(v)) onChange(v);
        }}
      />
    </label>
  );
}

/** Per-view error boundary: a crash in one view shows its error and leaves the other views usable. */
export class ViewBoundary extends Component<{ name: string; children: ReactNode }, { error: Error | null }> {
  override state: { error: Error | null } = { error: null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  override componentDidCatch(error: Error, info: ErrorInfo) {
    console.error(`[${this.props.name}]`, error, info.componentStack);
  }
  override render() {
    if (this.state.error) {
      return (
        <div className="alert error" role="alert">
          <strong>The {this.props.name} view crashed:</strong> {this.state.error.message}
          <div>
            <button className="secondary" onClick={() => this.setState({ error: null })}>Reset this view</button>
          </div>
        </div>
      );
    }
    return this.props.children;
  }
}

/** Evaluation results side by side (e.g. Emulator ZS vs Emulator FT, Full ZS vs Plug-in). */
export function MetricsTable({ rows }: { rows: [string, EvalResult | null][] }) {
  const f = (v: number | undefined, pct = false) => (v === undefined || !Number.isFinite(v) ? '—' : pct ? `${(v * 100).toFixed(1)}%` : v.toFixed(4));
  return (
    <table className="dense metrics">
      <thead>
        <tr>
          <th />
          <th className="num">acc</th>
          <th className="num">acc_norm</th>
          <th className="num">loss</th>
          <th className="num">ppl</th>
          <th className="num">exact match</th>
          <th className="num">n</th>
          <th className="num">time</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([name, r]) => (
          <tr key={name}>
            <td>{name}</td>
            {r ? (
              <>
                <td className="num">{f(r.acc, true)}</td>
                <td className="num">{f(r.accNorm, true)}</td>
                <td className="num">{f(r.loss)}</td>
                <td className="num">{r.perplexity === undefined ? '—' : r.perplexity.toFixed(2)}</td>
                <td className="num">{f(r.exactMatch, true)}</td>
                <td className="num">{r.n}</td>
                <td className="num">{r.seconds.toFixed(1)}s</td>
              </>
            ) : (
              <td colSpan={7} className="muted">not run</td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
