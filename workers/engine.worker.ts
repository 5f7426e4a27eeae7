/// <reference lib="webworker" />
/**
 * Engine worker: the WebGPU backend, its kernel suite, a self-test and the matmul benchmark, exposed with
 * comlink so the UI thread never blocks on GPU work. WebGPU is available in dedicated workers.
 */
import * as Comlink from 'comlink';
import { CpuBackend } from '../src/engine/cpu/backend';
import type { Backend, MatmulParams } from '../src/engine/backend';
import { createWebGpuBackend, type WebGpuBackend, type WebGpuInfo } from '../src/engine/webgpu/backend';
import { runKernelSuite, type SuiteOptions, type SuiteResult } from '../src/engine/webgpu/suite';
import { benchMatmul, benchTrainStep, type MatmulBenchRow, type TrainBenchRow } from '../src/engine/webgpu/bench';
import { specFromHFConfig, type HFConfig } from '../src/model/hf';
import { smallSpec } from '../src/model/random-model';
import { denseLayers } from '../src/model/spec';
import { runTrainStepCheck } from '../src/engine/webgpu/train-check';
import type { CaseResult } from '../src/engine/webgpu/suite';

let backend: Promise<WebGpuBackend> | null = null;
let lostMessage: string | null = null;

function gpu(): Promise<WebGpuBackend> {
  if (!backend) {
    backend = createWebGpuBackend({
      onLost: (l) => {
        lostMessage = `${l.reason}: ${l.message}`;
        backend = null; // the next call asks for a fresh device
      },
    });
    backend.catch(() => (backend = null));
  }
  return backend;
}

const api = {
  /** Adapter/device description for the UI badge, or null without WebGPU. */
  async probe(): Promise<{ info: WebGpuInfo | null; error?: string; lost?: string }> {
    try {
      return { info: (await gpu()).info, ...(lostMessage ? { lost: lostMessage } : {}) };
    } catch (e) {
      return { info: null, error: e instanceof Error ? e.message : String(e) };
    }
  },

  async runKernelSuite(opts: SuiteOptions = {}): Promise<SuiteResult> {
    return runKernelSuite(await gpu(), opts);
  },

  /** One training step of small gpt2/llama models on WebGPU vs the CPU backend (loss, grads, AdamW). */
  async trainStepCheck(): Promise<CaseResult[]> {
    return runTrainStepCheck(await gpu());
  },

  /** Quick health check before choosing WebGPU over CPU: a small matmul and a reduction vs the CPU. */
  async selftest(): Promise<{ ok: boolean; maxAbsErr: number; ms: number }> {
    const t0 = performance.now();
    const be = await gpu();
    const cpu = new CpuBackend({ dtype: 'f32' });
    const a = Float32Array.from({ length: 33 * 47 }, (_, i) => Math.sin(i * 0.37));
    const b = Float32Array.from({ length: 47 * 29 }, (_, i) => Math.cos(i * 0.11));
    const p: MatmulParams = { batch: 1, m: 33, n: 29, k: 47 };
    const run = async (x: Backend) => x.read(x.sumSquares(x.matmul(x.fromArray(a), x.fromArray(b), p)));
    const [g, c] = await Promise.all([run(be), run(cpu)]);
    const maxAbsErr = Math.abs(g[0]! - c[0]!) / Math.max(1, Math.abs(c[0]!));
    return { ok: maxAbsErr < 1e-4, maxAbsErr, ms: performance.now() - t0 };
  },

  /** C = A B on the GPU; inputs are transferred in, the result is transferred out (no copies). */
  async matmul(a: Float32Array, b: Float32Array, p: MatmulParams): Promise<Float32Array> {
    const be = await gpu();
    const A = be.fromArray(a);
    const B = be.fromArray(b);
    const C = be.matmul(A, B, p);
    const out = (await be.read(C)) as Float32Array;
    for (const s of [A, B, C]) be.free(s);
    return Comlink.transfer(out, [out.buffer]);
  },

  async benchMatmul(sizes: number[], opts: { cpuMax?: number; reps?: number } = {}): Promise<MatmulBenchRow[]> {
    return benchMatmul(await gpu(), sizes, opts);
  },

  /**
   * Training-step speed (forward + backward + AdamW) on WebGPU and, if asked, the CPU backend. The model
   * takes its widths from `config` (an HF config.json, e.g. the demo model's) with `layers` blocks; without
   * a config a LLaMA-style d=256 model.
   */
  async benchTrainStep(opts: TrainOpts = {}): Promise<TrainBenchRow[]> {
    const { spec, B, T, steps } = trainSetup(opts);
    const rows = [await benchTrainStep(await gpu(), spec, B, T, steps)];
    if (opts.cpu !== false) rows.push(await benchTrainStep(new CpuBackend({ dtype: 'f32' }), spec, B, T, steps));
    return rows;
  },

  /** Dispatches per kernel over one training step (after a warm-up step). */
  async dispatchCensus(opts: TrainOpts = {}): Promise<{ kernel: string; count: number }[]> {
    const { spec, B, T } = trainSetup(opts);
    const be = await createWebGpuBackend({ countDispatches: true });
    try {
      await benchTrainStep(be, spec, B, T, 0);
      be.takeDispatchCounts();
      await benchTrainStep(be, spec, B, T, 0);
      return be.takeDispatchCounts();
    } finally {
      be.destroy();
    }
  },

  /** GPU time per kernel over one training step (timestamp queries; empty without 'timestamp-query'). */
  async profileTrainStep(opts: TrainOpts = {}): Promise<{ label: string; ms: number; count: number }[]> {
    const { spec, B, T } = trainSetup(opts);
    const be = await createWebGpuBackend({ profile: true });
    try {
      await benchTrainStep(be, spec, B, T, 0);
      await be.profileReport(true); // drop the warm-up step (pipeline compilation)
      await benchTrainStep(be, spec, B, T, 0);
      return await be.profileReport();
    } finally {
      be.destroy();
    }
  },
};

type TrainOpts = { config?: HFConfig; layers?: number; B?: number; T?: number; steps?: number; cpu?: boolean };

function trainSetup(opts: TrainOpts) {
  const layers = opts.layers ?? 6;
  const spec = opts.config
    ? specFromHFConfig(opts.config)
    : smallSpec('llama', { hiddenSize: 256, numHeads: 4, intermediateSize: 688, vocabSize: 4096, maxPositions: 256 });
  spec.layers = denseLayers(layers, spec.intermediateSize);
  return { spec, B: opts.B ?? 1, T: opts.T ?? 64, steps: opts.steps ?? 2 };
}

export type EngineWorkerApi = typeof api;
Comlink.expose(api);
