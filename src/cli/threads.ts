/**
 * `--threads N` (any command; default GRADOT_THREADS, else the machine's cores capped at 8): how many threads
 * the CPU backend's f32 products use. Taken out of argv before the command parses its own options.
 */
import { UsageError } from './command';
import { describeCpuThreads, initCpuThreads, type CpuThreadsInfo } from '../engine/cpu/pool';

export function takeThreadsFlag(argv: string[]): { threads: number | undefined; rest: string[] } {
  const rest: string[] = [];
  let raw: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--threads') {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError('--threads expects a positive integer');
    } else if (a.startsWith('--threads=')) {
      raw = a.slice('--threads='.length);
    } else {
      rest.push(a);
    }
  }
  raw ??= process.env.GRADOT_THREADS || undefined;
  if (raw === undefined) return { threads: undefined, rest };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads expects a positive integer (got '${raw}')`);
  return { threads: n, rest };
}

/** Starts the pool (a no-op when it already runs at that count); returns a line to print when it runs on fewer
 *  threads than asked, else null. */
export async function startThreads(threads: number | undefined): Promise<{ info: CpuThreadsInfo; warning: string | null }> {
  const info = await initCpuThreads(threads === undefined ? {} : { threads });
  return { info, warning: info.threads < info.requested ? `cpu: ${describeCpuThreads(info)}` : null };
}
