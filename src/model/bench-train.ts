/**
 * Training-step benchmark: tokens/s of forward + backward + AdamW for a random LLaMA-family model on the CPU
 * backend (f32), and the same model config trained by PyTorch (tools/torch_ref/bench_train.py, Debian's
 * python3-torch) so the CLI can print ours beside torch's with the ratio.
 *
 * Both sides: untied LM head, RMSNorm, RoPE, SwiGLU, cross-entropy over every position, AdamW (no decay),
 * warm-up steps excluded from the timing.
 */

import { CpuBackend } from '../engine/cpu/backend';
import { AdamW } from '../engine/optim';
import { Rng } from '../engine/random';
import { backward } from '../engine/tensor';
import type { Backend } from '../engine/backend';
import { decoderFromWeights } from './decoder';
import { randomModel, smallSpec } from './random-model';
import type { ModelSpec } from './spec';

export interface BenchTrainConfig {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  batch: number;
  seq: number;
  /** Timed steps. */
  steps: number;
  /** Untimed steps first (allocation, JIT). */
  warmup: number;
}

export const DEFAULT_BENCH_TRAIN: BenchTrainConfig = {
  layers: 6,
  hidden: 256,
  heads: 4,
  kvHeads: 4,
  intermediate: 688,
  vocab: 512,
  batch: 4,
  seq: 128,
  steps: 3,
  warmup: 1,
};

export interface BenchTrainResult {
  impl: string;
  params: number;
  tokensPerStep: number;
  steps: number;
  secondsPerStep: number;
  tokensPerSecond: number;
  /** Loss after the last step (sanity: finite, near ln(vocab)). */
  loss: number;
  /** Loss of the first (warm-up) step: the same weights and tokens give the same number in every peer. */
  firstLoss?: number;
  /** Process CPU seconds per step (Node/Python only; null in a browser): on a shared machine this is the
   *  fairer comparison, since wall time also counts time the scheduler gave to other processes. */
  cpuSecondsPerStep: number | null;
}

export function benchSpec(c: BenchTrainConfig): ModelSpec {
  return smallSpec('llama', {
    numLayers: c.layers,
    hiddenSize: c.hidden,
    numHeads: c.heads,
    numKvHeads: c.kvHeads,
    intermediateSize: c.intermediate,
    vocabSize: c.vocab,
    maxPositions: c.seq,
    tieWordEmbeddings: false,
  });
}

function nowSeconds(): number {
  return performance.now() / 1000;
}

function cpuSeconds(): number | null {
  const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process;
  if (!p?.cpuUsage) return null;
  const u = p.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export interface KernelProfile {
  /** Seconds spent inside each Backend method (summed over calls), largest first. */
  byKernel: { kernel: string; seconds: number; calls: number }[];
}

/**
 * Wraps a backend so every kernel call is timed (host wall clock). On the CPU backend that is the kernel's
 * cost; on an asynchronous backend it would only be the encoding cost, so use it with CPU.
 */
export function profiledBackend(inner: Backend): { backend: Backend; report: () => KernelProfile; reset: () => void } {
  const stats = new Map<string, { seconds: number; calls: number }>();
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      const fn = v as (...a: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return fn.apply(target, args);
        } finally {
          const s = stats.get(prop) ?? { seconds: 0, calls: 0 };
          s.seconds += (performance.now() - t0) / 1000;
          s.calls++;
          stats.set(prop, s);
        }
      };
    },
  });
  return {
    backend,
    report: () => ({
      byKernel: [...stats].map(([kernel, s]) => ({ kernel, ...s })).sort((a, b) => b.seconds - a.seconds),
    }),
    reset: () => stats.clear(),
  };
}

/** Our side: forward + backward + AdamW on `backend` (default CpuBackend f32). With `profile`, the timed
 *  steps also record seconds per Backend kernel (`result.profile`). */
export async function benchTrainStep(
  cfg: Partial<BenchTrainConfig> = {},
  backend?: Backend,
  opts: { profile?: boolean } = {},
): Promise<BenchTrainResult & { profile?: KernelProfile }> {
  const c = { ...DEFAULT_BENCH_TRAIN, ...cfg };
  const prof = opts.profile ? profiledBackend(backend ?? new CpuBackend({ dtype: 'f32' })) : null;
  const be = prof ? prof.backend : (backend ?? new CpuBackend({ dtype: 'f32' }));
  const spec = benchSpec(c);
  const dec = decoderFromWeights(be, spec, randomModel(spec, 0), { requiresGrad: true });
  const opt = new AdamW(dec.namedParams(), { lr: 1e-3, weightDecay: 0 });
  const rng = new Rng(0);
  const n = c.batch * c.seq;
  const ids = Int32Array.from({ length: n }, () => rng.int(c.vocab));
  const targets = Int32Array.from({ length: n }, () => rng.int(c.vocab));
  let loss = NaN;
  const step = async (): Promise<void> => {
    dec.zeroGrad();
    const l = dec.loss(ids, targets, c.batch, c.seq);
    // release: activations go back to the pool during backward (no per-step allocation churn on WebGPU).
    backward(l, { release: true });
    opt.step();
    // Reading the loss forces a GPU backend to finish the step, so the timing covers real work.
    loss = await l.item();
    l.free();
  };
  let firstLoss = NaN;
  for (let i = 0; i < c.warmup; i++) {
    await step();
    if (i === 0) firstLoss = loss;
  }
  prof?.reset();
  const t0 = nowSeconds();
  const c0 = cpuSeconds();
  for (let i = 0; i < c.steps; i++) await step();
  const dt = nowSeconds() - t0;
  const c1 = cpuSeconds();
  const params = dec.numParams();
  dec.free();
  return {
    impl: `gradot ${be.name}`,
    params,
    tokensPerStep: n,
    steps: c.steps,
    secondsPerStep: dt / c.steps,
    tokensPerSecond: (n * c.steps) / dt,
    loss,
    firstLoss,
    cpuSecondsPerStep: c0 === null || c1 === null ? null : (c1 - c0) / c.steps,
    ...(prof ? { profile: prof.report() } : {}),
  };
}

export interface TorchBenchResult extends BenchTrainResult {
  torchVersion: string;
  threads: number;
}

export type TorchBenchOutcome = { ok: true; result: TorchBenchResult } | { ok: false; skipped: string };

/** Torch side: spawns tools/torch_ref/bench_train.py with the same config. Node only. */
export async function benchTorchTrainStep(
  cfg: Partial<BenchTrainConfig> = {},
  python = '/usr/bin/python3',
  repoRoot?: string,
  opts: { threads?: number; launcher?: string[] } = {},
): Promise<TorchBenchOutcome> {
  const c = { ...DEFAULT_BENCH_TRAIN, ...cfg, ...(opts.threads ? { threads: opts.threads } : {}) };
  // Specifiers in variables so bundlers never try to resolve node builtins for the browser build.
  const cpName = 'node:child_process';
  const fsName = 'node:fs';
  const pathName = 'node:path';
  const urlName = 'node:url';
  const cp = (await import(/* @vite-ignore */ cpName)) as typeof import('node:child_process');
  const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs');
  const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
  const url = (await import(/* @vite-ignore */ urlName)) as typeof import('node:url');
  const root = repoRoot ?? path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), '..', '..');
  const script = path.join(root, 'tools', 'torch_ref', 'bench_train.py');
  if (!fs.existsSync(python)) return { ok: false, skipped: `${python} not found (install Debian's python3-torch)` };
  if (!fs.existsSync(script)) return { ok: false, skipped: `${script} not found` };
  const probe = cp.spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { ok: false, skipped: `${python} has no torch (apt-get install python3-torch)` };
  const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    // A launcher (e.g. tools/pretrain/with_openblas.sh) runs torch on another BLAS.
    const [cmd, ...pre] = [...(opts.launcher ?? []), python];
    const child = cp.spawn(cmd, [...pre, script, JSON.stringify(c)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.on('error', (e) => resolve({ code: -1, stdout, stderr: String(e) }));
  });
  if (res.code !== 0)
    return { ok: false, skipped: `torch bench failed (exit ${res.code}): ${res.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  const line = res.stdout.trim().split('\n').pop() ?? '';
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { ok: false, skipped: `torch bench printed no JSON: ${line.slice(0, 200)}` };
  }
  return {
    ok: true,
    result: {
      impl: `torch ${String(j.torch)} cpu f32`,
      torchVersion: String(j.torch),
      threads: Number(j.threads),
      params: Number(j.params),
      tokensPerStep: Number(j.tokensPerStep),
      steps: Number(j.steps),
      secondsPerStep: Number(j.secondsPerStep),
      tokensPerSecond: Number(j.tokensPerSecond),
      loss: Number(j.loss),
      cpuSecondsPerStep: typeof j.cpuSecondsPerStep === 'number' ? j.cpuSecondsPerStep : null,
    },
  };
}

export interface TrainBenchComparison {
  config: BenchTrainConfig;
  ours: BenchTrainResult;
  torch: TorchBenchOutcome;
  /** ours / torch tokens/s (> 1: we are faster); null when torch was skipped. */
  ratio: number | null;
  /** The same ratio from CPU seconds per step (torch runs with its default threads; see `threads`). */
  cpuRatio: number | null;
}

/** Both sides on the same config, one after the other (never concurrently: they share the cores). */
export async function compareTrainStep(cfg: Partial<BenchTrainConfig> = {}, backend?: Backend): Promise<TrainBenchComparison> {
  const config = { ...DEFAULT_BENCH_TRAIN, ...cfg };
  const ours = await benchTrainStep(config, backend);
  const torch = await benchTorchTrainStep(config);
  const oc = ours.cpuSecondsPerStep;
  const tc = torch.ok ? torch.result.cpuSecondsPerStep : null;
  return {
    config,
    ours,
    torch,
    ratio: torch.ok ? ours.tokensPerSecond / torch.result.tokensPerSecond : null,
    cpuRatio: oc !== null && tc !== null && oc > 0 ? tc / oc : null,
  };
}

/** Human-readable lines for the CLI. */
export function formatTrainBench(c: TrainBenchComparison): string {
  const cfg = c.config;
  const head = `train step: llama-family ${cfg.layers}x${cfg.hidden} (heads ${cfg.heads}/${cfg.kvHeads}, mlp ${cfg.intermediate}, vocab ${cfg.vocab}), B*T = ${cfg.batch}x${cfg.seq}`;
  const cpu = (r: BenchTrainResult) => (r.cpuSecondsPerStep === null ? '' : `, ${r.cpuSecondsPerStep.toFixed(2)} CPU-s/step`);
  const ours = `  ${c.ours.impl}: ${c.ours.tokensPerSecond.toFixed(1)} tokens/s (${c.ours.secondsPerStep.toFixed(2)} s/step${cpu(c.ours)}, ${(c.ours.params / 1e6).toFixed(2)}M params)`;
  const torch = c.torch.ok
    ? `  ${c.torch.result.impl} (${c.torch.result.threads} thread${c.torch.result.threads === 1 ? '' : 's'}): ${c.torch.result.tokensPerSecond.toFixed(1)} tokens/s (${c.torch.result.secondsPerStep.toFixed(2)} s/step${cpu(c.torch.result)})`
    : `  torch: skipped (${c.torch.skipped})`;
  const ratio =
    c.ratio === null
      ? ''
      : `\n  ratio ours/torch: ${c.ratio.toFixed(2)}x wall${c.cpuRatio === null ? '' : `, ${c.cpuRatio.toFixed(2)}x by CPU time`}`;
  return `${head}\n${ours}\n${torch}${ratio}`;
}
