/**
 * Evaluation throughput of our engine vs onnxruntime on the same model and batch (used by `gradot bench`,
 * section `ort`): both score the batch as evaluation does (forward + per-row log-likelihood of the
 * targets), our engine through src/ot/evaluate's batchScorer on the CPU backend, onnxruntime-node through
 * the exported graph and src/ot/metrics' host read-out. Node only.
 *
 * onnxruntime runs with one intra-op thread by default: our CPU backend is single-threaded, so this
 * compares kernels rather than core counts (pass `ortThreads` to see the multi-threaded number). CPU time
 * is reported beside wall-clock because the machine is shared.
 */
import { CpuBackend } from '../engine/cpu/backend';
import { Rng } from '../engine/random';
import { decoderFromWeights } from '../model/decoder';
import { benchSpec, DEFAULT_BENCH_TRAIN } from '../model/bench-train';
import { randomModel } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { Batch } from '../data/batch';
import { batchScorer } from '../ot/offsite/evaluate';
import type { BatchRowScores } from '../ot/offsite/metrics';
import { exportOnnx } from './export';
import { loadOrt, OrtDecoder, ortInfoFromSpec } from './runtime';

export interface EvalBenchOptions {
  batch?: number;
  seq?: number;
  /** Timed repetitions after one warm-up (default 3). */
  reps?: number;
  /** onnxruntime intra-op threads (default 1). */
  ortThreads?: number;
}

export interface EvalBenchSide {
  impl: string;
  secondsPerBatch: number;
  cpuSecondsPerBatch: number | null;
  tokensPerSecond: number;
}

export interface EvalBenchResult {
  model: string;
  params: number;
  batch: number;
  seq: number;
  ours: EvalBenchSide;
  ort: EvalBenchSide;
  /** ours tokens/s ÷ ort tokens/s (wall-clock). */
  ratio: number;
  /** the same on CPU time, when the platform reports it. */
  cpuRatio: number | null;
  /** max |Δ| / max |ours| of the per-row log-likelihoods (sanity: the two compute the same thing). */
  maxRelDiff: number;
}

function cpuNow(): number | null {
  const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process;
  if (!p?.cpuUsage) return null;
  const u = p.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function time(fn: () => Promise<unknown>, reps: number): Promise<{ wall: number; cpu: number | null }> {
  await fn(); // warm-up (ORT allocations, SIMD module assembly)
  const c0 = cpuNow();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  const wall = (performance.now() - t0) / 1000 / reps;
  const c1 = cpuNow();
  return { wall, cpu: c0 !== null && c1 !== null ? (c1 - c0) / reps : null };
}

/**
 * Benchmarks evaluation of `model` (default: the 6-layer d=256 LLaMA-family model `bench train` uses,
 * random weights) on one random batch. Returns the numbers and a printable summary.
 */
export async function benchEvalThroughput(
  model?: { spec: ModelSpec; weights: WeightMap; name?: string },
  opts: EvalBenchOptions = {},
): Promise<{ json: EvalBenchResult & Record<string, unknown>; text: string }> {
  const cfg = DEFAULT_BENCH_TRAIN;
  const spec = model?.spec ?? benchSpec(cfg);
  const weights = model?.weights ?? randomModel(spec, 0);
  const name = model?.name ?? `llama-family ${cfg.layers}x${cfg.hidden} (vocab ${spec.vocabSize})`;
  const B = opts.batch ?? cfg.batch;
  const T = Math.min(opts.seq ?? cfg.seq, spec.maxPositions);
  const reps = opts.reps ?? 3;
  const threads = opts.ortThreads ?? 1;

  const rng = new Rng(5);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]!));
  const batch: Batch = {
    ids,
    targets,
    batchSize: B,
    seqLen: T,
    indices: Array.from({ length: B }, (_, i) => i),
    targetTokens: B * (T - 1),
  };

  const dec = decoderFromWeights(new CpuBackend({ dtype: 'f32' }), spec, weights);
  const oursScore = batchScorer(dec, {});
  const ort = await OrtDecoder.create(await loadOrt('node'), exportOnnx(spec, weights), ortInfoFromSpec(spec), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const ortScore = ort.scorer();

  let a: BatchRowScores | null = null;
  let b: BatchRowScores | null = null;
  const tOurs = await time(async () => (a = await oursScore(batch)), reps);
  const tOrt = await time(async () => (b = await ortScore(batch)), reps);
  await ort.release();
  dec.free();

  let d = 0;
  let m = 0;
  for (let r = 0; r < B; r++) {
    d = Math.max(d, Math.abs(a!.sumLogProb[r]! - b!.sumLogProb[r]!));
    m = Math.max(m, Math.abs(a!.sumLogProb[r]!));
  }
  const tokens = B * T;
  const side = (impl: string, t: { wall: number; cpu: number | null }): EvalBenchSide => ({
    impl,
    secondsPerBatch: t.wall,
    cpuSecondsPerBatch: t.cpu,
    tokensPerSecond: tokens / t.wall,
  });
  const ours = side('gradot cpu-f32', tOurs);
  const ortSide = side(`onnxruntime-node cpu (${threads} thread${threads === 1 ? '' : 's'})`, tOrt);
  const cpuRatio = tOurs.cpu && tOrt.cpu ? tOrt.cpu / tOurs.cpu : null;
  let params = 0;
  for (const t of weights.values()) params += t.data.length;
  const json: EvalBenchResult = {
    model: name,
    params,
    batch: B,
    seq: T,
    ours,
    ort: ortSide,
    ratio: ours.tokensPerSecond / ortSide.tokensPerSecond,
    cpuRatio,
    maxRelDiff: d / (m || 1),
  };
  const f = (x: number) => x.toFixed(0);
  const text = [
    `ort: evaluation (forward + target log-likelihoods) of ${name}, ${(params / 1e6).toFixed(2)} M params, batch ${B}x${T}`,
    `  ours ${f(ours.tokensPerSecond)} tok/s (${(ours.secondsPerBatch * 1000).toFixed(0)} ms/batch) | ` +
      `${ortSide.impl} ${f(ortSide.tokensPerSecond)} tok/s (${(ortSide.secondsPerBatch * 1000).toFixed(0)} ms/batch)`,
    `  ratio ours/ort ${json.ratio.toFixed(2)} (wall)${cpuRatio !== null ? `, ${cpuRatio.toFixed(2)} (CPU time)` : ''}; ` +
      `log-likelihood agreement ${json.maxRelDiff.toExponential(1)} relative`,
  ].join('\n');
  return { json: json as EvalBenchResult & Record<string, unknown>, text };
}
