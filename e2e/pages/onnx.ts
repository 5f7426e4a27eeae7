// Runs exported ONNX graphs in onnxruntime-web (WebGPU EP on SwiftShader, or the WASM EP) and
// transformers.js generation from in-memory exported files, for e2e/onnx.spec.ts. The spec passes models
// and inputs (base64) and compares the results with our engine's, computed in Node.
import { hasWebGpu, webOrt, generateInBrowser, type WebExecutionProvider } from '../../src/onnx/browser';
import { OrtDecoder, type OrtModelInfo } from '../../src/onnx/runtime';

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
    __runGenerate?: (job: GenerateJob) => Promise<{ tokens: number[]; promptTokens: number[]; text: string; streamed: number[]; ms: number }>;
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

window.__runGenerate = async (job) => {
  const t0 = performance.now();
  const files = new Map(Object.entries(job.files).map(([k, v]) => [k, b64(v)]));
  const streamed: number[] = [];
  const r = await generateInBrowser(files, job.prompt, { maxNewTokens: job.maxNewTokens, device: job.device, onToken: (id) => streamed.push(id) });
  return { ...r, streamed, ms: performance.now() - t0 };
};

try {
  const webgpu = await hasWebGpu();
  window.__onnxReady = { webgpu };
  document.getElementById('log')!.textContent = `ready (webgpu adapter: ${webgpu})`;
} catch (e) {
  window.__onnxReady = { fatal: String(e) };
}
