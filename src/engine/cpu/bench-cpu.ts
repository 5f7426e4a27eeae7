/**
 * `gradot bench --only cpu`: every CPU-backend ratio in one run, each beside its reference measured in the
 * same run, at 1 thread and at the pool's thread count:
 *   - f32 matmul (512^3, 1024^3): relaxed-SIMD FMA and plain SIMD kernels vs torch on OpenBLAS
 *     (tools/pretrain/with_openblas.sh; torch.set_num_threads(k) for the same k);
 *   - training step of the 6-layer bench model (src/model/bench-train.ts) vs the same in torch on OpenBLAS;
 *   - scaling: k threads over 1 thread, for both (the training step also with the pool's polling off);
 *   - the TensorFlow.js wasm peer (same decoder, same steps), when its packages are installed.
 * The machine's load average is printed first: on a shared machine wall-clock ratios move with it, so the
 * CPU-time ratios (process CPU seconds) are printed too. Where the OS reports per-thread CPU time (Linux
 * /proc), the training step's calling-thread CPU seconds per step are printed as well: the calling thread
 * does the serial work plus its share of every parallel job, so on free cores the step cannot take less than
 * that, and (1-thread CPU) / (N-thread calling-thread CPU) is the scaling the step would reach there. It
 * moves far less with load than wall time (other processes delay a thread but do not add to its CPU time;
 * they still slow it somewhat through shared caches and sibling hyperthreads).
 */

import { benchMatmul, benchMatmulTorch, type MatmulBenchResult, type TorchBenchResult } from '../bench';
import { benchTorchTrainStep, benchTrainStep, type BenchTrainResult, type TorchBenchOutcome } from '../../model/bench-train';
import type { TfjsBenchOutcome } from '../../model/bench-tfjs';
import { cpuSpin, cpuSpinActive, cpuThreadsInfo, describeCpuThreads, setCpuKernel, setCpuSpin, setCpuThreads } from './pool';

export interface CpuBenchOptions {
  sizes?: number[];
  /** Thread counts to compare (default 1 and the pool's count). */
  threads?: number[];
  /** Timed training steps per side. */
  steps?: number;
  /** Skip the training-step rows (matmul only). */
  noTrain?: boolean;
  /** Rounds of every measurement, interleaved (1 thread, N threads, torch, ...); the best round of each
   *  is kept: on a shared machine the best round is the one least disturbed by other processes. */
  repeat?: number;
  /** Skip the TensorFlow.js peer (slow: ~10x our step time). */
  noTfjs?: boolean;
  /** Launcher for torch (default: tools/pretrain/with_openblas.sh when it exists). */
  torchLauncher?: string[];
}

export interface CpuBenchReport {
  load: number[] | null;
  rounds: number;
  pool: string;
  matmul: {
    threads: number;
    n: number;
    relaxed: MatmulBenchResult | null;
    simd: MatmulBenchResult;
    torch: { gflops: number; cpuGflops: number | null } | null;
    ratio: number | null;
    cpuRatio: number | null;
  }[];
  torchNote: string | null;
  train: {
    threads: number;
    ours: BenchTrainResult;
    /** Calling-thread CPU seconds per step (Linux; null elsewhere), best round. */
    mainCpuSecondsPerStep: number | null;
    /** The other threads' CPU seconds per step (the pool's workers, and V8's own helpers), same round. */
    otherCpuSecondsPerStep: number | null;
    torch: TorchBenchOutcome;
    ratio: number | null;
    cpuRatio: number | null;
  }[];
  scaling: { what: string; threads: number; speedup: number }[];
  /** The pool's polling before sleeping (pool.ts setCpuSpin) and whether it ran in the last training step
   *  at N threads ('auto' polls only while other processes leave the cores idle). */
  polling: string;
  /** The training step at N threads with polling off (threads sleep at once between jobs), best round:
   *  beside the default, what polling is worth on this machine at this load. */
  noPolling: { threads: number; tokensPerSecond: number; speedup: number | null }[];
  /** Calling-thread CPU-s/step at 1 thread over that at N threads: the step's scaling on free cores. */
  projectedScaling: { threads: number; speedup: number }[];
  /** The TensorFlow.js wasm peer: same decoder, weights, tokens and steps. `ratios` compare our tokens/s at
   *  each thread count with it (TF.js's own thread count is in its result). */
  tfjs: { outcome: TfjsBenchOutcome; ratios: { threads: number; ratio: number; cpuRatio: number | null }[] } | null;
}

/** CPU seconds of this process's calling thread so far (Linux /proc; null elsewhere). Clock ticks are 1/100 s
 *  on every Linux this runs on (USER_HZ). */
export function mainThreadCpuSeconds(fs: typeof import('node:fs') | undefined): number | null {
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid;
  if (!fs || pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/self/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

/** CPU seconds of this process's other threads so far (the pool's workers, V8's helpers; Linux /proc). */
export function otherThreadsCpuSeconds(fs: typeof import('node:fs') | undefined): number | null {
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid;
  if (!fs || pid === undefined) return null;
  try {
    let ticks = 0;
    for (const t of fs.readdirSync('/proc/self/task')) {
      if (t === String(pid)) continue;
      try {
        const stat = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(f[11]) + Number(f[12]);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

async function nodeModules(): Promise<{
  os: typeof import('node:os');
  fs: typeof import('node:fs');
  path: typeof import('node:path');
  url: typeof import('node:url');
} | null> {
  try {
    const [os, fs, path, url] = await Promise.all(['node:os', 'node:fs', 'node:path', 'node:url'].map((n) => import(/* @vite-ignore */ n)));
    return { os, fs, path, url } as never;
  } catch {
    return null;
  }
}

export async function benchCpu(o: CpuBenchOptions = {}): Promise<CpuBenchReport> {
  const node = await nodeModules();
  const sizes = o.sizes ?? [512, 1024];
  const started = cpuThreadsInfo();
  const maxT = started.threads;
  const threadList = o.threads ?? (maxT > 1 ? [1, maxT] : [1]);
  let launcher = o.torchLauncher;
  if (!launcher && node) {
    const root = node.path.resolve(node.path.dirname(node.url.fileURLToPath(import.meta.url)), '..', '..', '..');
    const sh = node.path.join(root, 'tools', 'pretrain', 'with_openblas.sh');
    launcher = node.fs.existsSync(sh) ? ['sh', sh] : [];
  }
  const report: CpuBenchReport = {
    load: node ? node.os.loadavg() : null,
    rounds: Math.max(1, Math.floor(o.repeat ?? 1)),
    pool: describeCpuThreads(started),
    matmul: [],
    torchNote: null,
    train: [],
    scaling: [],
    projectedScaling: [],
    polling: '',
    noPolling: [],
    tfjs: null,
  };
  const rounds = Math.max(1, Math.floor(o.repeat ?? 1));
  const better = <T extends { gflops: number }>(a: T | null, b: T | null): T | null => (!a ? b : !b ? a : b.gflops > a.gflops ? b : a);
  const best = new Map<
    string,
    { relaxed: MatmulBenchResult | null; simd: MatmulBenchResult | null; torch: { gflops: number; cpuGflops: number | null } | null }
  >();
  for (let round = 0; round < rounds; round++) {
    for (const t of threadList) {
      const relaxed = started.relaxedAvailable ? benchMatmul(sizes, 5, 0.1, true, { kernel: 'auto', threads: t }) : null;
      const simd = benchMatmul(sizes, 5, 0.1, true, { kernel: 'simd', threads: t });
      const torch: TorchBenchResult = await benchMatmulTorch(sizes, undefined, t, launcher ?? []);
      if (!torch.ok) report.torchNote = torch.note ?? 'torch did not run';
      sizes.forEach((n, i) => {
        const key = `${t}/${n}`;
        const tr = torch.ok ? (torch.results?.find((r) => r.n === n) ?? null) : null;
        const prev = best.get(key) ?? { relaxed: null, simd: null, torch: null };
        best.set(key, {
          relaxed: better(prev.relaxed, relaxed ? relaxed[i]! : null),
          simd: better(prev.simd, simd[i]!),
          torch: better(prev.torch, tr ? { gflops: tr.gflops, cpuGflops: tr.cpuGflops ?? null } : null),
        });
      });
    }
  }
  for (const t of threadList) {
    for (const n of sizes) {
      const b = best.get(`${t}/${n}`)!;
      const ours = b.relaxed ?? b.simd!;
      report.matmul.push({
        threads: t,
        n,
        relaxed: b.relaxed,
        simd: b.simd!,
        torch: b.torch,
        ratio: b.torch ? ours.gflops / b.torch.gflops : null,
        cpuRatio: b.torch?.cpuGflops && ours.cpuGflops ? ours.cpuGflops / b.torch.cpuGflops : null,
      });
    }
  }
  setCpuKernel('auto');
  if (!o.noTrain) {
    const bestTrain = new Map<number, { ours: BenchTrainResult; torch: TorchBenchOutcome; main: number | null; other: number | null }>();
    const steps = o.steps ?? 3;
    const noPolling = new Map<number, number>();
    for (let round = 0; round < rounds; round++) {
      for (const t of threadList) {
        setCpuThreads(t);
        // The calling thread's CPU over setup + warm-up alone, then over setup + warm-up + the timed steps:
        // the difference is the timed steps'.
        const m0 = mainThreadCpuSeconds(node?.fs);
        const o0 = otherThreadsCpuSeconds(node?.fs);
        await benchTrainStep({ steps: 0, warmup: 1 });
        const m1 = mainThreadCpuSeconds(node?.fs);
        const o1 = otherThreadsCpuSeconds(node?.fs);
        const ours = await benchTrainStep({ steps, warmup: 1 });
        const m2 = mainThreadCpuSeconds(node?.fs);
        const o2 = otherThreadsCpuSeconds(node?.fs);
        const perStep = (a: number | null, b: number | null, c: number | null) =>
          a !== null && b !== null && c !== null ? Math.max(0, c - b - (b - a)) / steps : null;
        const main = perStep(m0, m1, m2);
        const other = perStep(o0, o1, o2);
        if (t > 1) {
          const prevSpin = setCpuSpin({ mode: 'off' });
          const np = await benchTrainStep({ steps, warmup: 1 });
          setCpuSpin(prevSpin);
          noPolling.set(t, Math.max(noPolling.get(t) ?? 0, np.tokensPerSecond));
        }
        const torch = await benchTorchTrainStep({ steps: o.steps ?? 3, warmup: 1 }, undefined, undefined, { threads: t, launcher });
        const prev = bestTrain.get(t);
        const lower = prev?.main == null || (main !== null && main < prev.main);
        bestTrain.set(t, {
          main: lower ? main : prev.main,
          other: lower ? other : prev.other,
          ours: !prev || ours.tokensPerSecond > prev.ours.tokensPerSecond ? ours : prev.ours,
          torch:
            !prev || !prev.torch.ok || (torch.ok && torch.result.tokensPerSecond > prev.torch.result.tokensPerSecond) ? torch : prev.torch,
        });
      }
    }
    const oneTrain = bestTrain.get(threadList[0]!)?.ours.tokensPerSecond;
    for (const [t, tps] of noPolling)
      report.noPolling.push({ threads: t, tokensPerSecond: tps, speedup: oneTrain ? tps / oneTrain : null });
    const spin = cpuSpin();
    report.polling = `${spin.mode} (${spin.workerMs} ms; ${cpuSpinActive() ? 'polling' : 'not polling'} in the last step)`;
    for (const t of threadList) {
      const { ours, torch, main, other } = bestTrain.get(t)!;
      const oc = ours.cpuSecondsPerStep;
      const tc = torch.ok ? torch.result.cpuSecondsPerStep : null;
      report.train.push({
        threads: t,
        ours,
        mainCpuSecondsPerStep: main,
        otherCpuSecondsPerStep: other,
        torch,
        ratio: torch.ok ? ours.tokensPerSecond / torch.result.tokensPerSecond : null,
        cpuRatio: oc && tc ? tc / oc : null,
      });
    }
    setCpuThreads(maxT);
    if (!o.noTfjs) {
      const { benchTfjsTrainStep } = await import('../../model/bench-tfjs');
      const outcome = await benchTfjsTrainStep({ steps: o.steps ?? 3, warmup: 1 }, maxT);
      const ratios = outcome.ok
        ? report.train.map((t) => ({
            threads: t.threads,
            ratio: t.ours.tokensPerSecond / outcome.result.tokensPerSecond,
            cpuRatio:
              t.ours.cpuSecondsPerStep && outcome.result.cpuSecondsPerStep
                ? outcome.result.cpuSecondsPerStep / t.ours.cpuSecondsPerStep
                : null,
          }))
        : [];
      report.tfjs = { outcome, ratios };
    }
  }
  const one = threadList[0];
  for (const t of threadList.slice(1)) {
    for (const n of sizes) {
      const a = report.matmul.find((r) => r.threads === one && r.n === n);
      const b = report.matmul.find((r) => r.threads === t && r.n === n);
      if (a && b)
        report.scaling.push({ what: `matmul ${n}^3`, threads: t, speedup: (b.relaxed ?? b.simd).gflops / (a.relaxed ?? a.simd).gflops });
    }
    const a = report.train.find((r) => r.threads === one);
    const b = report.train.find((r) => r.threads === t);
    if (a && b) report.scaling.push({ what: 'train step', threads: t, speedup: b.ours.tokensPerSecond / a.ours.tokensPerSecond });
    const oneCpu = a?.mainCpuSecondsPerStep;
    const mainT = b?.mainCpuSecondsPerStep;
    if (oneCpu && mainT) report.projectedScaling.push({ threads: t, speedup: oneCpu / mainT });
  }
  return report;
}

const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? 'n/a' : x.toFixed(d));

export function formatCpuBench(r: CpuBenchReport): string {
  const lines: string[] = [];
  lines.push(
    `cpu backend: ${r.pool}; best of ${r.rounds} round${r.rounds === 1 ? '' : 's'}; load average ${r.load ? r.load.map((x) => x.toFixed(2)).join(' ') : 'n/a'} (wall ratios move with load; CPU-time ratios less so)`,
  );
  lines.push('matmul f32 (square), GFLOP/s wall [by CPU time]   torch = torch on OpenBLAS, same thread count');
  lines.push('  threads      n   relaxed-simd        simd              torch            ours/torch');
  for (const m of r.matmul) {
    lines.push(
      `  ${String(m.threads).padStart(7)} ${String(m.n).padStart(6)}   ${`${f(m.relaxed?.gflops)} [${f(m.relaxed?.cpuGflops)}]`.padEnd(18)}` +
        `${`${f(m.simd.gflops)} [${f(m.simd.cpuGflops)}]`.padEnd(18)}${`${f(m.torch?.gflops)} [${f(m.torch?.cpuGflops)}]`.padEnd(18)}` +
        `${f(m.ratio, 2)}x [${f(m.cpuRatio, 2)}x]`,
    );
  }
  if (r.torchNote) lines.push(`  torch: ${r.torchNote}`);
  if (r.train.length) {
    lines.push('train step (6x256 llama-family, B*T 4x128, fwd+bwd+AdamW), tokens/s wall [CPU-s/step]');
    for (const t of r.train) {
      const torch = t.torch.ok
        ? `${f(t.torch.result.tokensPerSecond)} [${f(t.torch.result.cpuSecondsPerStep, 2)}]`
        : `skipped (${t.torch.skipped})`;
      lines.push(
        `  ${String(t.threads).padStart(2)} thread(s): ours ${f(t.ours.tokensPerSecond)} [${f(t.ours.cpuSecondsPerStep, 2)}]  torch ${torch}  ours/torch ${f(t.ratio, 2)}x [by CPU time ${f(t.cpuRatio, 2)}x]`,
      );
    }
  }
  if (r.tfjs) {
    const o = r.tfjs.outcome;
    if (!o.ok) lines.push(`TensorFlow.js peer: skipped (${o.skipped})`);
    else {
      const ours1 = r.train[0]?.ours.firstLoss;
      lines.push(
        `TensorFlow.js peer (${o.result.impl}, ${o.result.threads} thread${o.result.threads === 1 ? '' : 's'}): ${f(o.result.tokensPerSecond)} tokens/s [${f(o.result.cpuSecondsPerStep, 2)} CPU-s/step]; first-step loss ${o.result.firstLoss.toFixed(5)} (ours ${ours1 === undefined ? 'n/a' : ours1.toFixed(5)})`,
      );
      for (const x of r.tfjs.ratios)
        lines.push(`  ours at ${x.threads} thread(s) / TF.js wasm: ${f(x.ratio, 2)}x wall [by CPU time ${f(x.cpuRatio, 2)}x]`);
    }
  }
  for (const s of r.scaling) lines.push(`scaling ${s.what}: ${s.threads} threads / 1 thread = ${f(s.speedup, 2)}x (wall)`);
  if (r.polling) lines.push(`pool threads poll before sleeping: ${r.polling}`);
  for (const x of r.noPolling) {
    lines.push(
      `train step at ${x.threads} threads with polling off: ${f(x.tokensPerSecond)} tokens/s, ${x.threads} threads / 1 thread = ${f(x.speedup, 2)}x (wall)`,
    );
  }
  const mains = r.train.filter((t) => t.mainCpuSecondsPerStep !== null);
  if (mains.length) {
    lines.push(
      `train step, calling-thread CPU-s/step (the critical path on free cores) [other threads: the pool's workers and V8's helpers]: ${mains.map((t) => `${t.threads} thread(s) ${f(t.mainCpuSecondsPerStep, 3)} [${f(t.otherCpuSecondsPerStep, 3)}]`).join(', ')}`,
    );
  }
  for (const p of r.projectedScaling) {
    lines.push(`scaling train step on free cores (calling-thread CPU-s, 1 thread / ${p.threads} threads): ${f(p.speedup, 2)}x`);
  }
  return lines.join('\n');
}
