/**
 * `--backend cpu|webgpu|auto` for the compute commands (compress, tune, eval, plug, ot, bench's train
 * section): the one place the CLI picks its engine backend, with the studio's rule (chooseNodeBackend):
 *
 * - cpu     the CPU backend (its threads come from --threads);
 * - webgpu  WebGPU in Node through Dawn (the optional `webgpu` package), so a model owner on a GPU server runs
 *           the same kernels and job code as the studio; an error when Dawn or an adapter is missing; a software
 *           adapter (SwiftShader) is accepted with a warning;
 * - auto    Dawn on a hardware adapter, else the CPU backend, with the reason printed.
 *
 * The default is GRADOT_BACKEND, else cpu: results on the CPU do not depend on the machine's GPU unless asked.
 * At the start of a job the command prints one line saying what runs ("backend: webgpu (Dawn, <adapter>,
 * f16: no, subgroups: yes)" or "backend: cpu (2 threads, relaxed SIMD)"), the same text as the studio's badge.
 */
import type { Backend } from '../engine/backend';
import { CpuBackend } from '../engine/cpu/backend';
import { cpuThreadsInfo } from '../engine/cpu/pool';
import type { WebGpuBackend } from '../engine/webgpu/backend';
import { describeRun, type RunInfo } from '../engine/webgpu/run-info';
import { withCpuFallback } from '../jobs/device-loss';
import type { OptionSpec, ParsedOptions } from './args';
import { UsageError, type CliIO } from './command';

export const BACKEND_KINDS = ['cpu', 'webgpu', 'auto'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** Spread into a command's option spec. */
export const BACKEND_OPTIONS: Record<'backend', OptionSpec> = { backend: { type: 'string' } };
/** Appended to a command's usage line. */
export const BACKEND_USAGE = '[--backend cpu|webgpu|auto]';
/** --backend, else GRADOT_BACKEND, else 'cpu'; anything else is a UsageError. */
export function backendKind(o: ParsedOptions, env: Record<string, string | undefined> = process.env): BackendKind {
  const flag = o.backend as string | undefined;
  const raw = flag ?? (env.GRADOT_BACKEND || undefined) ?? 'cpu';
  if (!(BACKEND_KINDS as readonly string[]).includes(raw)) {
    throw new UsageError(`${flag !== undefined ? '--backend' : 'GRADOT_BACKEND'} must be cpu, webgpu or auto (got '${raw}')`);
  }
  return raw as BackendKind;
}

export interface CliBackend {
  backend: Backend;
  /** What runs, for the JSON result and the printed line (the CPU after a lost device, see `job`). */
  run: RunInfo;
  /** "webgpu (Dawn, ..., f16: no, subgroups: yes)" / "cpu (2 threads, relaxed SIMD)". */
  line: string;
  /** Releases the GPU device and its buffers once the job is done; a no-op on the CPU. */
  close(): void;
  /**
   * Runs `job` on the backend; if the GPU device is lost meanwhile (driver reset, GPU fault), runs it again on
   * the CPU backend, saying so, as the studio does: tuning resumes from its last checkpoint, other jobs start over.
   */
  job<T>(job: (be: Backend) => Promise<T>): Promise<T>;
}

/** The CPU part of RunInfo from the running thread pool. */
export function cpuRun(why: string | null = null): RunInfo {
  const t = cpuThreadsInfo();
  return { kind: 'cpu', cpu: { threads: t.threads, reason: t.reason, kernel: t.kernel }, why };
}

/**
 * Builds the backend --backend asks for and prints the "backend: ..." line (and a software-adapter warning)
 * on stderr. Dawn is only loaded for webgpu/auto, so `--backend cpu` never touches the native module.
 */
export async function openCliBackend(
  o: ParsedOptions,
  io: Pick<CliIO, 'err'>,
  make: () => Backend = () => new CpuBackend(),
): Promise<CliBackend> {
  const kind = backendKind(o);
  let run: RunInfo;
  let backend: Backend;
  if (kind === 'cpu') {
    backend = make();
    run = cpuRun();
  } else {
    const { chooseNodeBackend } = await import('../engine/webgpu/node');
    const c = await chooseNodeBackend(kind, make);
    backend = c.backend;
    run = c.kind === 'webgpu' && c.gpu ? { kind: 'webgpu', gpu: c.gpu } : cpuRun(c.why);
    if (c.warning) io.err(`warning: ${c.warning}`);
  }
  const line = describeRun(run);
  io.err(`backend: ${line}`);
  const out: CliBackend = {
    backend,
    run,
    line,
    close: () => {
      if (backend.name === 'webgpu') (backend as WebGpuBackend).destroy();
    },
    job: (job) =>
      runWithCpuFallback(backend, job, io, () => {
        out.run = cpuRun('the WebGPU device was lost during the job');
        io.err(`backend: ${describeRun(out.run)}`);
        return make();
      }),
  };
  return out;
}

/** `CliBackend.job`: a GPU backend whose device is lost (its `lost` flag) hands the job to `cpu()`. */
export function runWithCpuFallback<T>(
  backend: Backend,
  job: (be: Backend) => Promise<T>,
  io: Pick<CliIO, 'err'>,
  cpu: () => Backend,
  settleMs?: number,
): Promise<T> {
  if (backend.name !== 'webgpu') return job(backend);
  return withCpuFallback(backend, job, {
    isLost: (be) => (be as WebGpuBackend).lost,
    cpu,
    onFallback: (m) => io.err(`warning: ${m}`),
    ...(settleMs !== undefined ? { settleMs } : {}),
  });
}
