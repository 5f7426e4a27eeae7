// Runs exported ONNX graphs in onnxruntime-web (WebGPU EP on SwiftShader, or the WASM EP) and
// transformers.js generation from in-memory exported files, for e2e/onnx.spec.ts. The spec passes models
// and inputs (base64) and compares the results with our engine's, computed in Node.
import { hasWebGpu, webOrt, generateInBrowser, type WebExecutionProvider } from '../../src/onnx/browser';
import { OrtDecoder, ortInfoFromSpec, type OrtModelInfo } from '../../src/onnx/runtime';
import { exportOnnx } from '../../src/onnx/export';
import { buildTestEmulator, engineLogits, maxRelErr, randomIds } from '../../src/onnx/testing';
import { randomTestModel, smallSpec } from '../../src/model/random-model';

export interface LogitsJob {
  model: string;
  info: OrtModelInfo;
  ep: WebExecutionProvider;
  ids: number[];
  B: number;
  T: number;
  /** Also run the first `prefill` tokens, then the rest one step at a time through the cache. */
  prefill: number;
}

export interface LogitsResult {
  full: number[];
  /** Per row, the logits of every position from prefill + single steps ([B, T, V] like `full`). */
  cached: number[];
  ms: number;
}

export interface GenerateJob {
  files: Record<string, string>;
  prompt: string;
  maxNewTokens: number;
  device: WebExecutionProvider;
}

declare global {
  interface Window {
    __onnxReady?: { webgpu: boolean } | { fatal: string };
    __runLogits?: (job: LogitsJob) => Promise<LogitsResult>;
    __runInPage?: (ep: WebExecutionProvider) => Promise<{ maxRelErr: number; ms: number }>;
    __runGenerate?: (
      job: GenerateJob,
    ) => Promise<{ tokens: number[]; promptTokens: number[]; text: string; streamed: number[]; ms: number }>;
  }
}

function b64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

window.__runLogits = async (job) => {
  const t0 = performance.now();
  // Only the requested EP (no WASM EP fallback listed), so a WebGPU failure cannot pass silently as WASM.
  const dec = await OrtDecoder.create(webOrt(), b64(job.model), job.info, { executionProviders: [job.ep] });
  const { B, T, ids, prefill } = job;
  const V = job.info.vocabSize;
  const full = await dec.logits(ids, B, T);
  const cols = (from: number, n: number): number[] => {
    const out: number[] = [];
    for (let b = 0; b < B; b++) for (let t = from; t < from + n; t++) out.push(ids[b * T + t]!);
    return out;
  };
  const cached = new Float32Array(B * T * V);
  const put = (logits: Float32Array, from: number, n: number): void => {
    for (let b = 0; b < B; b++) cached.set(logits.subarray(b * n * V, (b + 1) * n * V), (b * T + from) * V);
  };
  let r = await dec.forward(cols(0, prefill), B, prefill);
  put(r.logits, 0, prefill);
  for (let t = prefill; t < T; t++) {
    r = await dec.forward(cols(t, 1), B, 1, r.cache);
    put(r.logits, t, 1);
  }
  await dec.release();
  return { full: Array.from(full), cached: Array.from(cached), ms: performance.now() - t0 };
};

// The studio's path end to end inside the browser: build an emulator, export it to ONNX here, run it
// in onnxruntime-web and compare with our CPU engine's logits computed on this page.
window.__runInPage = async (ep) => {
  const t0 = performance.now();
  const spec = smallSpec('llama', { numLayers: 4, maxPositions: 32 });
  const emu = buildTestEmulator(spec, randomTestModel(spec, 9), { rank: 4, mlpWidth: 40 });
  const B = 2;
  const T = 6;
  const ids = randomIds(B * T, spec.vocabSize, 10);
  const dec = await OrtDecoder.create(webOrt(), exportOnnx(emu.spec, emu.weights), ortInfoFromSpec(emu.spec), { executionProviders: [ep] });
  const got = await dec.logits(ids, B, T);
  await dec.release();
  const want = await engineLogits(emu.spec, emu.weights, ids, B, T);
  return { maxRelErr: maxRelErr(got, want), ms: performance.now() - t0 };
};

window.__runGenerate = async (job) => {
  const t0 = performance.now();
  const files = new Map(Object.entries(job.files).map(([k, v]) => [k, b64(v)]));
  const streamed: number[] = [];
  const r = await generateInBrowser(files, job.prompt, {
    maxNewTokens: job.maxNewTokens,
    device: job.device,
    onToken: (id) => streamed.push(id),
  });
  return { ...r, streamed, ms: performance.now() - t0 };
};

try {
  const webgpu = await hasWebGpu();
  window.__onnxReady = { webgpu };
  document.getElementById('log')!.textContent = `ready (webgpu adapter: ${webgpu})`;
} catch (e) {
  window.__onnxReady = { fatal: String(e) };
}
