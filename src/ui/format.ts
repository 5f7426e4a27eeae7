/**
 * Pure formatting and progress arithmetic the views share (no DOM, no worker): unit-tested in node.
 */

/** "45s", "1m 05s", "2h 03m". Rounds to whole seconds BEFORE splitting, so 119.6 s reads "2m 00s", never "1m 60s". */
export function formatDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  const total = Math.max(0, Math.round(s));
  if (total < 60) return `${total}s`;
  const m = Math.floor(total / 60);
  const sec = total % 60;
  if (m < 60) return `${m}m ${String(sec).padStart(2, '0')}s`;
  // Hours: round to whole minutes first for the same reason.
  const mins = Math.round(total / 60);
  return `${Math.floor(mins / 60)}h ${String(mins % 60).padStart(2, '0')}m`;
}

/** What the UI knows of a running job's progress: the last event and when (UI clock, ms) it arrived. */
export interface ProgressSnapshot {
  fraction: number | null;
  elapsedS: number;
  etaS: number | null;
  receivedAtMs: number;
}

/**
 * Elapsed and ETA "now", between progress events: elapsed keeps counting from the last event; the ETA is
 * the worker's own estimate (or, without one, elapsed × (1 − f) / f from the overall fraction) counted down
 * by the time since that event. Ticking this every second keeps the display moving when a phase emits no
 * events for a while, instead of freezing at the last value.
 */
export function liveTiming(p: ProgressSnapshot, nowMs: number): { elapsedS: number; etaS: number | null } {
  const since = Math.max(0, (nowMs - p.receivedAtMs) / 1000);
  const elapsedS = p.elapsedS + since;
  let eta = p.etaS;
  if (eta === null && p.fraction !== null && p.fraction > 0.02 && p.fraction < 1) eta = (p.elapsedS * (1 - p.fraction)) / p.fraction;
  if (eta === null || !Number.isFinite(eta)) return { elapsedS, etaS: null };
  return { elapsedS, etaS: Math.max(0, eta - since) };
}

/**
 * Overall progress of a job made of `total` equal-weight parts (a settings grid): `done` finished parts plus
 * the current part's fraction. The overall ETA extrapolates from the whole job's elapsed time.
 */
export function overallProgress(
  done: number,
  total: number,
  partFraction: number | null,
  elapsedS: number,
): { fraction: number; etaS: number | null } {
  if (total <= 0) return { fraction: 1, etaS: 0 };
  const f = Math.min(1, (done + Math.max(0, Math.min(1, partFraction ?? 0))) / total);
  const etaS = f > 0.01 && elapsedS > 0 ? (elapsedS * (1 - f)) / f : null;
  return { fraction: f, etaS };
}

/** The backend facts the badge needs (a structural subset of the worker's BackendInfo). */
export interface BackendFacts {
  kind: 'webgpu' | 'cpu';
  adapterName?: string;
  isFallbackAdapter?: boolean;
  reason?: string;
  /** CPU worker threads, when the backend reports them. */
  threads?: number;
  /** Where jobs run, when the worker says (a software adapter may be skipped, or used on request). */
  jobsOn?: 'webgpu' | 'cpu';
}

/**
 * What the jobs actually run on and why, in the user's words. Jobs skip a software WebGPU adapter
 * (SwiftShader) on purpose: the CPU backend trains faster than a GPU emulated on the CPU.
 */
export function describeBackend(b: BackendFacts): { runsOn: 'WebGPU' | 'CPU'; label: string; why: string } {
  const cpu = `CPU${b.threads ? ` (${b.threads} thread${b.threads > 1 ? 's' : ''})` : ''}`;
  if (b.kind === 'cpu') {
    return { runsOn: 'CPU', label: cpu, why: `no usable WebGPU: ${b.reason ?? 'unknown reason'}` };
  }
  if (b.isFallbackAdapter && b.jobsOn === 'webgpu') {
    return {
      runsOn: 'WebGPU',
      label: `WebGPU · ${b.adapterName ?? 'software adapter'} (software)`,
      why: 'a software WebGPU adapter was requested (?gpu=software): it exercises the GPU path but is slower than the CPU backend',
    };
  }
  if (b.isFallbackAdapter || b.jobsOn === 'cpu') {
    return {
      runsOn: 'CPU',
      label: cpu,
      why: `the WebGPU adapter${b.adapterName ? ` (${b.adapterName})` : ''} is SwiftShader-style software emulation, a fallback: the CPU backend is faster, so jobs run there`,
    };
  }
  return { runsOn: 'WebGPU', label: `WebGPU · ${b.adapterName ?? 'GPU'}`, why: 'a hardware WebGPU adapter is available; jobs run on it' };
}

/** One line on why the emulator package has the size it has (download size vs the model file). */
export function explainPackageSize(o: {
  packageBytes: number;
  paramsAfter: number;
  modelBytes: number;
  modelParams: number;
  modelDtypes: string[];
}): string | null {
  if (o.paramsAfter <= 0 || o.modelParams <= 0 || o.modelBytes <= 0) return null;
  const pkgBpp = o.packageBytes / o.paramsAfter;
  const modelBpp = o.modelBytes / o.modelParams;
  if (o.packageBytes <= o.modelBytes || pkgBpp < modelBpp * 1.5) return null;
  const half = o.modelDtypes.filter((d) => /^(F16|BF16)$/i.test(d));
  const pkgBits = Math.round(pkgBpp) * 8;
  return (
    `The package is larger than the model file although it holds fewer parameters: it stores ${pkgBits}-bit floats (about ${pkgBpp.toFixed(1)} bytes per parameter)` +
    (half.length
      ? ` while the model file is ${half.join('/')} (${modelBpp.toFixed(1)} bytes per parameter).`
      : `, the model file about ${modelBpp.toFixed(1)}.`)
  );
}

/**
 * A backend's name (the engine's `Backend.name`: "cpu-f32", "cpu-f64", "webgpu") as the UI words it, the
 * way the badge does: "CPU", "CPU (f64)", "WebGPU". Other strings (already worded) pass through.
 */
export function backendLabel(name: string): string {
  if (name === 'cpu-f32') return 'CPU';
  if (name === 'cpu-f64') return 'CPU (f64)';
  if (name === 'webgpu') return 'WebGPU';
  if (name === 'cpu (host)') return 'CPU';
  return name;
}

/** An axis tick: 15000000 -> "15M", 7500000 -> "7.5M", 2500 -> "2.5K"; under 10 000 as uPlot would print it. */
export function compactTick(v: number): string {
  const a = Math.abs(v);
  const short = (x: number, unit: string) => `${Number.parseFloat(x.toPrecision(3))}${unit}`;
  if (a >= 1e9) return short(v / 1e9, 'B');
  if (a >= 1e6) return short(v / 1e6, 'M');
  if (a >= 1e4) return short(v / 1e3, 'K');
  return String(Number.parseFloat(v.toPrecision(6)));
}
