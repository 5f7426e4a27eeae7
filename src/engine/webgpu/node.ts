/// <reference types="@webgpu/types" />
/**
 * WebGPU in Node through Dawn (the optional `webgpu` npm package, prebuilt for linux x64/arm64, macOS and
 * Windows), so the CLI can run the same kernels on a GPU server as the studio runs in a browser tab.
 *
 * Dawn reaches the GPU through Vulkan (Linux), Metal or D3D12. On a Linux machine without a GPU driver,
 * point the Vulkan loader at a software driver before starting Node, e.g. Chromium's SwiftShader:
 * `LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`
 * (tools/gpu/swiftshader-env.sh does this); such an adapter reports itself as a CPU device.
 */
import type { Backend } from '../backend';
import { createWebGpuBackend, WebGpuUnavailableError, type WebGpuBackend, type WebGpuBackendOptions } from './backend';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<DawnModule> | null = null;

async function loadDawn(): Promise<DawnModule> {
  // A variable specifier keeps bundlers from trying to resolve the native module for the browser build.
  const name = 'webgpu';
  try {
    return (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    throw new WebGpuUnavailableError(
      `WebGPU in Node needs the optional package 'webgpu' (Dawn): npm install webgpu ` +
        `(${e instanceof Error ? e.message : String(e)})`,
    );
  }
}

/** Dawn's GPU object; installs the WebGPU globals (GPUBufferUsage, GPUMapMode, ...) the backend uses. */
export async function nodeGpu(flags: string[] = []): Promise<GPU> {
  dawn ??= loadDawn();
  const m = await dawn;
  for (const [k, v] of Object.entries(m.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return m.create(flags);
}

/** A WebGpuBackend on Dawn. Throws WebGpuUnavailableError when the package or an adapter is missing. */
export async function createNodeWebGpuBackend(
  opts: WebGpuBackendOptions & { dawnFlags?: string[] } = {},
): Promise<WebGpuBackend> {
  const gpu = await nodeGpu(opts.dawnFlags);
  try {
    return await createWebGpuBackend({ ...opts, gpu });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError && process.platform === 'linux') {
      throw new WebGpuUnavailableError(
        `${e.message}. Dawn found no Vulkan adapter: install the GPU's Vulkan driver, or for a software adapter ` +
          'set LD_LIBRARY_PATH and VK_ICD_FILENAMES (see tools/gpu/swiftshader-env.sh)',
      );
    }
    throw e;
  }
}

/**
 * The CLI's backend choice: 'cpu', 'webgpu' (Dawn; an error if unavailable) or 'auto' (Dawn on a real
 * adapter, else the CPU backend; a software adapter is refused as in the browser, being slower than the
 * CPU backend). `cpu` builds the CPU backend, so the caller keeps its own CPU settings (threads).
 */
export async function chooseNodeBackend<C extends Backend>(
  kind: 'cpu' | 'webgpu' | 'auto', cpu: () => C, opts: WebGpuBackendOptions = {},
): Promise<{ backend: Backend; reason: string }> {
  if (kind === 'cpu') return { backend: cpu(), reason: 'CPU requested' };
  let gpu: WebGpuBackend;
  try {
    gpu = await createNodeWebGpuBackend(opts);
  } catch (e) {
    if (kind === 'webgpu') throw e;
    return { backend: cpu(), reason: `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}` };
  }
  const name = [gpu.info.vendor, gpu.info.architecture, gpu.info.description].filter(Boolean).join(' ');
  if (kind === 'auto' && gpu.info.isFallbackAdapter) {
    gpu.destroy();
    return { backend: cpu(), reason: `only a software WebGPU adapter (${name}); the CPU backend is faster` };
  }
  return { backend: gpu, reason: `WebGPU (Dawn) on ${name}` };
}
