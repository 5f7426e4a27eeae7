/**
 * Benchmarks run inside the engine worker. Matmul throughput of the WebGPU backend (and the CPU backend on small sizes) in GFLOP/s: median over
 * `reps` timed runs, each synchronised by onSubmittedWorkDone after `inner` back-to-back products.
 */
import type { Backend } from '../backend';
import { CpuBackend } from '../cpu/backend';
import { AdamW } from '../optim';
import { Rng } from '../random';
import { backward } from '../tensor';
import { decoderFromWeights } from '../../model/decoder';
import { randomModel } from '../../model/random-model';
import type { ModelSpec } from '../../model/spec';
import type { WebGpuBackend } from './backend';

export interface MatmulBenchRow {
  n: number;
  gpuGflops: number;
  gpuMs: number;
  cpuGflops: number | null;
  cpuMs: number | null;
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchMatmul(
  gpu: WebGpuBackend,
  sizes: number[],
  opts: { cpuMax?: number; reps?: number } = {},
): Promise<MatmulBenchRow[]> {
  const rows: MatmulBenchRow[] = [];
  const cpu = new CpuBackend({ dtype: 'f32' });
  for (const n of sizes) {
    const flops = 2 * n * n * n;
    const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
    const A = gpu.fromArray(a);
    const B = gpu.fromArray(b);
    const p = { batch: 1, m: n, n, k: n };
    gpu.free(gpu.matmul(A, B, p)); // compile + warm up
    await gpu.sync();
    // Enough products per timed run that one run takes a measurable time even on a fast GPU.
    const t1 = performance.now();
    gpu.free(gpu.matmul(A, B, p));
    await gpu.sync();
    const one = Math.max(performance.now() - t1, 0.05);
    const inner = Math.max(1, Math.min(50, Math.floor(200 / one)));
    const reps = opts.reps ?? (one > 2000 ? 1 : 3);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      for (let i = 0; i < inner; i++) gpu.free(gpu.matmul(A, B, p));
      await gpu.sync();
      times.push((performance.now() - t) / inner);
    }
    gpu.free(A);
    gpu.free(B);
    const gpuMs = median(times);
    let cpuMs: number | null = null;
    if (n <= (opts.cpuMax ?? 512)) {
      const Ac = cpu.fromArray(a);
      const Bc = cpu.fromArray(b);
      const ct: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t = performance.now();
        cpu.matmul(Ac, Bc, p);
        ct.push(performance.now() - t);
      }
      cpuMs = median(ct);
    }
    rows.push({
      n,
      gpuMs,
      gpuGflops: flops / gpuMs / 1e6,
      cpuMs,
      cpuGflops: cpuMs === null ? null : flops / cpuMs / 1e6,
    });
  }
  return rows;
}

export interface TrainBenchRow {
  backend: string;
  layers: number;
  params: number;
  tokens: number;
  msPerStep: number;
  tokensPerSec: number;
  loss: number;
  /** WebGPU only: compute dispatches and queue submits in one timed step. */
  dispatchesPerStep?: number;
  submitsPerStep?: number;
}

/**
 * One optimizer step (forward, loss, backward, AdamW) of a decoder on `be`, timed after one warm-up step;
 * each step ends with a read of the loss, so the GPU is synchronised. Weights are random (speed only).
 */
export async function benchTrainStep(be: Backend, spec: ModelSpec, B: number, T: number, steps: number): Promise<TrainBenchRow> {
  const dec = decoderFromWeights(be, spec, randomModel(spec, 3), { requiresGrad: true });
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  const opt = new AdamW(dec.namedParams(), { lr: 1e-4 });
  let loss = NaN;
  const one = async () => {
    dec.zeroGrad();
    const l = dec.loss(ids, targets, B, T);
    backward(l);
    opt.step();
    loss = (await l.read())[0]!;
    l.free();
  };
  await one();
  const gpuStats = be.name === 'webgpu' ? (be as WebGpuBackend).stats : null;
  const d0 = gpuStats ? [gpuStats.dispatches, gpuStats.submits] : [0, 0];
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t = performance.now();
    await one();
    times.push(performance.now() - t);
  }
  const ms = median(times);
  const row: TrainBenchRow = {
    backend: be.name,
    layers: spec.layers.length,
    params: dec.numParams(),
    tokens: B * T,
    msPerStep: ms,
    tokensPerSec: (B * T * 1000) / ms,
    loss,
  };
  if (gpuStats && steps > 0) {
    row.dispatchesPerStep = (gpuStats.dispatches - d0[0]!) / steps;
    row.submitsPerStep = (gpuStats.submits - d0[1]!) / steps;
  }
  dec.free();
  return row;
}
