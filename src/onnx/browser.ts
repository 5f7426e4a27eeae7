/**
 * onnxruntime-web in the browser, served from this origin: the wasm binary and its loader are bundled as
 * assets by Vite (`?url` imports of onnxruntime-web's exported files), and `ort.env.wasm.wasmPaths` points at
 * them, so neither onnxruntime-web nor transformers.js (which fills in a CDN path when none is set) fetches
 * anything from elsewhere. Browser/worker code only (Vite-specific imports).
 *
 * The `onnxruntime-web/webgpu` build serves both the WebGPU EP and the WASM EP (its CPU fallback) from one
 * wasm binary (the asyncify build); transformers.js imports the same module, so one setting covers both.
 */
import * as ortWeb from 'onnxruntime-web/webgpu';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import mjsUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.mjs?url';
import type { OrtModule } from './runtime';

export type WebExecutionProvider = 'webgpu' | 'wasm';

let configured = false;

/** Points onnxruntime-web at the locally served wasm files (idempotent). */
export function setOrtWasmPaths(): void {
  if (configured) return;
  const abs = (u: string) => new URL(u, globalThis.location?.href).href;
  ortWeb.env.wasm.wasmPaths = { wasm: abs(wasmUrl), mjs: abs(mjsUrl) };
  // Threads need cross-origin isolation, which static hosting may not give: degrade to one thread.
  if (!(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated) ortWeb.env.wasm.numThreads = 1;
  configured = true;
}

/** onnxruntime-web with local wasm paths, as an OrtModule for OrtDecoder. */
export function webOrt(): OrtModule {
  setOrtWasmPaths();
  return ortWeb as unknown as OrtModule;
}

/** Session options for an EP preference: WebGPU with the WASM EP as fallback for unsupported nodes. */
export function webSessionOptions(ep: WebExecutionProvider): { executionProviders: WebExecutionProvider[] } {
  return { executionProviders: ep === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'] };
}

/** Whether this browser gives a WebGPU adapter (the EP needs one). */
export async function hasWebGpu(): Promise<boolean> {
  const gpu = (globalThis.navigator as (Navigator & { gpu?: GPU }) | undefined)?.gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/**
 * The studio's "try it" entry point: generateWithTransformersJs with onnxruntime-web's wasm served locally
 * and WebGPU when available (else WASM).
 */
export async function generateInBrowser(
  files: Map<string, Uint8Array>,
  prompt: string | readonly number[],
  opts: Omit<import('./transformers').TjsGenerateOptions, 'device'> & { device?: WebExecutionProvider },
): Promise<import('./transformers').TjsGenerateResult> {
  setOrtWasmPaths();
  const { generateWithTransformersJs } = await import('./transformers');
  const device = opts.device ?? ((await hasWebGpu()) ? 'webgpu' : 'wasm');
  return generateWithTransformersJs(files, prompt, { ...opts, device });
}
