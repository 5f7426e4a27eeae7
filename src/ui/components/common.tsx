import { Component, useEffect, useMemo, useState, type ErrorInfo, type ReactNode } from 'react';
import type { Capability, EvalResult, ProgressEvent } from '../../jobs/studio-api';
import { formatDuration, liveTiming } from '../format';

export function Panel({
  title,
  children,
  actions,
  className,
}: {
  title: string;
  children: ReactNode;
  actions?: ReactNode;
  className?: string;
}) {
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
  cap,
  onClick,
  children,
  disabled,
  kind = 'primary',
  title,
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
      <button
        className={kind}
        disabled={unavailable || disabled}
        onClick={onClick}
        title={unavailable ? (cap?.note ?? 'checking…') : title}
      >
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

/** Re-renders every `ms` while `active`, so live timings tick between progress events. */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [active, ms]);
  return now;
}

/** How a job ended, shown on the status line once it is no longer running. */
export type JobEnd = 'done' | 'cancelled' | 'failed' | null;

export function Progress({
  progress,
  running,
  paused,
  pausing,
  ended,
  overall,
}: {
  progress: ProgressEvent | null;
  running: boolean;
  paused?: boolean;
  /** Pause was asked for; the job stops at the end of its current step. */
  pausing?: boolean;
  ended?: JobEnd;
  /** Multi-part jobs (a settings grid): parts finished / total and the whole job's timing. */
  overall?: { done: number; total: number; fraction: number; elapsedS: number; etaS: number | null; receivedAtMs: number } | null;
}) {
  // When each event arrived (UI clock), so elapsed/ETA can keep moving between events.
  const receivedAtMs = useMemo(() => Date.now(), [progress]);
  const now = useNow(running && !paused);
  if (!running) {
    if (ended === 'cancelled') {
      return (
        <div className="progress ended" aria-live="polite" data-testid="job-status">
          <span className="phase">cancelled</span>
          {progress ? (
            <span className="muted small">
              {' '}
              at {progress.phase}
              {progress.step !== undefined ? `, step ${progress.step}${progress.totalSteps ? `/${progress.totalSteps}` : ''}` : ''}
            </span>
          ) : null}
        </div>
      );
    }
    return null;
  }
  const frac = progress?.fraction ?? null;
  const t = progress
    ? liveTiming({ fraction: frac, elapsedS: progress.elapsedS, etaS: progress.etaS, receivedAtMs }, paused ? receivedAtMs : now)
    : null;
  const o = overall
    ? liveTiming(
        { fraction: overall.fraction, elapsedS: overall.elapsedS, etaS: overall.etaS, receivedAtMs: overall.receivedAtMs },
        paused ? overall.receivedAtMs : now,
      )
    : null;
  return (
    <div className="progress" aria-live="polite" data-testid="job-status">
      {overall ? (
        <div className="progress-line overall" data-testid="overall-progress">
          <span className="phase">
            setting {Math.min(overall.done + 1, overall.total)} of {overall.total} ({overall.done} done)
          </span>
          <span>elapsed {formatDuration(o?.elapsedS)}</span>
          <span>ETA {formatDuration(o?.etaS)} for all</span>
        </div>
      ) : null}
      {overall ? (
        <div
          className="bar overall"
          role="progressbar"
          aria-label="all settings"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(overall.fraction * 100)}
        >
          <div style={{ width: `${(overall.fraction * 100).toFixed(1)}%` }} />
        </div>
      ) : null}
      <div className="progress-line">
        <span className="phase">{paused ? 'paused' : pausing ? 'pausing after this step…' : (progress?.phase ?? 'starting…')}</span>
        {progress?.step !== undefined ? (
          <span>
            step {progress.step}
            {progress.totalSteps ? `/${progress.totalSteps}` : ''}
          </span>
        ) : null}
        {progress?.loss !== undefined ? <span>loss {progress.loss.toFixed(4)}</span> : null}
        {progress?.tokensPerS !== undefined ? <span>{progress.tokensPerS.toFixed(0)} tok/s</span> : null}
        <span>elapsed {formatDuration(t?.elapsedS)}</span>
        <span data-testid="eta">ETA {paused ? '(paused)' : formatDuration(t?.etaS)}</span>
      </div>
      <div
        className={`bar ${frac === null ? 'indeterminate' : ''}`}
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={frac === null ? undefined : Math.round(frac * 100)}
      >
        <div style={{ width: frac === null ? '30%' : `${(frac * 100).toFixed(1)}%` }} />
      </div>
      {progress?.message ? <div className="progress-msg">{progress.message}</div> : null}
    </div>
  );
}

/** Cancel for a running job; disabled until the worker has named the job (its first progress event). */
export function CancelButton({ jobId, running, onCancel }: { jobId: string | null | undefined; running: boolean; onCancel: () => void }) {
  if (!running) return null;
  return (
    <button
      className="secondary"
      data-testid="cancel"
      disabled={!jobId}
      title={jobId ? 'stop this job; finished parts are kept' : 'starting…'}
      onClick={onCancel}
    >
      Cancel
    </button>
  );
}

/** A disclosure for the technical trail (module names, reading ids, pools): out of the main panel's way. */
export function Details({ summary = 'details', children }: { summary?: string; children: ReactNode }) {
  return (
    <details className="details">
      <summary>{summary}</summary>
      <div className="details-body">{children}</div>
    </details>
  );
}

export function NumField({
  label,
  value,
  onChange,
  step,
  min,
  max,
  width = 70,
  hint,
}: {
  label: string;
  value: number;
  onChange: (v: number) => void;
  step?: number;
  min?: number;
  max?: number;
  width?: number;
  hint?: string;
}) {
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
            <button className="secondary" onClick={() => this.setState({ error: null })}>
              Reset this view
            </button>
          </div>
        </div>
      );
    }
    return this.props.children;
  }
}

/** Evaluation results side by side (e.g. Emulator ZS vs Emulator FT, Full ZS vs Plug-in). */
export function MetricsTable({ rows }: { rows: [string, EvalResult | null][] }) {
  const f = (v: number | undefined, pct = false) =>
    v === undefined || !Number.isFinite(v) ? '—' : pct ? `${(v * 100).toFixed(1)}%` : v.toFixed(4);
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
              <td colSpan={7} className="muted">
                not run
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
