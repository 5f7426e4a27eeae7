/**
 * The studio's backend: the engine's choice (src/engine/webgpu/select.ts chooseBackend: WebGPU when a
 * hardware adapter exists, else the CPU backend), made once per worker, and what happens when the GPU
 * device is lost mid-job (driver reset, the OS reclaiming it, `destroy()`): from then on every job runs on
 * the CPU backend, the job in flight starts again there from its last checkpoint (tuning resumes from its
 * OPFS checkpoint; the other jobs have none and start over), and the badge says so.
 */
import { CpuBackend } from '../../src/engine/cpu/backend';
import { cpuThreadsInfo, initCpuThreads } from '../../src/engine/cpu/pool';
import type { Backend } from '../../src/engine/backend';
import { chooseBackend, type BackendChoice } from '../../src/engine/webgpu/select';
import type { WebGpuBackend } from '../../src/engine/webgpu/backend';
import type { BackendInfo } from '../../src/jobs/studio-api';
import { withCpuFallback } from '../../src/jobs/device-loss';

let choice: Promise<BackendChoice> | null = null;
/** Use a software adapter (SwiftShader) too: slower than the CPU backend, but it exercises the GPU path. */
let allowSoftware = false;
let lost: { reason: string; message: string } | null = null;
const watchers = new Set<(b: BackendInfo) => void>();

let chosen: BackendChoice | null = null;

function choose(): Promise<BackendChoice> {
  choice ??= chooseBackend({
    allowFallbackAdapter: allowSoftware,
    onLost: (l) => {
      // chooseBackend destroys a software adapter's device it refuses: that device was never in use.
      if (chosen?.kind !== 'webgpu') return;
      lost = l;
      void probeBackend().then((b) => {
        for (const w of watchers) w(b);
      });
    },
  }).then((c) => (chosen = c));
  return choice;
}

/** The badge's data. `allowSoftwareAdapter` (first call only) lets a software adapter run the jobs. */
export async function probeBackend(opts: { allowSoftwareAdapter?: boolean } = {}): Promise<BackendInfo> {
  const gpu = await probeGpu(opts);
  const cpu = await cpuInfo();
  // What the jobs run on, in the CLI's words: the kernel variants the WebGPU backend selected, or the CPU
  // pool's threads and why WebGPU is not used.
  const c = chosen;
  const run: BackendInfo['run'] =
    !gpu.lost && c?.kind === 'webgpu'
      ? { kind: 'webgpu', gpu: (c.backend as WebGpuBackend).runInfo('browser') }
      : {
          kind: 'cpu',
          cpu: { threads: cpu.threads, reason: cpu.reason, kernel: cpu.kernel },
          why: gpu.lost ? 'the WebGPU device was lost' : (c?.reason ?? gpu.reason ?? null),
        };
  return { ...gpu, cpu, run };
}

/** The CPU backend's worker pool, started once (one thread, with the reason, without cross-origin isolation). */
let cpuPool: ReturnType<typeof initCpuThreads> | null = null;
async function cpuInfo(): Promise<NonNullable<BackendInfo['cpu']>> {
  cpuPool ??= initCpuThreads().catch(() => cpuThreadsInfo());
  const i = await cpuPool;
  return { threads: i.threads, requested: i.requested, reason: i.reason, kernel: i.kernel };
}

async function probeGpu(opts: { allowSoftwareAdapter?: boolean }): Promise<BackendInfo> {
  if (!choice && opts.allowSoftwareAdapter) allowSoftware = true;
  const c = await choose();
  if (lost) {
    return {
      kind: 'cpu',
      source: 'engine',
      lost: true,
      reason:
        `WebGPU device lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''}). The job in flight resumed on the CPU backend ` +
        'from its last checkpoint; everything runs on the CPU now (reload the page to try WebGPU again).',
    };
  }
  const i = c.info;
  if (!i) return { kind: 'cpu', source: 'engine', reason: `${c.reason}. Everything runs on the CPU backend instead, only slower.` };
  const name = [i.description, i.vendor, i.architecture, i.device].filter((x) => x && x.length > 0).join(' · ');
  return {
    kind: 'webgpu',
    source: 'engine',
    adapterName: name || 'unnamed adapter',
    vendor: i.vendor,
    architecture: i.architecture,
    isFallbackAdapter: i.isFallbackAdapter,
    features: i.features,
    limits: { ...i.limits },
    jobsOn: c.kind,
  };
}

/** Calls `onChange` with the new badge data whenever the backend changes (device loss). */
export function watchBackend(onChange: (b: BackendInfo) => void): void {
  watchers.add(onChange);
}

export async function pickBackend(pref: 'auto' | 'cpu'): Promise<Backend> {
  await cpuInfo(); // the CPU backend's threads, for this job or a fallback from the GPU
  if (pref === 'auto' && !lost) {
    const c = await choose();
    if (c.kind === 'webgpu') return c.backend;
  }
  return new CpuBackend({ dtype: 'f32' });
}

function isLostGpu(be: Backend): boolean {
  return be.name === 'webgpu' && (lost !== null || (be as WebGpuBackend).lost);
}

/** Runs `job` on the chosen backend, again on the CPU backend if the GPU device is lost meanwhile. */
export async function onBackend<T>(
  pref: 'auto' | 'cpu',
  job: (be: Backend) => Promise<T>,
  o: { signal?: AbortSignal; onFallback?: (message: string) => void } = {},
): Promise<T> {
  const be = await pickBackend(pref);
  if (be.name !== 'webgpu') return job(be);
  return withCpuFallback(be, job, {
    ...o,
    isLost: isLostGpu,
    cpu: () => {
      // The device may have been lost without its callback having run yet: every later job uses the CPU too.
      lost ??= { reason: 'unknown', message: 'the device stopped answering' };
      return new CpuBackend({ dtype: 'f32' });
    },
  });
}

/** For end-to-end tests: destroys the GPU device as a driver reset would (no-op on the CPU backend). */
export async function loseDevice(): Promise<boolean> {
  const c = await choose();
  if (c.kind !== 'webgpu') return false;
  (c.backend as WebGpuBackend).destroy();
  return true;
}
