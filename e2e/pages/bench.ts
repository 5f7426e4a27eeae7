// Matmul benchmark page: our WebGPU matmul and CPU backend (inside the engine worker) and
// onnxruntime-web's WebGPU MatMul (on this page, with GPU-resident inputs and outputs so only the kernel is
// timed), on the same square sizes. ORT's wasm files are served from our own origin.
/// <reference types="@webgpu/types" />
import * as Comlink from 'comlink';
import * as ort from 'onnxruntime-web/webgpu';
import type { EngineWorkerApi } from '../../workers/engine.worker';
import type { MatmulBenchRow, TrainBenchRow } from '../../src/engine/webgpu/bench';
import { matmulModel } from './onnx-matmul';
import { benchTfjsTrainStep, loadTfjs, tfSpecFromConfig } from './tfjs-decoder';

export interface BenchResult {
  info: unknown;
  rows: (MatmulBenchRow & { ortGflops: number | null; ortMs: number | null; ortError?: string; ortCheck?: number })[];
  train: TrainBenchRow[] | { error: string } | null;
  /** The same model's training step on TF.js's WebGPU backend (this page's thread). */
  tfjs?: TrainBenchRow | { error: string };
  profile?: { label: string; ms: number; count: number }[];
  census?: { kernel: string; count: number }[];
}

declare global {
  interface Window {
    __bench?: BenchResult | { fatal: string };
  }
}

const params = new URLSearchParams(location.search);
const sizes = (params.get('sizes') ?? '256,512').split(',').map(Number);
const log = (s: string) => (document.getElementById('log')!.textContent += `\n${s}`);

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

async function ortMatmul(n: number): Promise<{ ms: number; check: number }> {
  const session = await ort.InferenceSession.create(matmulModel(n, n, n), {
    executionProviders: ['webgpu'],
    preferredOutputLocation: 'gpu-buffer',
  });
  const device = (await (ort.env.webgpu as unknown as { device: GPUDevice | Promise<GPUDevice> }).device) as GPUDevice;
  const host = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const mk = () => {
    const buf = device.createBuffer({
      size: n * n * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, host);
    return ort.Tensor.fromGpuBuffer(buf, { dataType: 'float32', dims: [n, n] });
  };
  const feeds = { A: mk(), B: mk() };
  // Warm-up run, also a sanity check of the output against a CPU dot product for C[0,0].
  const first = await session.run(feeds);
  const c = first.C;
  const data = (await c!.getData()) as Float32Array;
  let want = 0;
  for (let i = 0; i < n; i++) want += host[i]! * host[i * n]!;
  const check = Math.abs(data[0]! - want) / Math.max(1e-6, Math.abs(want));
  c!.dispose();
  await device.queue.onSubmittedWorkDone();
  const t1 = performance.now();
  (await session.run(feeds)).C!.dispose();
  await device.queue.onSubmittedWorkDone();
  const one = Math.max(performance.now() - t1, 0.05);
  const inner = Math.max(1, Math.min(50, Math.floor(200 / one)));
  const reps = one > 2000 ? 1 : 3;
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    const outs = [];
    for (let i = 0; i < inner; i++) outs.push((await session.run(feeds)).C);
    await device.queue.onSubmittedWorkDone();
    times.push((performance.now() - t) / inner);
    for (const o of outs) o!.dispose();
  }
  feeds.A.dispose();
  feeds.B.dispose();
  await session.release();
  return { ms: median(times), check };
}

try {
  ort.env.wasm.wasmPaths = new URL('/node_modules/onnxruntime-web/dist/', location.href).href;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation on this page: single-threaded wasm
  const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
  const api = Comlink.wrap<EngineWorkerApi>(worker);
  const probe = await api.probe();
  if (!probe.info) throw new Error(`no WebGPU in worker: ${probe.error}`);
  log(`adapter ${probe.info.vendor}/${probe.info.architecture}`);
  const ours = await api.benchMatmul(sizes, { cpuMax: Number(params.get('cpuMax') ?? 512) });
  const rows: BenchResult['rows'] = [];
  for (const r of ours) {
    log(`ours n=${r.n}: ${r.gpuGflops.toFixed(2)} GFLOP/s`);
    try {
      const o = await ortMatmul(r.n);
      rows.push({ ...r, ortMs: o.ms, ortGflops: (2 * r.n ** 3) / o.ms / 1e6, ortCheck: o.check });
    } catch (e) {
      rows.push({ ...r, ortMs: null, ortGflops: null, ortError: e instanceof Error ? e.message : String(e) });
    }
  }
  let train: BenchResult['train'] = null;
  let profile: BenchResult['profile'];
  let census: BenchResult['census'];
  let tfjs: BenchResult['tfjs'];
  const layers = Number(params.get('trainLayers') ?? 6);
  if (layers > 0) {
    try {
      // Widths of the bundled demo model (served from public/), with `layers` blocks.
      const res = await fetch(new URL('/models/demo/config.json', location.href));
      const config = res.ok ? await res.json() : undefined;
      log(`training step, ${layers} layers${config ? ' (demo model widths)' : ''}...`);
      const T = Number(params.get('trainT') ?? 64);
      if (params.get('profile')) {
        log('profiling one training step...');
        profile = await api.profileTrainStep({ config, layers, T });
      }
      if (params.get('census')) census = await api.dispatchCensus({ config, layers, T });
      train = await api.benchTrainStep({ config, layers, T });
      if (params.get('tfjs') !== '0') {
        try {
          if (!config) throw new Error('the demo config.json is needed for the TF.js model widths');
          log('TF.js webgpu training step...');
          const tf = await loadTfjs();
          if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js could not start its webgpu backend');
          await tf.ready();
          tfjs = await benchTfjsTrainStep(tf, tfSpecFromConfig(config, layers), 1, T, 2);
        } catch (e) {
          tfjs = { error: e instanceof Error ? e.message : String(e) };
        }
      }
    } catch (e) {
      train = { error: e instanceof Error ? e.message : String(e) };
    }
  }
  window.__bench = { info: probe.info, rows, train, profile, census, tfjs };
} catch (e) {
  window.__bench = { fatal: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
}
